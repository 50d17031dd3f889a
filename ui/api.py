"""The named API endpoints of the contract: /chat, /conversations, /conversation.

No ``from __future__ import annotations`` here: Gradio reads these signatures'
annotations as real types to describe the endpoints.
"""

from collections.abc import Iterator
from contextlib import closing

import gradio as gr

from app import exporting
from app.chat import ChatSettings, InputRejected
from app.throttle import throttled
from backends.base import BackendError
from storage.repo import NotFound
from ui.handlers import Handlers

# Remote backends must never be serialized by the app; a local model has its own lock.
CHAT_CONCURRENCY = 64


def register(handlers: Handlers) -> None:
    app = handlers.app

    def chat(message: str, conversation_id: str, request: gr.Request) -> Iterator[str]:
        """Send a message ("" conversation_id starts a new one); streams the reply text so far."""
        user_id = handlers.user(request)
        try:
            with closing(app.chat.send(user_id, conversation_id or None, message, ChatSettings())) as stream:
                for update in throttled(stream):
                    if update.status == "error":
                        raise gr.Error(update.error or "the backend failed")
                    yield update.reply
        except InputRejected as exc:
            raise gr.Error(str(exc)) from exc
        except NotFound as exc:
            raise gr.Error("conversation not found") from exc
        except BackendError as exc:
            raise gr.Error(str(exc)) from exc

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
            raise gr.Error("conversation not found") from exc
        data = exporting.conversation_dict(row, messages)
        return {
            "id": data["id"],
            "title": data["title"],
            "language": data["language"],
            "messages": [{"role": m.role, "content": m.content, "status": m.status} for m in messages],
        }

    gr.api(chat, api_name="chat", concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat")
    gr.api(conversations, api_name="conversations", concurrency_limit=None)
    gr.api(conversation, api_name="conversation", concurrency_limit=None)
