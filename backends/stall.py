"""Tell a reply queued on a busy server from a stalled one.

A vLLM server that runs as many requests as it can holds the rest in its queue, and a queued
request receives nothing until its turn: with a plain read timeout, a healthy server under load
looks dead. So a silent stream counts as stalled only when the server made no progress either:
its token counters (from /metrics) did not move for the whole timeout. A server with no such
counters gets the plain timeout.

One watcher thread per backend checks the silent streams; a stalled one has its socket shut down,
which wakes the thread reading it with an error that the backend reports as a timeout.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

# Progress of a server: any value that changes whenever the engine does work; None: unknown.
Progress = Callable[[], object | None]
MAX_CHECK_EVERY_S = 5.0


class Watched:
    """One stream under watch; ``touch()`` on every chunk received."""

    def __init__(self, closer: Callable[[], None]) -> None:
        self.last_activity = time.monotonic()
        self.stalled = False
        self._closer = closer

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def stop(self) -> None:
        self.stalled = True
        self._closer()


class StallWatch:
    def __init__(self, timeout_s: float, progress: Progress) -> None:
        self.timeout_s = timeout_s
        self._progress = progress
        self._check_every = min(MAX_CHECK_EVERY_S, timeout_s / 4)
        self._watched: set[Watched] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._last_seen: object | None = None
        self._last_change = 0.0

    @contextlib.contextmanager
    def watch(self, response: Any) -> Iterator[Watched]:
        """Watch an open streaming httpx response while the block runs."""
        watched = Watched(lambda: shut_down(response))
        with self._lock:
            self._watched.add(watched)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="stall watch", daemon=True)
                self._thread.start()
        try:
            yield watched
        finally:
            with self._lock:
                self._watched.discard(watched)

    def close(self) -> None:
        """Stop watching and wait for a check in flight: it uses the backend's HTTP client."""
        self._closed.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while not self._closed.wait(self._check_every):
            with self._lock:
                if not self._watched:
                    self._thread = None
                    return
                silent = [w for w in self._watched if time.monotonic() - w.last_activity >= self._check_every]
            if silent:
                self._check(silent)
        with self._lock:
            self._thread = None

    def _check(self, silent: list[Watched]) -> None:
        now = time.monotonic()
        progress = self._progress()
        if progress is not None and progress != self._last_seen:
            self._last_seen, self._last_change = progress, now
        working = progress is not None and now - self._last_change < self.timeout_s
        for watched in silent:
            if now - watched.last_activity < self.timeout_s:
                continue
            if working:
                watched.touch()  # queued behind others on a server that is getting on with them
            else:
                watched.stop()


def shut_down(response: Any) -> None:
    """Shut the response's socket: unlike close(), this wakes a thread blocked reading it."""
    stream = getattr(response, "extensions", {}).get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    else:
        response.close()
