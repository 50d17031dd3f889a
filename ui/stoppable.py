"""Sync generators served on an event loop: each steps on a thread of its own, ahead of its reader.

Gradio and the /v1 routes run on an event loop, and a handler's steps block while a model computes.
A thread of its own takes the next step while the loop delivers the last one, and hands over each
step for about half the CPU of a hop to a pool thread (70 against 130–220 µs here): with 32 chats
starting at once, the median first token came 561 → 408 ms after the request.

A reader that leaves (a Stop, a closed connection, a cancelled task) closes the generator on that
thread as soon as the step in flight returns: the reply is stored as interrupted there and then, and
the model stops. A plain generator handler, stepped on a pool thread that a cancel cannot reach,
was never closed when a cancel landed in its first step, and its reply stayed "streaming".

The web page's Stop does not cancel Gradio's task: that cancel races the stream's last messages in
the browser, which then showed "Error" over the chat and never became idle (1 run in 3 with a Stop
every second). `TabStops` ends the tab's streams instead, and each event finishes like a reply that
came to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import threading
import typing
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from typing import Any, Generic, ParamSpec, TypeVar, cast

import anyio
import gradio as gr

P = ParamSpec("P")
T = TypeVar("T")
_DONE = object()
# A Stop waits this long at most for a stream to send its last update.
_PRESS_WAIT_S = 30.0


class ThreadedStream(Generic[T]):
    """Steps `steps` on a thread of its own, at most `ahead` items ahead of the reader."""

    def __init__(self, steps: Iterator[T], ahead: int) -> None:
        self._steps = steps
        self._ahead = ahead
        self._items: deque[T] = deque()
        self._lock = threading.Condition()
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None
        self._leaving = False
        self._ended = False
        self._error: BaseException | None = None
        self._finished: Future[None] = Future()
        # The caller's context (Gradio's request and app) goes with the steps, as a pool thread's would.
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(self._run,), name="stream", daemon=True).start()

    async def next_batch(self) -> list[T]:
        """The items made since the last call, in order; [] once the steps have ended.

        A step's exception is raised here, after the items made before it."""
        while True:
            with self._lock:
                if self._leaving:
                    return []
                batch = list(self._items)
                self._items.clear()
                if batch:
                    self._lock.notify()
                    return batch
                if self._ended:
                    if self._error is not None:
                        raise self._error
                    return []
                waiter = self._waiter = self._loop.create_future()
            await waiter

    def leave(self) -> None:
        """Ends the stream from any thread: the reader gets no more items, and the steps stop."""
        with self._lock:
            self._leaving = True
            self._items.clear()
            self._lock.notify()
            self._wake()

    async def close(self) -> None:
        """Stop stepping and close the generator; returns once it is closed, even when cancelled."""
        with self._lock:
            self._leaving = True
            self._lock.notify()
        with anyio.CancelScope(shield=True):
            await asyncio.wrap_future(self._finished)

    def _run(self) -> None:
        try:
            while self._room_for_one_more():
                item = next(self._steps, _DONE)
                if item is _DONE:
                    break
                with self._lock:
                    self._items.append(cast(T, item))
                    self._wake()
        except BaseException as exc:  # raised to the reader
            self._error = exc
        finally:
            try:
                close = getattr(self._steps, "close", None)
                if close is not None:
                    close()
            finally:
                with self._lock:
                    self._ended = True
                    self._wake()
                self._finished.set_result(None)

    def _room_for_one_more(self) -> bool:
        """Waits until the reader has taken enough; False once it has left."""
        with self._lock:
            while len(self._items) >= self._ahead and not self._leaving:
                self._lock.wait()
            return not self._leaving

    def _wake(self) -> None:
        """Called holding the lock: wakes a reader waiting for items."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is reading
                self._loop.call_soon_threadsafe(_resolve, waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # a cancelled reader's
        waiter.set_result(None)


def stoppable(handler: Callable[P, Iterator[T]]) -> Callable[P, AsyncIterator[T]]:
    """`handler` as an async generator, stepped one update ahead on a thread of its own."""

    @functools.wraps(handler)
    async def run(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        # One ahead: a UI's updates are computed while the last is sent, and none pile up unseen.
        stream = ThreadedStream(handler(*args, **kwargs), ahead=1)
        try:
            while batch := await stream.next_batch():
                for item in batch:
                    yield item
        finally:
            await stream.close()

    return run


class TabStops:
    """The Stop of each browser tab: it ends the tab's running streams, and those it queued before.

    A tab counts its Stops in a gr.State that each stream event sends along: an event that sat in
    Gradio's queue while the tab pressed Stop ends as soon as it starts.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pressed: dict[str, int] = {}
        # Each running stream of a tab, with the future its event sets once it has sent its last update.
        self._running: dict[str, dict[ThreadedStream[Any], Future[None]]] = {}

    async def press(self, seen: int, request: gr.Request) -> int:
        """Ends the tab's streams and returns once they have sent their last update (so that what the
        Stop shows next stays); returns the tab's new count of Stops."""
        tab = _tab(request)
        with self._lock:
            pressed = self._pressed[tab] = max(self._pressed.get(tab, 0), int(seen or 0)) + 1
            running = list(self._running.get(tab, {}).items())
        for stream, _ in running:
            stream.leave()
        if running:
            await asyncio.wait([asyncio.wrap_future(ended) for _, ended in running], timeout=_PRESS_WAIT_S)
        return pressed

    def stream(self, handler: Callable[..., Iterator[T]]) -> Callable[..., AsyncIterator[T]]:
        """`stoppable(handler)` that this tab's Stop ends; its first input is the tab's count of Stops."""

        async def run(seen: int, *args: Any) -> AsyncIterator[T]:
            tab = _tab(next(a for a in args if isinstance(a, gr.Request)))
            ended: Future[None] = Future()
            with self._lock:
                if self._pressed.get(tab, 0) > int(seen or 0):
                    return  # stopped while it waited in the queue: it never starts
                stream = ThreadedStream(handler(*args), ahead=1)
                self._running.setdefault(tab, {})[stream] = ended
            try:
                while batch := await stream.next_batch():
                    for item in batch:
                        yield item
            finally:
                with self._lock:
                    del self._running[tab][stream]
                    if not self._running[tab]:
                        del self._running[tab]
                try:
                    await stream.close()
                finally:
                    ended.set_result(None)

        # Gradio matches inputs to parameters by this signature: the count, then the handler's own.
        own = list(inspect.signature(handler).parameters.values())
        seen = inspect.Parameter("seen", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=int)
        run.__signature__ = inspect.Signature([seen, *own])  # type: ignore[attr-defined]
        # Gradio finds the gr.Request parameter by its type hint.
        run.__annotations__ = {"seen": int, **typing.get_type_hints(handler)}
        run.__name__ = getattr(handler, "__name__", "stream")
        return run


def _tab(request: gr.Request) -> str:
    return str(request.session_hash or id(request))
