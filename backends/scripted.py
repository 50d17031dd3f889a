"""A deterministic backend for tests and load runs: it streams a given text at a given pace.

It stands beside the real backends the way a test transport stands beside a
real one: the UI and storage wiring can be checked exactly, while the real
model paths keep their own tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from backends.base import (
    BackendError,
    BackendUnavailable,
    ChatBackend,
    ChatMessage,
    ContextOverflow,
    Delta,
    GenerationOptions,
    Health,
)


class ScriptedBackend(ChatBackend):
    kind = "scripted"
    concurrent = True

    def __init__(
        self,
        name: str = "scripted",
        reply: str = "Hello from the scripted backend.",
        *,
        delay_s: float = 0.0,
        context_window: int = 4096,
        fail_after: int | None = None,
        down: bool = False,
    ) -> None:
        super().__init__(name)
        self.reply = reply
        self.delay_s = delay_s
        self._context_window = context_window
        self.fail_after = fail_after  # tokens before a mid-stream failure
        self.down = down
        self.requests: list[list[ChatMessage]] = []

    @property
    def model(self) -> str:
        return "scripted-model"

    @property
    def context_window(self) -> int:
        return self._context_window

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def tokens(self) -> list[str]:
        words = self.reply.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    def stream_chat(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> Iterator[Delta]:
        if self.down:
            raise BackendUnavailable("the scripted backend is down")
        prompt = self.count_message_tokens(messages)
        if prompt >= self._context_window:
            raise ContextOverflow(
                "prompt too long", prompt_tokens=prompt, context_window=self._context_window
            )
        self.requests.append(list(messages))
        sent = 0
        for token in self.tokens()[: options.max_tokens]:
            if self.fail_after is not None and sent >= self.fail_after:
                raise BackendError("the scripted backend failed mid-reply")
            if self.delay_s:
                time.sleep(self.delay_s)
            sent += 1
            yield Delta(text=token)
        yield Delta(finish_reason="stop", prompt_tokens=prompt, completion_tokens=sent)

    def health(self) -> Health:
        return Health(not self.down, "down" if self.down else "ok")
