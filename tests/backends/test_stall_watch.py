"""The stall watch's thread ends when its backend closes, and never outlives the HTTP client it uses."""

from __future__ import annotations

import threading

from backends.stall import StallWatch


class Response:
    """A streaming response that cannot be shut: the watch falls back to close()."""

    def __init__(self) -> None:
        self.closed = False
        self.extensions: dict[str, object] = {}

    def close(self) -> None:
        self.closed = True


def test_close_waits_for_a_check_in_flight_and_no_check_follows() -> None:
    # CI saw it: a check that asked /metrics after the backend closed its client raised in the thread.
    checking = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def progress() -> object:
        calls.append(1)
        checking.set()
        release.wait(30)
        return len(calls)

    watch = StallWatch(timeout_s=0.04, progress=progress)
    with watch.watch(Response()):
        assert checking.wait(30), "the silent stream was never checked"
        closer = threading.Thread(target=watch.close)
        closer.start()
        closer.join(0.2)
        assert closer.is_alive(), "close() returned while a check was still using the client"
        release.set()
        closer.join(30)
        assert not closer.is_alive()
    checks_at_close = len(calls)
    # The thread is gone: nothing is left that could call progress() again.
    assert not any(t.name == "stall watch" and t.is_alive() for t in threading.enumerate())
    assert len(calls) == checks_at_close


def test_a_stream_silent_past_the_timeout_on_an_idle_server_is_stopped() -> None:
    watch = StallWatch(timeout_s=0.04, progress=lambda: None)  # no counters: the plain timeout
    response = Response()
    try:
        with watch.watch(response) as watched:
            stopped = threading.Event()
            original = watched.stop

            def stop() -> None:
                original()
                stopped.set()

            watched.stop = stop  # type: ignore[method-assign]
            assert stopped.wait(30)
        assert watched.stalled and response.closed
    finally:
        watch.close()
