"""Issue 4: remote streams must not be serialized by the client.

Against the load simulator (every stream gets its own fixed token rate), 32
concurrent streams through OpenAICompatBackend.stream_chat should deliver close
to 32 times the tokens per second of one stream. Target: ratio >= 0.9.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from backends.base import ChatMessage, GenerationOptions
from backends.vllm import OpenAICompatBackend
from tests.benchmarks.common import Row, markdown_table
from tests.benchmarks.sim_server import start_simulator, stop_simulator

__all__ = ["Row", "run", "start_simulator", "stop_simulator"]

RATE_TOK_S = 50.0
TOKENS = 200
STREAMS = 32
TARGET = 0.9
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


def run() -> list[Row]:
    url, proc = start_simulator(RATE_TOK_S, TOKENS)
    backend = OpenAICompatBackend("sim", url)
    try:
        one_stream(backend)  # warm the connection pool and the model lookup
        single = tok_s([one_stream(backend)])
        aggregate = tok_s(concurrent_streams(backend, STREAMS))
    finally:
        backend.close()
        stop_simulator(proc)
    ratio = aggregate / (STREAMS * single)
    note = f"simulator: {RATE_TOK_S:g} tok/s per stream, {TOKENS} tokens each, via stream_chat in threads"
    return [
        Row("chat", "single stream (vLLM client)", single, "tok/s", note="simulator"),
        Row("chat", f"{STREAMS} concurrent streams, aggregate", aggregate, "tok/s", note="simulator"),
        Row(
            "chat",
            f"{STREAMS}-stream scaling: aggregate ÷ ({STREAMS} × single)",
            ratio,
            "ratio",
            target=f">= {TARGET}",
            met=ratio >= TARGET,
            note=note,
        ),
    ]


if __name__ == "__main__":
    print(markdown_table(run()))
