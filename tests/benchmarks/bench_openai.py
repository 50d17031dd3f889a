"""The OpenAI-compatible API: tokens/s through POST /v1/chat/completions vs raw llama-cpp-python.

The same messages, settings and seeds on both sides, trials alternating, the app as users run it
(`llamadesk serve` in its own process). The client reads the server-sent events off the socket
with httpx, as bench_chat does for /chat, so that client-side parsing takes no CPU from the model.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time

import httpx

from backends.llamacpp import embedded_model_path, physical_cores
from tests.benchmarks.bench_chat import N_CTX, PROMPT, Trial, raw_trial
from tests.benchmarks.common import Row
from tests.benchmarks.sse_client import served_app

SYSTEM = "You are a helpful assistant."
TRIALS = 3
MAX_TOKENS = 512


def messages(seed: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"{PROMPT} (#{seed})"}]


def api_trial(http: httpx.Client, seed: int) -> Trial:
    body = {
        "model": "local",
        "messages": messages(seed),
        "max_tokens": MAX_TOKENS,
        "temperature": 0.7,
        "seed": seed,
        "stream": True,
    }
    start = time.perf_counter()
    first = last = 0.0
    tokens = 0
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: ") :])
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                last = time.perf_counter()
                first = first or last
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return Trial(first - start, tokens, last - first)


def run() -> list[Row]:
    from llama_cpp import Llama

    raw = Llama(
        model_path=str(embedded_model_path()),
        n_ctx=N_CTX,
        n_threads=physical_cores(),
        n_threads_batch=os.cpu_count(),
        flash_attn=True,
        seed=0,
        verbose=False,
    )
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{tmp}/bench.db"
        with served_app(db_url, "--ctx", str(N_CTX)) as url, httpx.Client(base_url=url, timeout=600) as http:
            api_trial(http, 999)  # warm-up: the model loads on the first request
            raw_trial(raw, messages(999), 999, MAX_TOKENS)
            raws, apis = [], []
            for seed in range(TRIALS):
                raws.append(raw_trial(raw, messages(seed), seed, MAX_TOKENS))
                apis.append(api_trial(http, seed))
    raw.close()
    raw_rate = statistics.median(t.tok_s for t in raws)
    api_rate = statistics.median(t.tok_s for t in apis)
    ttft_ms = (statistics.median(t.ttft_s for t in apis) - statistics.median(t.ttft_s for t in raws)) * 1000
    ratio = api_rate / raw_rate
    return [
        Row("openai", "raw llama-cpp-python", raw_rate, "tok/s", note="SmolLM2-135M Q4_1, same messages"),
        Row(
            "openai",
            "through /v1/chat/completions",
            api_rate,
            "tok/s",
            note=f"median of {TRIALS}; `llamadesk serve` process, streamed SSE",
        ),
        Row("openai", "/v1 tok/s ÷ raw tok/s", ratio, "ratio", ">= 0.97", ratio >= 0.97),
        Row("openai", "TTFT overhead (/v1 − raw)", ttft_ms, "ms", note="HTTP, JSON, prompt templating"),
    ]


if __name__ == "__main__":
    from tests.benchmarks.common import markdown_table

    print(markdown_table(run()))
