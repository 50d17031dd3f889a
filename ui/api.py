"""The named API endpoints of the contract: /chat, /conversations, /conversation.

No ``from __future__ import annotations`` here: Gradio reads these signatures'
annotations as real types to describe the endpoints.
"""

from collections.abc import Iterator
from contextlib import closing

import gradio as gr
from gradio.data_classes import FileData

from app import exporting
from app.chat import ChatSettings, InputRejected
from app.language import LanguageRejected, language_setting
from app.throttle import throttled
from backends.base import BackendError
from storage.repo import NotFound
from ui.errors import user_error
from ui.handlers import Handlers, load_document, progress_markdown, uploaded_path

# Remote backends must never be serialized by the app; a local model has its own lock.
CHAT_CONCURRENCY = 64


def register(handlers: Handlers) -> None:
    app = handlers.app

    def chat(message: str, conversation_id: str, request: gr.Request) -> Iterator[str]:
        """Send a message ("" conversation_id starts a new one); streams the reply text so far."""
        user_id = handlers.user(request)
        try:
            with closing(app.chat.send(user_id, conversation_id or None, message, ChatSettings())) as stream:
                for update in throttled(stream, urgent=lambda u: u.urgent):
                    if update.status == "error":
                        raise user_error(update.error or "the backend failed")
                    if update.reply or update.done:  # "" before the first token tells a client nothing
                        yield update.reply
        except InputRejected as exc:
            raise user_error(str(exc)) from exc
        except NotFound as exc:
            raise user_error("conversation not found") from exc
        except BackendError as exc:
            raise user_error(str(exc)) from exc

    def conversations(request: gr.Request) -> list[dict]:
        """The signed-in user's conversations, newest first."""
        user_id = handlers.user(request)
        return [exporting.conversation_summary(r) for r in app.repo.list_conversations(user_id, limit=1000)]

    def conversation(conversation_id: str, request: gr.Request) -> dict:
        """One conversation with its messages."""
        user_id = handlers.user(request)
        try:
            row = app.repo.get_conversation(user_id, conversation_id)
            messages = app.repo.messages(user_id, conversation_id)
        except NotFound as exc:
            raise user_error("conversation not found") from exc
        data = exporting.conversation_dict(row, messages)
        return {
            "id": data["id"],
            "title": data["title"],
            "language": data["language"],
            "messages": [{"role": m.role, "content": m.content, "status": m.status} for m in messages],
        }

    def summarize(file: FileData, language: str, request: gr.Request, password: str = "") -> Iterator[str]:
        """Summarize a PDF ("auto" or a language code; the password of an encrypted PDF);
        streams progress, ends with the summary."""
        user_id = handlers.user(request)
        try:
            lang = language_setting(language or "auto")
        except LanguageRejected as exc:
            raise user_error(str(exc)) from exc
        doc = load_document(uploaded_path(file), password or None)
        stream = app.documents.summarize_stream(user_id, doc, language_setting=lang)
        plan = ""
        with closing(stream):
            for event in stream:
                plan = event.text if event.kind == "plan" else plan
                if event.kind == "error":
                    raise user_error(event.text)
                if event.outcome is not None:
                    yield event.outcome.result.summary
                else:
                    yield progress_markdown(plan, event.done, event.total, event.text)

    gr.api(summarize, api_name="summarize", concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat")
    gr.api(chat, api_name="chat", concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat")
    gr.api(conversations, api_name="conversations", concurrency_limit=None)
    gr.api(conversation, api_name="conversation", concurrency_limit=None)
