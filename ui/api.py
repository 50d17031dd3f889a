"""The named API endpoints of the contract: /chat, /conversations, /conversation.

No ``from __future__ import annotations`` here: Gradio reads these signatures'
annotations as real types to describe the endpoints.
"""

from collections.abc import Iterator
from contextlib import closing

import gradio as gr
from gradio.data_classes import FileData

from app import exporting
from app.chat import ChatSettings
from app.errors import USER_ERRORS
from storage.repo import NotFound
from ui.errors import user_error
from ui.files import remove_upload
from ui.handlers import Handlers, uploaded_path
from ui.i18n import error_text, request_language
from ui.markup import literal
from ui.stoppable import stoppable
from ui.summary_view import SummaryView, injection_warning, urgent_event
from ui.throttle import throttled

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
                    if update.reply or update.done:  # "" before the first token tells a client nothing
                        yield update.reply
        except USER_ERRORS as exc:
            raise user_error(error_text(exc, request)) from exc

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
            raise user_error(error_text(exc, request)) from exc
        data = exporting.conversation_dict(row, messages)
        return {
            "id": data["id"],
            "title": data["title"],
            "language": data["language"],
            "messages": [{"role": m.role, "content": m.content, "status": m.status} for m in messages],
        }

    def summarize(file: FileData, language: str, request: gr.Request, password: str = "") -> Iterator[str]:
        """Summarize a document ("auto" or a language code); streams the plan, any injection warning
        and progress, and ends with the summary. A client that disconnects cancels the run."""
        user_id = handlers.user(request)
        ui_lang = request_language(request)
        try:
            job = handlers.open_upload(user_id, uploaded_path(file), language, password, None, "")
            remove_upload(str(uploaded_path(file)))
            view = SummaryView(ui_lang, warning=injection_warning(job.findings, ui_lang, literal))
            with closing(job.events):
                for _ in throttled(view.fed(job.events), urgent=urgent_event):
                    if view.finished is None:  # the text of the pass being written is a sign of life
                        yield "\n\n".join(filter(None, [view.status(), view.pass_text]))
        except USER_ERRORS as exc:
            raise user_error(error_text(exc, request)) from exc
        if view.finished is not None:
            yield view.summary

    gr.api(
        stoppable(summarize), api_name="summarize", concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat"
    )
    gr.api(stoppable(chat), api_name="chat", concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat")
    gr.api(conversations, api_name="conversations", concurrency_limit=None)
    gr.api(conversation, api_name="conversation", concurrency_limit=None)
