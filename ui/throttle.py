"""Rate-limit a stream of cumulative updates for a UI.

Each update carries the whole state so far, so skipping intermediate ones
loses nothing; the last one is always delivered.

The streams of one process share an update budget. Every update a UI is sent
costs the server about 0.7 ms of CPU under one interpreter lock (the web
framework's queue, serialization and SSE framing), so at a fixed interval per
stream, 32 streams spent a third of a core on updates alone. With the budget,
each stream's interval widens as more streams run at once: 50 ms for up to 10,
160 ms for 32.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from typing import TypeVar

from app.stream_load import StreamLoad

T = TypeVar("T")

UI_INTERVAL_S = 0.05
UPDATES_PER_S = 200  # for all streams of the process together


PROCESS_LOAD = StreamLoad(UPDATES_PER_S)


def throttled(
    updates: Iterator[T],
    interval_s: float = UI_INTERVAL_S,
    urgent: Callable[[T], bool] = lambda _: False,
    load: StreamLoad = PROCESS_LOAD,
) -> Generator[T, None, None]:
    """Yield at most one update per interval, plus every ``urgent`` one and the final one.

    The interval is ``interval_s`` or, with many streams running in ``load``, their share of its budget.
    """
    last_sent = 0.0
    pending: T | None = None
    has_pending = False
    with load:
        for update in updates:
            now = time.monotonic()
            if urgent(update) or now - last_sent >= load.interval(interval_s):
                yield update
                last_sent = now
                has_pending = False
            else:
                pending, has_pending = update, True
        if has_pending:
            yield pending  # type: ignore[misc]
