"""A deterministic test double: a handler function plays the engine.

It stands beside the real backends the way httpx's ``MockTransport`` stands beside a real
transport: a test passes a function that receives each request (messages and options) and
returns the reply's text pieces, or raises a BackendError, or yields some pieces and then
raises. The UI and storage wiring can be checked exactly, while the real model paths keep
their own tests. ``replying(...)`` and ``unavailable(...)`` build the common handlers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from backends.base import (
    BackendError,
    BackendUnavailable,
    ChatBackend,
    ChatMessage,
    Connection,
    ContextOverflow,
    Delta,
    DeltaStream,
    GenerationOptions,
    Health,
)

DEFAULT_REPLY = "Hello from the scripted backend."


@dataclass(frozen=True)
class ScriptedRequest:
    messages: list[ChatMessage]
    options: GenerationOptions


Handler = Callable[[ScriptedRequest], Iterable[str]]


def words(text: str) -> list[str]:
    """``text`` as word tokens, each after the first with its leading space."""
    parts = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(parts)]


def replying(text: str = DEFAULT_REPLY, *, delay_s: float = 0.0, fail_after: int | None = None) -> Handler:
    """A handler that streams ``text`` word by word, honouring max_tokens and stop; it waits
    ``delay_s`` before each word and fails after ``fail_after`` words when that is set."""

    def handle(request: ScriptedRequest) -> Iterator[str]:
        sent = ""
        for count, token in enumerate(words(text)[: request.options.max_tokens]):
            if fail_after is not None and count >= fail_after:
                raise BackendError("the scripted backend failed mid-reply")
            if any(stop in sent + token for stop in request.options.stop):
                return
            if delay_s:
                time.sleep(delay_s)
            sent += token
            yield token

    return handle


def unavailable(message: str = "the scripted backend is down") -> Handler:
    def handle(request: ScriptedRequest) -> Iterator[str]:
        raise BackendUnavailable(message)

    return handle


def in_turn(*handlers: Handler) -> Handler:
    """Each request goes to the next handler; the last one answers every request after that."""
    queue = list(handlers)

    def handle(request: ScriptedRequest) -> Iterable[str]:
        current = queue.pop(0) if len(queue) > 1 else queue[0]
        return current(request)

    return handle


class ScriptedBackend(ChatBackend):
    kind = "scripted"
    concurrent = True

    def __init__(
        self,
        name: str = "scripted",
        handler: Handler | None = None,
        *,
        context_window: int = 4096,
        parallel: int = 8,
    ) -> None:
        super().__init__(name)
        self.handler = handler or replying()
        self._settled = Connection("scripted-model", context_window, parallel)
        self.requests: list[list[ChatMessage]] = []  # what each call was asked, for assertions
        self.connect()  # nothing to reach: connected from the start

    def _connect(self) -> Connection:
        return self._settled

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream_chat(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> DeltaStream:
        prompt = self.count_message_tokens(messages)
        if prompt >= self.context_window:
            raise ContextOverflow("prompt too long", prompt_tokens=prompt, context_window=self.context_window)
        self.requests.append(list(messages))
        sent = 0
        pieces = iter(self.handler(ScriptedRequest(list(messages), options)))
        try:
            for piece in pieces:
                sent += 1
                yield Delta(text=piece)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()  # a handler's own `finally` runs when the caller closes the stream
        yield Delta(finish_reason="stop", prompt_tokens=prompt, completion_tokens=sent)

    def health(self) -> Health:
        return Health(True, "ok")
