"""A Stop closes a streaming handler at once, wherever in its steps it lands."""

from __future__ import annotations

import asyncio
import inspect
import threading
import typing
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import gradio as gr
import pytest

from ui.stoppable import TabStops, ThreadedStream, stoppable

T = TypeVar("T")


class Handler:
    """A streaming handler whose first step waits until the test lets it go on."""

    def __init__(self) -> None:
        self.in_first_step = threading.Event()
        self.go_on = threading.Event()
        self.closed_at: str | None = None

    def stream(self, words: list[str]) -> Iterator[str]:
        try:
            self.in_first_step.set()
            self.go_on.wait(30)
            yield from words
        except GeneratorExit:
            self.closed_at = "a yield"
            raise
        finally:
            self.closed_at = self.closed_at or "the end"


def run(main: Coroutine[Any, Any, T]) -> T:
    # Off the main thread: the session's sync Playwright holds its event loop, and a thread starts
    # with an empty context, so no Gradio app of an earlier test is found as the current one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main).result()


async def wait_for(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 30)


def test_every_update_comes_through_and_the_handler_ends() -> None:
    async def main() -> list[str]:
        handler = Handler()
        handler.go_on.set()
        return [word async for word in stoppable(handler.stream)(["a", "b", "c"])]

    assert run(main()) == ["a", "b", "c"]


def test_a_cancel_during_the_first_step_closes_the_handler_once_the_step_returns() -> None:
    # Gradio cancels the task running the step. A plain generator stopped there was never closed
    # until garbage collection, so the reply stayed "streaming".
    handler = Handler()

    async def main() -> None:
        updates = stoppable(handler.stream)(["a", "b"])
        step = asyncio.ensure_future(anext(updates))
        await wait_for(handler.in_first_step)
        step.cancel()
        handler.go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await step
        assert handler.closed_at == "a yield"

    run(main())


def test_closing_between_steps_closes_the_handler() -> None:
    handler = Handler()
    handler.go_on.set()

    async def main() -> None:
        updates = stoppable(handler.stream)(["a", "b"])
        assert await anext(updates) == "a"
        await updates.aclose()
        assert handler.closed_at == "a yield"

    run(main())


def test_a_handler_that_fails_raises_through_and_is_finished() -> None:
    def failing() -> Iterator[str]:
        yield "a"
        raise RuntimeError("backend down")

    async def main() -> list[str]:
        return [word async for word in stoppable(failing)()]

    with pytest.raises(RuntimeError, match="backend down"):
        run(main())


def test_the_next_step_runs_while_the_reader_still_holds_the_last() -> None:
    # Stepped one at a time on request, the model sat idle while each token was delivered.
    second_step = threading.Event()

    def steps() -> Iterator[str]:
        yield "a"
        second_step.set()
        yield "b"

    async def main() -> list[str]:
        updates = stoppable(steps)()
        first = await anext(updates)
        await wait_for(second_step)  # before the reader has asked for it
        return [first, *[word async for word in updates]]

    assert run(main()) == ["a", "b"]


def test_what_is_ready_comes_as_one_batch_in_order_and_a_failure_after_it() -> None:
    made = threading.Event()

    def steps() -> Iterator[int]:
        yield from range(5)
        made.set()
        raise RuntimeError("backend down")

    async def main() -> list[list[int]]:
        stream = ThreadedStream(steps(), ahead=100)
        await wait_for(made)
        batches = [await stream.next_batch()]
        with pytest.raises(RuntimeError, match="backend down"):
            await stream.next_batch()
        await stream.close()
        return batches

    assert run(main()) == [[0, 1, 2, 3, 4]]


# -- a browser tab's Stop ------------------------------------------------------


def endless(made: list[str], closed: threading.Event, request: gr.Request) -> Iterator[str]:
    try:
        while True:
            made.append(f"word {len(made)}")
            yield made[-1]
    finally:
        closed.set()


def test_a_tab_s_stop_ends_its_stream_and_returns_once_the_last_update_is_out() -> None:
    stops = TabStops()
    made: list[str] = []
    closed = threading.Event()
    tab, other = gr.Request(session_hash="tab"), gr.Request(session_hash="other")

    async def main() -> tuple[list[str], int]:
        updates = stops.stream(endless)(0, made, closed, tab)
        got = [await anext(updates), await anext(updates)]

        async def read_on() -> None:
            async for word in updates:
                got.append(word)

        reader = asyncio.ensure_future(read_on())
        assert await stops.press(0, other) == 1  # another tab's Stop ends nothing here
        assert not reader.done()
        pressed = await stops.press(0, tab)
        assert reader.done(), "the Stop returned before the stream had sent its last update"
        await reader
        return got, pressed

    got, pressed = run(main())
    assert pressed == 1
    assert closed.is_set(), "the handler was not closed: the reply would stay 'streaming'"
    assert got == made[: len(got)], "an update came out of order or twice"


def test_a_stream_queued_before_its_tab_s_stop_never_starts() -> None:
    stops = TabStops()
    made: list[str] = []
    tab = gr.Request(session_hash="tab")

    async def main() -> list[str]:
        seen = 0  # the count the event was sent with, before the Stop
        assert await stops.press(seen, tab) == 1
        return [word async for word in stops.stream(endless)(seen, made, threading.Event(), tab)]

    assert run(main()) == [] and made == []
    # A stream sent after that Stop carries the new count and runs.
    async def after() -> str:
        updates = stops.stream(endless)(1, made, threading.Event(), tab)
        try:
            return await anext(updates)
        finally:
            await updates.aclose()

    assert run(after()) == "word 0"


def test_gradio_sees_the_stop_count_then_the_handler_s_own_parameters() -> None:
    signature = inspect.signature(TabStops().stream(endless))
    assert list(signature.parameters) == ["seen", "made", "closed", "request"]
    assert typing.get_type_hints(TabStops().stream(endless))["request"] is gr.Request
