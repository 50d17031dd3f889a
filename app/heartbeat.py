"""A heartbeat for streaming replies, so that only replies whose writer is gone are marked interrupted.

Every process that streams (a server, a `llamadesk chat`) refreshes the ``updated_at`` of its live
``streaming`` rows every BEAT_S seconds, even while the model is still reading a long prompt and
no checkpoint is due. Any process may then sweep the rows that missed several beats: their writer
crashed or was killed. Rows of a live writer, in this process or another one sharing the database
(a second replica, a CLI run beside the server), are left alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.exc import SQLAlchemyError

from storage.repo import Repository

BEAT_S = 1.0
# Five missed beats: a live writer on a loaded machine is never that late, a dead one is found soon.
STALE_AFTER_S = 5.0
# A server restarted within STALE_AFTER_S of a kill finds its last reply still fresh at start-up;
# it sweeps again while it runs, as it does for a replica sharing its database that dies.
SWEEP_EVERY_S = 2.0

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self, repo: Repository, beat_s: float = BEAT_S, stale_after_s: float = STALE_AFTER_S
    ) -> None:
        self._repo = repo
        self._beat_s = beat_s
        self._stale_after_s = stale_after_s
        self._live: dict[int, int] = {}  # message id -> how many streams write it
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sweeper: threading.Thread | None = None

    @contextmanager
    def alive(self, message_id: int) -> Iterator[None]:
        """Keep ``message_id`` fresh while the block runs."""
        with self._lock:
            self._live[message_id] = self._live.get(message_id, 0) + 1
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="reply heartbeat", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                left = self._live.pop(message_id) - 1
                if left:
                    self._live[message_id] = left

    def sweep(self) -> int:
        """Mark the streaming replies whose writer stopped beating as interrupted; how many."""
        return self._repo.mark_streaming_interrupted(stale_after=self._stale_after_s)

    def keep_sweeping(self, report: Callable[[int], None], every_s: float = SWEEP_EVERY_S) -> None:
        """Sweep every `every_s` until closed; `report` hears how many replies each sweep marked."""

        def run() -> None:
            while not self._stop.wait(every_s):
                try:
                    if marked := self.sweep():
                        report(marked)
                except SQLAlchemyError:  # a busy or lost database: the next sweep tries again
                    log.warning("sweep of cut-off replies failed", exc_info=True)

        with self._lock:
            if self._sweeper is None and not self._stop.is_set():
                self._sweeper = threading.Thread(target=run, name="reply sweeper", daemon=True)
                self._sweeper.start()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            threads, self._thread, self._sweeper = (self._thread, self._sweeper), None, None
        for thread in threads:
            if thread is not None:
                thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._beat_s):
            with self._lock:
                ids = list(self._live)
            if not ids:
                continue
            try:
                self._repo.touch_streaming(ids)
            except SQLAlchemyError:  # a busy or lost database: the next beat tries again
                log.warning("reply heartbeat failed", exc_info=True)
