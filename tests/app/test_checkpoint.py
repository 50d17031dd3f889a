"""Checkpoints of replies being written share a budget of database writes."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import pytest

from app import checkpoint
from app.checkpoint import CHECKPOINT_INTERVAL_S, Checkpointer
from app.stream_load import StreamLoad


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


class Writes:
    """Stands in for the repository: counts the partial replies written."""

    def __init__(self) -> None:
        self.count = 0

    def checkpoint_message(self, *_args: Any, **_kwargs: Any) -> None:
        self.count += 1


def writes_in(replies: int, seconds: float, load: StreamLoad, monkeypatch: pytest.MonkeyPatch) -> int:
    """Database writes while ``replies`` replies each grow every 1/64 s (exact in binary) for ``seconds``."""
    clock, writes = Clock(), Writes()
    monkeypatch.setattr(checkpoint, "time", clock)
    with ExitStack() as running:
        writers = [
            running.enter_context(Checkpointer(writes, 1, i, load=load))  # type: ignore[arg-type]
            for i in range(replies)
        ]
        for _ in range(round(seconds * 64)):
            clock.now += 1 / 64
            for writer in writers:
                writer.maybe("text so far")
    return writes.count


def test_a_reply_alone_is_saved_every_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    assert writes_in(1, 10.0, StreamLoad(16), monkeypatch) == round(10.0 / CHECKPOINT_INTERVAL_S)


def test_many_replies_together_stay_within_the_write_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # 32 replies at a fixed 0.5 s made 64 commits a second; the budget holds them to 16.
    writes = writes_in(32, 10.0, StreamLoad(16), monkeypatch)
    assert writes == 16 * 10


def test_a_finished_reply_leaves_the_budget_to_the_others() -> None:
    load = StreamLoad(16)
    with Checkpointer(Writes(), 1, 1, load=load), Checkpointer(Writes(), 1, 2, load=load):  # type: ignore[arg-type]
        assert load.active == 2
    assert load.active == 0
