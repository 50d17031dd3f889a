"""The UI throttle: one update per interval, urgent and final ones always, a budget shared by streams."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import ExitStack, closing

import pytest

from app.stream_load import StreamLoad
from ui import throttle
from ui.throttle import throttled


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(throttle.time, "monotonic", fake)
    return fake


def ticking(clock: Clock, count: int, step_s: float) -> Iterator[int]:
    """Updates 0..count-1, one every step_s of the fake clock."""
    for i in range(count):
        clock.now += step_s
        yield i


def test_one_update_per_interval_and_always_the_last(clock: Clock) -> None:
    sent = list(throttled(ticking(clock, 100, 0.01), interval_s=0.05, load=StreamLoad(200)))
    assert sent[-1] == 99
    assert 16 <= len(sent) <= 21  # one second of updates at 50 ms
    assert all(b - a >= 5 for a, b in itertools.pairwise(sent[:-1]))


def test_urgent_updates_skip_the_interval(clock: Clock) -> None:
    sent = list(throttled(ticking(clock, 50, 0.001), urgent=lambda i: i % 10 == 0, load=StreamLoad(200)))
    assert {0, 10, 20, 30, 40} <= set(sent)
    assert sent[-1] == 49


def test_many_streams_share_the_budget(clock: Clock) -> None:
    load = StreamLoad(200)
    with ExitStack() as others:
        for _ in range(31):
            others.enter_context(load)
        with load:
            assert load.interval(0.05) == pytest.approx(0.16)  # 32 streams: 200 updates/s between them
        sent = list(throttled(ticking(clock, 100, 0.01), interval_s=0.05, load=load))
    assert sent[-1] == 99
    assert 6 <= len(sent) <= 8  # one second at 160 ms, this stream being the 32nd
    assert load.active == 0


def test_few_streams_keep_the_floor() -> None:
    load = StreamLoad(200)
    with load, load:
        assert load.interval(0.05) == 0.05


def test_a_stream_leaves_the_load_when_finished_or_closed(clock: Clock) -> None:
    load = StreamLoad(200)
    list(throttled(ticking(clock, 5, 0.1), load=load))
    assert load.active == 0
    with closing(throttled(ticking(clock, 100, 0.1), load=load)) as stream:
        next(stream)
        assert load.active == 1
    assert load.active == 0
