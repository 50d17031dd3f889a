"""Streaming handlers that a Stop closes at once, wherever it lands.

Gradio stops an event by cancelling the task that runs its current step. A plain generator
handler steps in a worker thread that the cancel cannot reach: when the Stop landed during the
first step, Gradio had not yet kept the generator, so nothing closed it until garbage collection,
and the reply stayed "streaming". Later stops were closed by a retry loop that holds Gradio's
cancel lock for as long as the step runs.

`stoppable` runs the same generator behind an async one. A cancel, or Gradio closing the
stream, reaches its `finally`, which closes the generator as soon as the step in flight returns:
the reply is stored as interrupted there and then, and the model stops.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import ParamSpec, TypeVar, cast

import anyio
from gradio.context import LocalContext

P = ParamSpec("P")
T = TypeVar("T")
_DONE = object()


def stoppable(handler: Callable[P, Iterator[T]]) -> Callable[P, AsyncIterator[T]]:
    """`handler` as an async generator whose steps run in a worker thread."""

    @functools.wraps(handler)
    async def run(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        steps = handler(*args, **kwargs)
        limiter = _gradio_threads()
        # Held while a step runs, so that the close waits for it instead of failing "already executing".
        stepping = threading.Lock()

        def step() -> object:
            with stepping:
                return next(steps, _DONE)

        def close() -> None:
            with stepping:
                if isinstance(steps, Generator):
                    steps.close()

        try:
            while True:
                item = await anyio.to_thread.run_sync(step, limiter=limiter)
                if item is _DONE:
                    return
                yield cast(T, item)
        finally:
            # Shielded: the task is being cancelled, and the close must still run to its end.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(close, limiter=limiter)

    return run


def _gradio_threads() -> anyio.CapacityLimiter | None:
    """The thread budget Gradio gives its own handlers (launch's max_threads); None is anyio's 40.

    A stream holds a thread for each step, so the chats past anyio's 40 would wait for one.
    """
    blocks = LocalContext.blocks.get(None)
    return getattr(blocks, "limiter", None)
