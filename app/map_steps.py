"""The summarizer's map steps: as many at once as the backend runs, each retried before it fails the run.

Sending more steps than the server runs at once only queues them there, and every queued step
then waits as long as a whole batch takes; so the number in flight comes from the backend
(for vLLM, what its KV cache holds at the step's size). A step that fails is tried again, since
one lost chunk should not throw away the whole document's work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from backends.base import BackendError, ChatBackend, ContextOverflow

Item = TypeVar("Item")
Result = TypeVar("Result")

STEP_ATTEMPTS = 3
RETRY_PAUSE_S = 2.0  # times the attempt number: a restarting server gets a moment


def map_workers(backend: ChatBackend, step_tokens: int, steps: int) -> int:
    """Steps to run at once: 1 for a backend that serializes, else what the backend runs of this size."""
    if not backend.concurrent or steps <= 1:
        return 1
    return max(1, min(backend.parallel_for(step_tokens), steps))


def run_steps(
    items: Sequence[Item],
    step: Callable[[Item], Result],
    workers: int,
    cancel: threading.Event,
    attempts: int = STEP_ATTEMPTS,
    pause_s: float = RETRY_PAUSE_S,
) -> list[Result]:
    """``step`` over every item, in order; a step failing with a BackendError is retried."""

    def attempt(item: Item) -> Result:
        for number in range(1, attempts + 1):
            try:
                return step(item)
            except ContextOverflow:
                raise  # the same prompt would overflow again
            except BackendError:
                if number == attempts or cancel.wait(pause_s * number):
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    if workers <= 1:
        return [attempt(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="map step") as pool:
        return list(pool.map(attempt, items))
