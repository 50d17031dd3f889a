"""Issue 4: remote streams must not be serialized by the client.

Against the load simulator (every stream gets its own fixed token rate), 32
concurrent streams through OpenAICompatBackend.stream_chat should deliver close
to 32 times the tokens per second of one stream. Target: ratio >= 0.9.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backends.base import ChatMessage, GenerationOptions
from backends.vllm import OpenAICompatBackend
from tests.benchmarks.common import Row, markdown_table
from tests.benchmarks.sim_server import start_simulator, stop_simulator
from tests.benchmarks.sse_client import StreamTiming
from ui.api import CHAT_CONCURRENCY

__all__ = ["Row", "run", "start_simulator", "stop_simulator"]

RATE_TOK_S = 50.0
TOKENS = 200
# The app's default max_tokens: a full-length reply, over which each request's setup is spread.
LONG_TOKENS = 1024
STREAMS = 32
MAX_STREAMS = CHAT_CONCURRENCY  # as many chats as the app serves at once, past Gradio's default of 40
BURSTS = 5  # the app path is timed this many times, the median reported: a 2-core machine is noisy
TARGET = 0.9
# Beside the real-vLLM rows (bench_vllm.py), these say plainly that the server was simulated.
AREA = "chat (simulated)"
MESSAGES: list[ChatMessage] = [{"role": "user", "content": "Summarize the design document."}]


@dataclass(frozen=True)
class StreamResult:
    tokens: int
    started: float
    ended: float


def one_stream(backend: OpenAICompatBackend) -> StreamResult:
    started = time.perf_counter()
    tokens = 0
    for delta in backend.stream_chat(MESSAGES, GenerationOptions(max_tokens=TOKENS, temperature=0.0)):
        if delta.completion_tokens is not None:
            tokens = delta.completion_tokens
    return StreamResult(tokens, started, time.perf_counter())


def concurrent_streams(backend: OpenAICompatBackend, n: int) -> list[StreamResult]:
    results: list[StreamResult] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    gate = threading.Barrier(n)

    def worker() -> None:
        gate.wait()  # start together, so the wall time measures overlap
        try:
            result = one_stream(backend)
        except BaseException as exc:  # surfaced below, in the main thread
            with lock:
                errors.append(exc)
            return
        with lock:
            results.append(result)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} of {n} streams failed: {errors[0]}")
    return results


def tok_s(results: list[StreamResult]) -> float:
    wall = max(r.ended for r in results) - min(r.started for r in results)
    return sum(r.tokens for r in results) / wall


@dataclass(frozen=True)
class AppStreams:
    single: float  # tok/s of one chat alone
    aggregate: float  # tok/s of n chats at once
    streaming_ratio: float  # median first-to-last-token time of the n chats ÷ the single chat's
    first_token_s: float  # median time to first token of the n chats (setup, queued on the CPU)


def app_streams(url: str, n: int, repeats: int = BURSTS) -> AppStreams:
    """Single and n-stream tok/s through the whole app, served by `llamadesk serve` in its own process.

    The n chats start together `repeats` times; the median burst is reported.
    """
    import statistics
    import tempfile

    import httpx

    from app.config import BackendSpec, Settings
    from app.core import App
    from tests.benchmarks.sse_client import call_streaming, served_app

    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/bench.db"
        settings = Settings(
            db_url=db, backends=(BackendSpec("vllm", "vllm", url=url),), default_backend="vllm"
        )
        app = App.open(settings)
        user = app.local_user_id()
        # Conversations that already had an exchange, so that no title request rides along, and
        # with the language that exchange settled, as the app would have stored it.
        cids = []
        for i in range(n + 1):
            cid = app.repo.create_conversation(user, title=f"c{i}", backend="vllm", language="en")
            app.repo.add_message(user, cid, "user", "hello")
            app.repo.add_message(user, cid, "assistant", "hi")
            cids.append(cid)
        with served_app(db, "--vllm-url", url) as base:
            # One connection and one session per simulated user, as each browser tab has its own.
            clients = [httpx.Client(base_url=base, timeout=600) for _ in range(n)]
            sessions = {id(client): f"bench-user-{i}" for i, client in enumerate(clients)}
            for client in clients:  # the page load: the conversation list, in the user's session
                call_streaming(client, "conversations", [], session_hash=sessions[id(client)])

            def timed(client: httpx.Client, cid: str) -> StreamTiming:
                message = ["Summarize the design document.", cid]
                return call_streaming(client, "chat", message, session_hash=sessions[id(client)])

            def tokens(cid: str) -> int:
                return app.repo.messages(user, cid)[-1].completion_tokens or 0

            try:
                timed(clients[0], cids[n])  # warm-up
                alone = timed(clients[0], cids[n])
                single = tokens(cids[n]) / (alone.ended - alone.started)
                bursts = [_burst(clients, cids[:n], timed, tokens) for _ in range(repeats)]
            finally:
                for client in clients:
                    client.close()
        app.close()
    # The median burst by aggregate rate, reported whole so its rows agree with each other.
    aggregate, together = sorted(bursts, key=lambda b: b[0])[len(bursts) // 2]
    streaming = statistics.median(t.last - t.first for t in together) / (alone.last - alone.first)
    first_token = statistics.median(t.first - t.started for t in together)
    return AppStreams(single, aggregate, streaming, first_token)


def _burst(
    clients: list[Any],
    cids: list[str],
    timed: Callable[[Any, str], StreamTiming],
    tokens: Callable[[str], int],
) -> tuple[float, list[StreamTiming]]:
    """All chats at once, one per client; returns the aggregate tok/s and each chat's timing."""
    gate = threading.Barrier(len(cids))
    together: dict[str, StreamTiming] = {}

    def worker(client: Any, cid: str) -> None:
        gate.wait()
        together[cid] = timed(client, cid)

    threads = [threading.Thread(target=worker, args=pair) for pair in zip(clients, cids, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    timings = [together[c] for c in cids]
    wall = max(t.ended for t in timings) - min(t.started for t in timings)
    return sum(tokens(c) for c in cids) / wall, timings


def run() -> list[Row]:
    url, proc = start_simulator(RATE_TOK_S, TOKENS)
    backend = OpenAICompatBackend("sim", url)
    try:
        backend.connect()
        one_stream(backend)  # warm the connection pool and the model lookup
        single = tok_s([one_stream(backend)])
        aggregate = tok_s(concurrent_streams(backend, STREAMS))
        app = app_streams(url, STREAMS)
        full = app_streams(url, MAX_STREAMS, repeats=1)
    finally:
        backend.close()
        stop_simulator(proc)
    long_url, long_proc = start_simulator(RATE_TOK_S, LONG_TOKENS)
    try:
        long = app_streams(long_url, STREAMS, repeats=1)
    finally:
        stop_simulator(long_proc)
    ratio = aggregate / (STREAMS * single)
    app_ratio = app.aggregate / (STREAMS * app.single)
    long_ratio = long.aggregate / (STREAMS * long.single)
    full_ratio = full.aggregate / (MAX_STREAMS * full.single)
    note = f"simulator: {RATE_TOK_S:g} tok/s per stream, {TOKENS} tokens each, via stream_chat in threads"
    return [
        Row(AREA, "single stream (vLLM client)", single, "tok/s", note="simulator"),
        Row(AREA, f"{STREAMS} concurrent streams, aggregate", aggregate, "tok/s", note="simulator"),
        Row(
            AREA,
            f"{STREAMS}-stream scaling: aggregate ÷ ({STREAMS} × single)",
            ratio,
            "ratio",
            target=f">= {TARGET}",
            met=ratio >= TARGET,
            note=note,
        ),
        Row(AREA, "single chat through /chat", app.single, "tok/s", note="simulator, whole app path"),
        Row(
            AREA,
            f"{STREAMS} concurrent chats through /chat: aggregate ÷ ({STREAMS} × single)",
            app_ratio,
            "ratio",
            target=f">= {TARGET}",
            met=app_ratio >= TARGET,
            note=f"simulator, median of {BURSTS} bursts; HTTP/SSE → Gradio → ChatService → client → storage",
        ),
        Row(
            AREA,
            f"{STREAMS} concurrent chats: streaming time ÷ single chat's",
            app.streaming_ratio,
            "ratio",
            note="median, first to last token: the streams themselves run side by side",
        ),
        Row(
            AREA,
            f"{STREAMS} concurrent chats: time to first token",
            app.first_token_s * 1000,
            "ms",
            note="median; each request's setup (language, prompt, storage) waits for the CPU",
        ),
        Row(
            AREA,
            f"{MAX_STREAMS} concurrent chats (the chat limit): aggregate ÷ ({MAX_STREAMS} × single)",
            full_ratio,
            "ratio",
            note=f"simulator, one burst; time to first token {full.first_token_s * 1000:.0f} ms (median)",
        ),
        Row(
            AREA,
            f"{STREAMS} concurrent chats, {LONG_TOKENS}-token replies: aggregate ÷ ({STREAMS} × single)",
            long_ratio,
            "ratio",
            note=f"simulator; as long as the default max_tokens allows ({LONG_TOKENS / RATE_TOK_S:.0f} s)",
        ),
    ]


if __name__ == "__main__":
    print(markdown_table(run()))
