"""Chat speed: tokens/s through the app's /chat endpoint vs raw llama-cpp-python, side by side.

Both sides run the same model with the same thread and attention settings and
the same messages (the app's own prompt), alternating trials so that machine
noise hits both alike. The app runs as users run it, `llamadesk serve` in its
own process, and is read over Gradio's HTTP API by a client that blocks on the
socket (tests/benchmarks/sse_client.py); raw llama-cpp-python runs here.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.chat import ChatSettings
from app.config import BackendSpec, Settings
from app.core import App
from app.registry import BackendRegistry
from backends.llamacpp import LlamaCppBackend, embedded_model_path, physical_cores
from tests.benchmarks.common import Row
from tests.benchmarks.sse_client import call_streaming, served_app

PROMPT = "Write a long story about a lighthouse keeper and a storm."
TRIALS = 5
N_CTX = 4096
MAX_TOKENS = ChatSettings().max_tokens  # what /chat uses
THREADS_MAX_TOKENS = 256  # the thread-defaults comparison: short replies, three each


@dataclass
class Trial:
    ttft_s: float
    tokens: int
    gen_s: float

    @property
    def tok_s(self) -> float:
        return (self.tokens - 1) / self.gen_s if self.gen_s > 0 else 0.0


def raw_trial(llm: Any, messages: list[dict[str, str]], seed: int, max_tokens: int = MAX_TOKENS) -> Trial:
    start = time.perf_counter()
    first = last = 0.0
    tokens = 0
    for chunk in llm.create_chat_completion(
        messages=messages, stream=True, max_tokens=max_tokens, temperature=0.7, seed=seed
    ):
        if chunk["choices"][0]["delta"].get("content"):
            now = time.perf_counter()
            first = first or now
            last = now
            tokens += 1
    return Trial(first - start, tokens, last - first)


def app_trial(http: httpx.Client, app: App, seed: int) -> Trial:
    timing = call_streaming(http, "chat", [f"{PROMPT} (#{seed})", ""])
    user = app.local_user_id()
    cid = app.repo.list_conversations(user, limit=1)[0].id
    reply = app.repo.messages(user, cid)[1]
    tokens = reply.completion_tokens or 0
    return Trial(timing.first - timing.started, tokens, timing.last - timing.first)


def default_thread_rows(model: Path) -> list[Row]:
    """The app's thread/attention defaults vs llama-cpp-python's own defaults (half the cores, no FA)."""
    from llama_cpp import Llama

    messages = [{"role": "user", "content": PROMPT}]
    stock = Llama(model_path=str(model), n_ctx=N_CTX, seed=0, verbose=False)
    ours = LlamaCppBackend("local", n_ctx=N_CTX)
    ours_llm = ours._model()
    stock_rates, our_rates = [], []
    for seed in range(3):
        stock_rates.append(raw_trial(stock, messages, seed, THREADS_MAX_TOKENS).tok_s)
        our_rates.append(raw_trial(ours_llm, messages, seed, THREADS_MAX_TOKENS).tok_s)
    stock.close()
    ours.close()
    ratio = statistics.median(our_rates) / statistics.median(stock_rates)
    return [
        Row(
            "chat",
            "llama-cpp-python defaults",
            statistics.median(stock_rates),
            "tok/s",
            note=f"n_threads={max(1, (os.cpu_count() or 2) // 2)}, no flash attention",
        ),
        Row(
            "chat",
            "app defaults",
            statistics.median(our_rates),
            "tok/s",
            note=f"n_threads={physical_cores()}, flash attention",
        ),
        Row("chat", "app defaults ÷ llama-cpp-python defaults", ratio, "ratio", ">= 1.5", ratio >= 1.5),
    ]


def run() -> list[Row]:
    from llama_cpp import Llama

    model = embedded_model_path()
    rows = default_thread_rows(model)
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{tmp}/bench.db"
        # Opened before the server, which then finds the schema current; used here to read token counts.
        backend = LlamaCppBackend("local", n_ctx=N_CTX)
        settings = Settings(db_url=db_url, backends=(BackendSpec("local", "llamacpp"),))
        registry = BackendRegistry(settings)
        registry.add(backend)
        backend.connect()
        app = App.open(settings, registry)
        # The raw side gets the exact messages the app sends (system line + language instruction).
        prompt = app.chat.build_prompt(backend, [{"role": "user", "content": PROMPT}], "en", ChatSettings())
        raw_messages = [dict(m) for m in prompt.messages]
        raw = Llama(
            model_path=str(model),
            n_ctx=N_CTX,
            n_threads=physical_cores(),
            n_threads_batch=os.cpu_count(),
            flash_attn=True,
            seed=0,
            verbose=False,
        )
        with served_app(db_url, "--ctx", str(N_CTX)) as url, httpx.Client(base_url=url, timeout=600) as http:
            app_trial(http, app, 999)  # warm-up: model load, title generation, first requests
            raw_trial(raw, raw_messages, 999)
            raws, apps = [], []
            for seed in range(TRIALS):
                messages = [*raw_messages[:-1], {"role": "user", "content": f"{PROMPT} (#{seed})"}]
                raws.append(raw_trial(raw, messages, seed))
                apps.append(app_trial(http, app, seed))
        app.close()
        raw.close()
    raw_rate = statistics.median(t.tok_s for t in raws)
    app_rate = statistics.median(t.tok_s for t in apps)
    ttft_overhead_ms = (
        statistics.median(t.ttft_s for t in apps) - statistics.median(t.ttft_s for t in raws)
    ) * 1000
    ratio = app_rate / raw_rate
    return [
        Row("chat", "raw llama-cpp-python", raw_rate, "tok/s", note="SmolLM2-135M Q4_1, same settings"),
        Row(
            "chat",
            "through /chat",
            app_rate,
            "tok/s",
            note=f"median of {TRIALS}; `llamadesk serve` process, HTTP/SSE client",
        ),
        Row("chat", "/chat tok/s ÷ raw tok/s", ratio, "ratio", ">= 0.97", ratio >= 0.97),
        Row(
            "chat", "TTFT overhead (/chat − raw)", ttft_overhead_ms, "ms", "<= 30 ms", ttft_overhead_ms <= 30
        ),
        *rows,
    ]


if __name__ == "__main__":
    from tests.benchmarks.common import markdown_table

    print(markdown_table(run()))
