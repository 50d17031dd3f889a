"""Summaries: overhead in tokens and time against the raw model's own limits, and follow-up TTFT.

The limit is what the raw model needs at least: the document's tokens at its
prefill rate plus the summary's tokens at its generation rate, both measured
in this run with the same settings.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from app.chat import ChatSettings
from app.config import BackendSpec, Settings
from app.core import App
from app.doc_chat import run_to_end
from app.documents import extract_pdf
from app.registry import BackendRegistry
from app.summarize import Plan
from backends.base import ChatMessage, Delta, GenerationOptions, Usage
from backends.llamacpp import LlamaCppBackend
from tests.benchmarks.common import Row
from tests.pdfs import long_pdf

T = TypeVar("T")

LONG_PAGES = 40
FILLER = "The committee reviewed the budget, the schedule and the staffing plan in detail. "
SHORT_PAGES = 8


def open_app(tmp: str, backend: LlamaCppBackend) -> App:
    settings = Settings(db_url=f"sqlite:///{tmp}/bench.db", backends=(BackendSpec("local", "llamacpp"),))
    registry = BackendRegistry(settings)
    registry.add(backend)
    return App.open(settings, registry)


def raw_replay_s(
    backend: LlamaCppBackend, plan: Plan, calls: Sequence[tuple[int, int]]
) -> tuple[float, float]:
    """Seconds the bare model needs for the least work the app's calls imply: (prefill, generation).

    Each map call becomes a prefill of its chunk's document tokens alone, then as many generated
    tokens as the app wrote; each merge call generates its output at its prompt's depth (that
    prompt's prefill is the app's overhead, so it is not counted). Depth matters: every step of
    generation reads the whole KV cache, so writing after 7,000 tokens is far slower than after 50.
    """
    llm = backend._model()
    filler = llm.tokenize(FILLER.encode())
    prefill_s = generation_s = 0.0
    for index, (prompt, written) in enumerate(calls):
        is_map = index < len(plan.chunks)
        depth = plan.chunks[index].tokens if is_map else prompt
        tokens = (filler * (depth // len(filler) + 1))[:depth]
        llm.reset()
        start = time.perf_counter()
        llm.eval(tokens[:-1])
        if is_map:
            prefill_s += time.perf_counter() - start
        start = time.perf_counter()
        for count, _ in enumerate(llm.generate(tokens[-1:], temp=0.7, reset=False), start=1):
            if count >= written:
                break
        generation_s += time.perf_counter() - start if written else 0.0
    llm.reset()
    return prefill_s, generation_s


def record_calls(backend: LlamaCppBackend) -> list[tuple[int, int]]:
    """(prompt tokens, completion tokens) of every generation the backend runs from now on.

    A pass the summarizer cuts for looping is closed before the backend reports usage; it is
    recorded all the same, with the tokens it wrote, or the replay would leave out its work.
    """
    calls: list[tuple[int, int]] = []
    stream_chat = backend.stream_chat

    def recording(messages: Sequence[ChatMessage], options: GenerationOptions) -> Iterator[Delta]:
        usage = Usage()
        try:
            for delta in stream_chat(messages, options):
                usage.add(delta)
                yield delta
        finally:
            calls.append(usage.settled(lambda: backend.count_message_tokens(messages)))

    backend.stream_chat = recording  # type: ignore[method-assign, assignment]
    return calls


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
    calls = record_calls(backend)
    start = time.perf_counter()
    outcome = run_to_end(app.documents.summary_events(app.local_user_id(), doc, plan=plan))
    wall = time.perf_counter() - start
    if len(calls) <= len(plan.chunks):  # every map step and at least the final merge
        raise RuntimeError(f"recorded {len(calls)} generations for {len(plan.chunks)} chunks")
    result = outcome.result
    prefill_s, generation_s = on_model_thread(backend, lambda: raw_replay_s(backend, plan, calls))
    prefill = plan.document_tokens / prefill_s
    generation = result.output_tokens / generation_s
    limit = prefill_s + generation_s
    token_ratio = result.tokens_processed / plan.document_tokens
    app.close()
    note = f"{LONG_PAGES} pages, {plan.document_tokens:,} tokens, {result.chunks} chunks"
    note += f", {result.levels} merge levels"
    return [
        Row("summarize", "raw prefill rate", prefill, "tok/s", note="the chunks' document tokens, replayed"),
        Row(
            "summarize",
            "raw generation rate",
            generation,
            "tok/s",
            note="the app's output lengths, each at its call's prompt depth",
        ),
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
    outcome = run_to_end(app.documents.summary_events(user, doc))
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
