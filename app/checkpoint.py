"""Saving a reply while it is written, so a stop, a crash or a client that went away loses little."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from storage.repo import Repository

CHECKPOINT_INTERVAL_S = 0.5


@dataclass
class Checkpointer:
    """Writes the partial reply at most every CHECKPOINT_INTERVAL_S seconds."""

    repo: Repository
    user_id: int
    message_id: int
    last: float = field(default_factory=time.monotonic)

    def maybe(self, text: str) -> None:
        now = time.monotonic()
        if now - self.last >= CHECKPOINT_INTERVAL_S:
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
