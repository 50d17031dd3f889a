"""Saving a reply while it is written, so a stop, a crash or a client that went away loses little.

Each write is a database transaction: at a fixed interval, 32 replies at once made 64 commits a
second, and those were the server's largest cost after the model. The replies being written share a
budget of writes instead, so a crash loses at most CHECKPOINT_INTERVAL_S of a reply while few run,
and the interval widens as more run at once (2 s for 32).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import TracebackType

from app.stream_load import StreamLoad
from storage.repo import Repository

CHECKPOINT_INTERVAL_S = 0.5
WRITES_PER_S = 16  # for all replies of the process together

WRITING = StreamLoad(WRITES_PER_S)


@dataclass
class Checkpointer:
    """Writes the partial reply at most every CHECKPOINT_INTERVAL_S seconds, or its share of the budget.

    Use it as a context manager around the writing, so that it counts among the replies sharing it.
    """

    repo: Repository
    user_id: int
    message_id: int
    last: float = field(default_factory=lambda: time.monotonic())  # the clock a test may replace
    load: StreamLoad = WRITING

    def __enter__(self) -> Checkpointer:
        self.load.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.load.__exit__(kind, exc, tb)

    def maybe(self, text: str) -> None:
        now = time.monotonic()
        if now - self.last >= self.load.interval(CHECKPOINT_INTERVAL_S):
            self.repo.checkpoint_message(self.user_id, self.message_id, text, status="streaming")
            self.last = now

    def complete(self, text: str, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        self.repo.checkpoint_message(
            self.user_id,
            self.message_id,
            text,
            status="complete",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    def interrupted(self, text: str) -> None:
        self.repo.checkpoint_message(self.user_id, self.message_id, text, status="interrupted")
