"""The summarizer's map steps: as many at once as the backend runs, and a failed step retried."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from app.core import App
from app.documents import Document
from app.map_steps import map_workers, run_steps
from backends.base import BackendUnavailable, ContextOverflow
from backends.scripted import ScriptedBackend, ScriptedRequest, words
from tests.conftest import make_app
from tests.pdfs import long_page_text

PAGES = 12
WINDOW = 900  # a few pages per chunk: several map steps


def document(pages: int = PAGES) -> Document:
    texts = [long_page_text(n) for n in range(1, pages + 1)]
    return Document(sha256=f"{pages}-pages", filename="report.pdf", pages=texts, language="en", warnings=[])


class Gauge:
    """How many requests the handler serves at once, at most."""

    def __init__(self) -> None:
        self.now = self.peak = 0
        self.lock = threading.Lock()
        self.never = threading.Event()

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1


def summarize(app: App, doc: Document) -> None:
    outcome = app.documents.summarize(app.local_user_id(), doc, plan=app.documents.plan(doc))
    assert outcome.result.summary.strip()


def test_map_steps_never_outnumber_what_the_backend_runs(db_url: str) -> None:
    gauge = Gauge()

    def handler(request: ScriptedRequest) -> Iterator[str]:
        with gauge:
            # Hold each step long enough for any others in flight to overlap it.
            gauge.never.wait(0.2)
            yield from words("A summary of these pages.")

    backend = ScriptedBackend(handler=handler, context_window=WINDOW, parallel=2)
    app = make_app(db_url, backend)
    try:
        plan = app.documents.plan(document())
        assert len(plan.chunks) > 4, "the test needs more map steps than the backend runs"
        summarize(app, document())
    finally:
        app.close()
    assert gauge.peak == 2, f"{gauge.peak} steps ran at once on a backend that runs 2"


def test_a_failed_map_step_is_retried_and_the_summary_completes(db_url: str) -> None:
    attempts: Counter[str] = Counter()

    def flaky(request: ScriptedRequest) -> Iterator[str]:
        key = request.messages[-1]["content"][-200:]
        attempts[key] += 1
        if attempts[key] == 1:
            raise BackendUnavailable("connection lost mid-reply")
        yield from words("A summary of these pages.")

    app = make_app(db_url, ScriptedBackend(handler=flaky, context_window=WINDOW))
    try:
        summarize(app, document())
    finally:
        app.close()
    assert attempts and all(n == 2 for n in attempts.values()), attempts


def test_run_steps_gives_up_after_its_attempts_and_never_retries_an_overflow() -> None:
    calls: Counter[int] = Counter()

    def always_down(item: int) -> int:
        calls[item] += 1
        raise BackendUnavailable("down")

    with pytest.raises(BackendUnavailable):
        run_steps([1], always_down, workers=1, cancel=threading.Event(), attempts=2, pause_s=0)
    assert calls[1] == 2

    def too_long(item: int) -> int:
        calls[item] += 1
        raise ContextOverflow("too long")

    with pytest.raises(ContextOverflow):
        run_steps([7], too_long, workers=1, cancel=threading.Event(), pause_s=0)
    assert calls[7] == 1


def test_a_backend_that_serializes_gets_one_step_at_a_time() -> None:
    class Serial(ScriptedBackend):
        concurrent = False

    assert map_workers(Serial(parallel=8), 1000, 10) == 1
    assert map_workers(ScriptedBackend(parallel=8), 1000, 3) == 3
    assert map_workers(ScriptedBackend(parallel=8), 1000, 30) == 8
