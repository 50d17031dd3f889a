"""OpenAI-compatible routes on the app's own server: GET /v1/models and POST /v1/chat/completions.

Requests go through the same ChatService as the web UI. A plain request completes the caller's
own messages and stores nothing; one that names a llamadesk conversation (the body field
`conversation_id`, or the `X-Llamadesk-Conversation` header; "new" starts one) is sent as the next
turn of that conversation and stored like any other. With --auth every request needs a user's API
key (`Authorization: Bearer ldk-…`, from `llamadesk users key NAME`) and acts as that user.
Errors use OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute

from app.api_keys import bearer_key, user_for_key
from app.chat import ChatSettings, ChatUpdate, InputRejected
from app.config import UnknownBackend
from app.core import App
from backends.base import BackendError, BackendUnavailable, ChatMessage, ContextOverflow, Delta
from storage.repo import NotFound
from ui.stoppable import ThreadedStream

CONVERSATION_HEADER = "x-llamadesk-conversation"
NEW_CONVERSATION = "new"
# Without max_tokens OpenAI lets a reply run to the end of the window; so does this, via the backend.
UNLIMITED_TOKENS = 1 << 30
_END = object()
# Tokens made within this time of the last chunk go out together (about two at 100 tok/s).
_SEND_EVERY_S = 0.02


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.kind = kind
        self.param: str | None = None

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


# -- the request --------------------------------------------------------------------------


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[_Part] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            if any(part.type != "text" for part in self.content):
                raise ApiError(400, "only text content parts are supported", "unsupported_content")
            return "".join(part.text or "" for part in self.content)
        return self.content or ""


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """The fields of OpenAI's chat completion request that llamadesk honours; others are ignored."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[_Message] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    stream_options: _StreamOptions | None = None
    conversation_id: str | None = None  # llamadesk's extension: store the exchange in this conversation

    def settings(self) -> ChatSettings:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > 4 or not all(stops):
            raise ApiError(400, "stop takes at most 4 non-empty strings", "invalid_stop")
        system = next((m.text() for m in self.messages if m.role == "system"), "")
        return ChatSettings(
            system_prompt=system,
            temperature=1.0 if self.temperature is None else self.temperature,
            max_tokens=self.max_completion_tokens or self.max_tokens or UNLIMITED_TOKENS,
            backend=self.model,
            seed=self.seed,
            stop=tuple(stops),
        )

    def chat_messages(self) -> list[ChatMessage]:
        return [{"role": m.role, "content": m.text()} for m in self.messages]  # type: ignore[typeddict-item]


# -- a reply, whichever path made it ----------------------------------------------------------


@dataclass
class Reply:
    backend: str
    model: str
    conversation_id: str | None
    steps: Iterator[Delta]  # text deltas, then one delta with finish_reason and usage


def stateless_reply(app: App, request: ChatRequest) -> Reply:
    completion = app.chat.complete(request.chat_messages(), request.settings())
    return Reply(completion.backend, completion.model, None, completion.deltas)


def stored_reply(app: App, user_id: int, request: ChatRequest, conversation: str) -> Reply:
    """The last user message sent as the conversation's next turn; its history comes from storage."""
    text = next((m.text() for m in reversed(request.messages) if m.role == "user"), "")
    cid = None if conversation == NEW_CONVERSATION else conversation
    updates = app.chat.send(user_id, cid, text, request.settings())
    first = next(updates)  # the stored exchange: it names the conversation and the backend
    return Reply(first.backend, first.model, first.conversation_id, _update_steps(first, updates))


def _update_steps(first: ChatUpdate, updates: Iterator[ChatUpdate]) -> Iterator[Delta]:
    """ChatService's cumulative updates as deltas; the title update that may follow the reply is drained."""
    shown = 0
    final: Delta | None = None
    try:
        for update in _chain(first, updates):
            if len(update.reply) > shown and final is None:
                yield Delta(text=update.reply[shown:])
                shown = len(update.reply)
            if update.status == "complete" and final is None:
                final = Delta(
                    finish_reason=update.finish_reason or "stop",
                    prompt_tokens=update.prompt_tokens,
                    completion_tokens=update.completion_tokens,
                )
    finally:
        getattr(updates, "close", lambda: None)()
    yield final or Delta(finish_reason="stop")


def _chain(first: ChatUpdate, rest: Iterator[ChatUpdate]) -> Iterator[ChatUpdate]:
    yield first
    yield from rest


# -- errors -------------------------------------------------------------------------------------


def api_error(exc: Exception) -> ApiError:
    """The OpenAI-shaped error for anything the services raise."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, InputRejected):
        status = 404 if exc.code == "model_not_found" else 400
        return ApiError(status, str(exc), exc.code)
    if isinstance(exc, UnknownBackend):
        return ApiError(404, str(exc), "model_not_found")
    if isinstance(exc, NotFound):
        return ApiError(404, "conversation not found", "conversation_not_found")
    if isinstance(exc, ContextOverflow):
        return ApiError(400, str(exc), "context_length_exceeded")
    if isinstance(exc, BackendUnavailable):
        return ApiError(503, str(exc), exc.code, "server_error")
    if isinstance(exc, BackendError):
        return ApiError(502, str(exc), exc.code, "server_error")
    raise exc


def _validation_error(exc: ValidationError) -> ApiError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    error = ApiError(400, f"{where}: {first.get('msg', 'invalid value')}", "invalid_value")
    error.param = where or None
    return error


# -- the routes -----------------------------------------------------------------------------------


@dataclass
class OpenAIRoutes:
    app: App
    auth: bool

    async def user(self, request: Request) -> int:
        """The key's owner under --auth; without it, the one local user (any key or none is accepted)."""
        if not self.auth:
            return await run_in_threadpool(self.app.local_user_id)
        key = bearer_key(request.headers.get("authorization", ""))
        if not key:
            raise ApiError(401, "an API key is required: Authorization: Bearer KEY", "invalid_api_key")
        user_id = await run_in_threadpool(user_for_key, self.app.repo, key)
        if user_id is None:
            raise ApiError(401, "the API key is not valid", "invalid_api_key")
        return user_id

    async def models(self, request: Request) -> Response:
        try:
            await self.user(request)
        except ApiError as exc:
            return exc.response()
        settings = self.app.backends.settings
        data = [
            {
                "id": spec.name,
                "object": "model",
                "created": 0,
                "owned_by": "llamadesk",
                "llamadesk": {"kind": spec.kind, "default": spec.name == self.app.backends.default_name},
            }
            for spec in settings.backends
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat_completions(self, request: Request) -> Response:
        try:
            user_id = await self.user(request)
            body = await _json_body(request)
            try:
                chat = ChatRequest.model_validate(body)
            except ValidationError as exc:
                raise _validation_error(exc) from exc
            conversation = chat.conversation_id or request.headers.get(CONVERSATION_HEADER)
            reply = await run_in_threadpool(self._start, user_id, chat, conversation)
            # The first step runs here, so that a prompt over the window is an HTTP error, not a stream.
            first = await run_in_threadpool(next, reply.steps, _END)
        except Exception as exc:
            return api_error(exc).response()
        created = int(time.time())
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        headers = {"x-llamadesk-conversation": reply.conversation_id} if reply.conversation_id else {}
        if chat.stream:
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            events = _sse(reply, first, completion_id, created, include_usage)
            return StreamingResponse(events, media_type="text/event-stream", headers=headers)
        try:
            steps = await run_in_threadpool(_drain, first, reply.steps)
        except Exception as exc:
            return api_error(exc).response()
        return JSONResponse(_completion_body(reply, steps, completion_id, created), headers=headers)

    def _start(self, user_id: int, chat: ChatRequest, conversation: str | None) -> Reply:
        if conversation:
            return stored_reply(self.app, user_id, chat, conversation)
        return stateless_reply(self.app, chat)


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "the request body is not valid JSON", "invalid_json") from exc


def _drain(first: object, steps: Iterator[Delta]) -> list[Delta]:
    collected = [] if first is _END else [first]
    collected.extend(steps)
    return collected  # type: ignore[return-value]  # only Deltas besides _END


def _usage(final: Delta | None) -> dict[str, int]:
    prompt = (final.prompt_tokens or 0) if final else 0
    completion = (final.completion_tokens or 0) if final else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion_body(reply: Reply, steps: list[Delta], completion_id: str, created: int) -> dict[str, Any]:
    final = next((s for s in reversed(steps) if s.finish_reason), None)
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": reply.backend,
        "system_fingerprint": reply.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(s.text for s in steps)},
                "finish_reason": final.finish_reason if final else "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(final),
    }
    if reply.conversation_id:
        body["conversation_id"] = reply.conversation_id
    return body


def _chunk(
    completion_id: str,
    created: int,
    reply: Reply,
    delta: dict[str, str],
    finish: str | None = None,
    usage: dict[str, int] | None = None,
    choices: bool = True,
) -> str:
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": reply.backend,
        "system_fingerprint": reply.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        if choices
        else [],
    }
    if usage is not None:
        body["usage"] = usage
    if reply.conversation_id:
        body["conversation_id"] = reply.conversation_id
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


async def _sse(
    reply: Reply, first: object, completion_id: str, created: int, include_usage: bool
) -> AsyncIterator[str]:
    """The reply as OpenAI's server-sent events. Usage rides on the finish chunk, or, when the client
    asked with stream_options.include_usage, on a chunk of its own with no choices (as OpenAI sends it).
    Leaving early (a client disconnect) closes the service's stream, which saves or frees what it holds."""
    chunk: Callable[..., str] = lambda *a, **k: _chunk(completion_id, created, reply, *a, **k)  # noqa: E731

    def events(batch: list[Delta]) -> Iterator[str]:
        if text := "".join(item.text for item in batch if item.text):
            yield chunk({"content": text})
        for item in batch:
            if item.finish_reason:
                usage = _usage(item)
                yield chunk({}, item.finish_reason, None if include_usage else usage)
                if include_usage:
                    yield chunk({}, usage=usage, choices=False)

    # The model makes its next tokens while these are sent. What is ready goes out as one chunk, at
    # most every _SEND_EVERY_S: each chunk costs the server and the client CPU that the model shares.
    rest = ThreadedStream(reply.steps, ahead=sys.maxsize)
    try:
        yield chunk({"role": "assistant", "content": ""})
        batch = [] if first is _END else [cast(Delta, first)]
        while batch:
            yield "".join(events(batch))
            if not batch[-1].finish_reason:
                await asyncio.sleep(_SEND_EVERY_S)
            batch = await rest.next_batch()
        yield "data: [DONE]\n\n"
    except Exception as exc:  # after the headers: OpenAI's servers send the error as an event
        yield f"data: {json.dumps(api_error(exc).body(), ensure_ascii=False)}\n\n"
    finally:
        await rest.close()


def routes(app: App, *, auth: bool) -> list[BaseRoute]:
    """The /v1 routes, for the Gradio server's FastAPI app; listed before Gradio's own routes."""
    handlers = OpenAIRoutes(app, auth)
    return [
        APIRoute("/v1/models", handlers.models, methods=["GET"], include_in_schema=False),
        APIRoute(
            "/v1/chat/completions", handlers.chat_completions, methods=["POST"], include_in_schema=False
        ),
    ]
