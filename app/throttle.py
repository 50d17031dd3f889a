"""Rate-limit a stream of cumulative updates for a UI.

Each update carries the whole state so far, so skipping intermediate ones
loses nothing; the last one is always delivered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

UI_INTERVAL_S = 0.05


def throttled(
    updates: Iterator[T], interval_s: float = UI_INTERVAL_S, urgent: Callable[[T], bool] = lambda _: False
) -> Iterator[T]:
    """Yield at most one update per interval, plus every ``urgent`` one and the final one."""
    last_sent = 0.0
    pending: T | None = None
    has_pending = False
    for update in updates:
        now = time.monotonic()
        if urgent(update) or now - last_sent >= interval_s:
            yield update
            last_sent = now
            has_pending = False
        else:
            pending, has_pending = update, True
    if has_pending:
        yield pending  # type: ignore[misc]
