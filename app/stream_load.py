"""A budget of work per second shared by the streams running at once.

A fixed interval per stream makes the work grow with the number of streams; with a shared budget,
each stream's interval widens instead once many run together.
"""

from __future__ import annotations

import threading
from types import TracebackType


class StreamLoad:
    """How many streams share a budget of ``per_s`` actions a second now; their intervals follow from it."""

    def __init__(self, per_s: float) -> None:
        self.per_s = per_s
        self._active = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return self._active

    def interval(self, floor_s: float) -> float:
        """The interval each stream keeps so that all of them together stay within the budget."""
        return max(floor_s, self._active / self.per_s)

    def __enter__(self) -> StreamLoad:
        with self._lock:
            self._active += 1
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        with self._lock:
            self._active -= 1
