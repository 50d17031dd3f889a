"""Tools for agents, served over MCP by Gradio's own MCP server (`launch(mcp_server=True)`).

Each tool is a named API endpoint whose signature and docstring Gradio turns into the MCP tool's
typed arguments and description. They call the same services as the web UI. Under --auth an MCP
client sends a user's API key (`Authorization: Bearer ldk-…`, from `llamadesk users key NAME`),
and every tool acts only on that user's data.

The tools run outside Gradio's queue: Gradio then calls them directly with the MCP request (and
so its headers), instead of through a loopback client that --auth's sign-in page would turn away.

No ``from __future__ import annotations`` here: Gradio reads these annotations as real types.
"""

import base64
import binascii
import json
import re
import tempfile
from contextlib import closing
from pathlib import Path

import gradio as gr

from app.chat import ChatSettings, ChatUpdate
from app.doc_chat import run_to_end
from app.errors import USER_ERRORS
from ui.errors import user_error
from ui.handlers import Handlers
from ui.i18n import error_text

_DATA_URL = re.compile(r"data:(?P<mime>[\w.+/-]*)(?:;[\w=-]+)*;base64,(?P<data>.*)", re.DOTALL)
_SUFFIXES = {"application/pdf": ".pdf"}


def register(handlers: Handlers) -> None:
    app = handlers.app

    def summarize_document(document: str, language: str = "auto", request: gr.Request = None) -> str:  # type: ignore[assignment]
        """Summarize a document of any length (a PDF), in the document's language or another, with page citations.

        Args:
            document: The document: a path on the machine llamadesk runs on (refused when llamadesk runs with --auth), or the file itself as a data URL ("data:application/pdf;base64,...").
            language: The summary's language: "auto" for the document's own, or one of en, de, fr, it, pt, hi, es, th.

        Returns:
            JSON: summary (Markdown citing pages as "(pp. 2–3)"), citations (page ranges), language, strategy, pages, and conversation_id: the conversation that holds the document, for ask_document.
        """
        user_id = handlers.user(request)
        try:
            with tempfile.TemporaryDirectory(prefix="llamadesk-mcp-") as folder:
                path = _document_file(document, Path(folder), handlers.auth)
                job = handlers.open_upload(user_id, str(path), language or "auto", None, None, "")
            with closing(job.events):
                outcome = run_to_end(job.events)
        except USER_ERRORS as exc:
            raise user_error(error_text(exc, request)) from exc
        doc = job.document
        result = outcome.result
        return _json(
            {
                "summary": result.summary,
                "citations": [{"pages": [first, last]} for first, last in result.citations],
                "language": result.language,
                "strategy": result.strategy,
                "pages": doc.page_count,
                "conversation_id": outcome.conversation_id,
            }
        )

    def ask_document(
        conversation_id: str,
        question: str,
        max_tokens: int = 1024,
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> str:
        """Ask a question about a document summarized before; the answer comes from its text and cites pages.

        Args:
            conversation_id: The conversation_id that summarize_document returned.
            question: The question, in any of the supported languages; the answer follows its language.
            max_tokens: The longest answer wanted, in tokens.

        Returns:
            JSON: answer and conversation_id.
        """
        final = _reply(handlers.user(request), conversation_id, question, max_tokens, request)
        return _json({"answer": final.reply, "conversation_id": final.conversation_id})

    def send_message(
        message: str,
        conversation_id: str = "",
        max_tokens: int = 1024,
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> str:
        """Chat with the local Llama model; the exchange is stored as a llamadesk conversation.

        Args:
            message: The message to send.
            conversation_id: A conversation to continue, or "" to start a new one.
            max_tokens: The longest reply wanted, in tokens.

        Returns:
            JSON: reply and conversation_id (pass it back to continue the conversation).
        """
        final = _reply(handlers.user(request), conversation_id, message, max_tokens, request)
        return _json({"reply": final.reply, "conversation_id": final.conversation_id})

    def search_conversations(query: str, request: gr.Request = None) -> str:  # type: ignore[assignment]
        """Search the stored conversations for messages containing every word of a query, newest first.

        Args:
            query: The words to look for.

        Returns:
            JSON: a list of matches, each with conversation_id, title and snippet (matched words in **bold**).
        """
        user_id = handlers.user(request)
        hits = app.repo.search(user_id, query, limit=20)
        return _json(
            [{"conversation_id": h.conversation_id, "title": h.title, "snippet": h.snippet} for h in hits]
        )

    def _reply(user_id: int, conversation_id: str, text: str, max_tokens: int, request: gr.Request) -> ChatUpdate:
        """The exchange run to its end (its title included), as the final update."""
        try:
            settings = ChatSettings(max_tokens=max(1, int(max_tokens)))
            with closing(app.chat.send(user_id, conversation_id or None, text, settings)) as stream:
                final = None
                for update in stream:
                    final = update
        except USER_ERRORS as exc:
            raise user_error(error_text(exc, request)) from exc
        if final is None:
            raise user_error("the backend sent no reply")
        return final

    for tool in (summarize_document, ask_document, send_message, search_conversations):
        gr.api(tool, api_name=tool.__name__, queue=False)


def _json(value: object) -> str:
    """Tool results as JSON text: what an agent reads best (Gradio would send a dict as its Python repr)."""
    return json.dumps(value, ensure_ascii=False)


def _document_file(document: str, folder: Path, auth: bool) -> Path:
    """The document as a file: a data URL written to `folder`, or a local path when that is allowed."""
    match = _DATA_URL.match(document.strip())
    if match:
        try:
            data = base64.b64decode(match.group("data"), validate=False)
        except (binascii.Error, ValueError) as exc:
            raise user_error("the data URL does not hold valid base64") from exc
        target = folder / f"document{_SUFFIXES.get(match.group('mime'), '.pdf')}"
        target.write_bytes(data)
        return target
    if auth:
        raise user_error("with --auth, files on the server cannot be read: send the document as a data URL")
    path = Path(document).expanduser()
    if not path.is_file():
        raise user_error(f"no such file: {document}")
    return path
