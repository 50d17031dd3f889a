"""Summaries: overhead in tokens and time against the raw model's own limits, and follow-up TTFT.

The limit is what the raw model needs at least: the document's tokens at its
prefill rate plus the summary's tokens at its generation rate, both measured
in this run with the same settings.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from app.chat import ChatSettings
from app.config import BackendSpec, Settings
from app.core import App
from app.documents import extract_pdf
from app.registry import BackendRegistry
from backends.base import Delta
from backends.llamacpp import LlamaCppBackend
from tests.benchmarks.common import Row
from tests.pdfs import long_pdf

T = TypeVar("T")

LONG_PAGES = 40
SHORT_PAGES = 8


def open_app(tmp: str, backend: LlamaCppBackend) -> App:
    settings = Settings(db_url=f"sqlite:///{tmp}/bench.db", backends=(BackendSpec("local", "llamacpp"),))
    registry = BackendRegistry(settings)
    registry.add(backend)
    return App.open(settings, registry)


def raw_rates(backend: LlamaCppBackend, prompt_tokens: int) -> tuple[float, float]:
    """Prefill and generation tok/s of the bare llama.cpp model at this chunk size."""
    llm = backend._model()
    text = "The committee reviewed the budget, the schedule and the staffing plan in detail. " * 400
    tokens = llm.tokenize(text.encode())[:prompt_tokens]
    llm.reset()
    start = time.perf_counter()
    llm.eval(tokens)
    prefill = len(tokens) / (time.perf_counter() - start)
    llm.reset()
    llm.eval(tokens[:64])
    generated = 0
    start = time.perf_counter()
    for _ in llm.generate(tokens[:64], temp=0.7, reset=False):
        generated += 1
        if generated >= 200:
            break
    generation = generated / (time.perf_counter() - start)
    llm.reset()
    return prefill, generation


def on_model_thread(backend: LlamaCppBackend, measure: Callable[[], T]) -> T:
    """Run ``measure`` on the thread where the backend runs its generations.

    llama.cpp's OpenMP workers are per calling thread, and a second set in the process makes
    both sets slower; measured from this thread, the raw side would be handicapped.
    """
    results: list[T] = []

    def produce() -> Iterator[Delta]:
        results.append(measure())
        return iter(())

    for _ in backend._compute.stream(produce):
        pass
    return results[0]


def long_document_rows(tmp: str) -> list[Row]:
    backend = LlamaCppBackend("local")
    app = open_app(tmp, backend)
    doc = extract_pdf(long_pdf(Path(tmp) / "long.pdf", LONG_PAGES))
    plan = app.documents.plan(doc)
    prefill, generation = on_model_thread(backend, lambda: raw_rates(backend, plan.chunk_tokens))
    start = time.perf_counter()
    outcome = app.documents.summarize(app.local_user_id(), doc, plan=plan)
    wall = time.perf_counter() - start
    result = outcome.result
    limit = plan.document_tokens / prefill + result.output_tokens / generation
    token_ratio = result.tokens_processed / plan.document_tokens
    app.close()
    note = f"{LONG_PAGES} pages, {plan.document_tokens:,} tokens, {result.chunks} chunks"
    note += f", {result.levels} merge levels"
    return [
        Row("summarize", "raw prefill rate", prefill, "tok/s", note=f"{plan.chunk_tokens}-token chunk"),
        Row("summarize", "raw generation rate", generation, "tok/s"),
        Row(
            "summarize",
            "tokens processed ÷ document tokens",
            token_ratio,
            "ratio",
            "<= 1.15",
            token_ratio <= 1.15,
            note,
        ),
        Row(
            "summarize",
            "wall time ÷ prefill limit",
            wall / limit,
            "ratio",
            "<= 1.25",
            wall / limit <= 1.25,
            f"{wall:.1f} s vs limit {limit:.1f} s",
        ),
    ]


def follow_up_rows(tmp: str) -> list[Row]:
    backend = LlamaCppBackend("local")
    app = open_app(tmp, backend)
    doc = extract_pdf(long_pdf(Path(tmp) / "short.pdf", SHORT_PAGES))
    user = app.local_user_id()
    outcome = app.documents.summarize(user, doc)
    settings = ChatSettings(max_tokens=16, temperature=0)
    ttfts = []
    for question in ("What is section 2 about?", "Which code is on page 3?", "Who is named on page 5?"):
        final = list(app.chat.send(user, outcome.conversation_id, question, settings))[-1]
        ttfts.append(final.ttft_s or 0.0)
    app.close()
    cold, warm = ttfts[0], min(ttfts[1:])
    return [
        Row(
            "summarize",
            "follow-up TTFT, cold",
            cold * 1000,
            "ms",
            note=f"{outcome.document_tokens:,}-token document",
        ),
        Row("summarize", "follow-up TTFT, document cached", warm * 1000, "ms"),
        Row("summarize", "follow-up TTFT ÷ cold TTFT", warm / cold, "ratio", "<= 0.10", warm / cold <= 0.10),
    ]


def run() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        return [*follow_up_rows(tmp), *long_document_rows(tmp)]


if __name__ == "__main__":
    from tests.benchmarks.common import markdown_table

    print(markdown_table(run()))
