"""The in-process llama.cpp backend with the real embedded SmolLM2."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from backends.base import ContextOverflow, Delta, GenerationOptions
from backends.llamacpp import (
    GGML_TYPE_F16,
    GGML_TYPE_Q8_0,
    LlamaCppBackend,
    ModelShape,
    _ComputeThread,
    model_shape,
    physical_cores,
    plan_context,
)

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Name three colours."},
]


def test_streams_deltas_and_reports_usage(local_backend: LlamaCppBackend) -> None:
    deltas = list(
        local_backend.stream_chat(MESSAGES, GenerationOptions(max_tokens=32, temperature=0, seed=1))
    )
    texts = [d.text for d in deltas if d.text]
    assert len(texts) > 3, "the reply should arrive in several pieces"
    final = deltas[-1]
    assert final.finish_reason in ("stop", "length")
    assert final.prompt_tokens == local_backend.count_message_tokens(MESSAGES)
    assert final.completion_tokens == len(texts)
    assert "".join(texts).strip()


def test_counts_tokens_with_the_model_tokenizer(local_backend: LlamaCppBackend) -> None:
    assert local_backend.count_tokens("") == 0
    short = local_backend.count_tokens("hello")
    long = local_backend.count_tokens("hello " * 50)
    assert 1 <= short <= 2
    assert 45 <= long <= 101
    # The chat template adds role markers around every message.
    framed = local_backend.count_message_tokens(MESSAGES)
    assert framed > sum(local_backend.count_tokens(m["content"]) for m in MESSAGES)


def test_overflow_raises_the_typed_error(local_backend: LlamaCppBackend) -> None:
    huge = [{"role": "user", "content": "word " * (local_backend.context_window + 100)}]
    with pytest.raises(ContextOverflow) as info:
        list(local_backend.stream_chat(huge, GenerationOptions(max_tokens=8)))
    assert info.value.context_window == local_backend.context_window
    assert info.value.prompt_tokens and info.value.prompt_tokens > local_backend.context_window


def test_max_tokens_is_capped_to_the_room_left() -> None:
    small = LlamaCppBackend("small", n_ctx=512)
    try:
        filler = [{"role": "user", "content": "apple " * 440}]
        deltas = list(small.stream_chat(filler, GenerationOptions(max_tokens=4096, temperature=0)))
    finally:
        small.close()
    usage = deltas[-1]
    assert usage.prompt_tokens is not None and usage.completion_tokens is not None
    assert usage.prompt_tokens + usage.completion_tokens <= 512


def test_one_request_at_a_time(local_backend: LlamaCppBackend) -> None:
    """Two threads share one model; generations run one at a time, so both replies are whole."""
    results: dict[int, str] = {}

    def run(i: int) -> None:
        opts = GenerationOptions(max_tokens=16, temperature=0, seed=i)
        results[i] = "".join(d.text for d in local_backend.stream_chat(MESSAGES, opts))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 2
    assert results[0] == results[1], "same prompt, temperature 0: identical replies when not interleaved"


def test_every_generation_runs_on_the_one_compute_thread(local_backend: LlamaCppBackend) -> None:
    # llama.cpp's OpenMP workers are per calling thread: callers from many threads must not
    # each bring a team of their own (see _ComputeThread).
    ran_on: list[str] = []
    generate = local_backend._generate

    def spying(*args: object) -> Iterator[Delta]:
        ran_on.append(threading.current_thread().name)
        yield from generate(*args)  # type: ignore[arg-type]

    local_backend._generate = spying  # type: ignore[method-assign]
    try:
        callers = [
            threading.Thread(
                target=lambda: list(local_backend.stream_chat(MESSAGES, GenerationOptions(max_tokens=4)))
            )
            for _ in range(3)
        ]
        for t in callers:
            t.start()
        for t in callers:
            t.join(timeout=120)
    finally:
        del local_backend._generate
    assert len(ran_on) == 3 and len(set(ran_on)) == 1
    assert ran_on[0] not in {t.name for t in callers}


def test_closing_a_stream_stops_its_producer_and_frees_the_thread() -> None:
    compute = _ComputeThread("test")
    produced: list[int] = []
    stopped = threading.Event()

    def endless() -> Iterator[Delta]:
        try:
            while True:
                produced.append(1)
                yield Delta(text="x")
        finally:
            stopped.set()

    stream = compute.stream(endless)
    assert next(stream).text == "x"
    stream.close()  # type: ignore[attr-defined]
    assert stopped.wait(timeout=10), "the producer was not closed"
    # The next job gets the thread: the endless one is really gone.
    assert [d.text for d in compute.stream(lambda: iter([Delta(text="next")]))] == ["next"]


def test_a_producer_error_is_raised_in_the_caller() -> None:
    compute = _ComputeThread("test")

    def failing() -> Iterator[Delta]:
        yield Delta(text="a")
        raise ContextOverflow("too long", prompt_tokens=9, context_window=8)

    stream = compute.stream(failing)
    assert next(stream).text == "a"
    with pytest.raises(ContextOverflow):
        next(stream)


def test_uses_all_physical_cores_and_reads_the_gguf(local_backend: LlamaCppBackend) -> None:
    info = local_backend.info()
    assert info.extra["n_threads"] == physical_cores()
    assert info.demo is True
    assert info.context_window == 4096
    shape = model_shape(dict(local_backend._model().metadata))
    assert shape.trained_ctx == 8192
    assert shape.n_layers == 30


def test_context_plan_follows_free_ram() -> None:
    llama8b = ModelShape(trained_ctx=131072, n_layers=32, n_kv_heads=8, head_dim_k=128, head_dim_v=128)
    assert llama8b.kv_bytes_per_token() == 128 * 1024  # 128 KiB per token in f16
    weights = int(4.6 * 1024**3)
    big = plan_context(llama8b, weights, 64 * 1024**3, flash_attn=True)
    assert big.n_ctx == 131072 and big.type_kv == GGML_TYPE_F16
    laptop = plan_context(llama8b, weights, 16 * 1024**3, flash_attn=True)
    assert laptop.type_kv == GGML_TYPE_Q8_0 and 32768 <= laptop.n_ctx < 131072
    no_fa = plan_context(llama8b, weights, 16 * 1024**3, flash_attn=False)
    assert no_fa.type_kv == GGML_TYPE_F16 and no_fa.n_ctx < laptop.n_ctx
    tiny = plan_context(llama8b, weights, 4 * 1024**3, flash_attn=True)
    assert tiny.n_ctx == 512


def test_ctx_override(model_path: object) -> None:
    backend = LlamaCppBackend("small", n_ctx=1024)
    try:
        assert backend.connect().context_window == backend.context_window == 1024
        assert backend.info().extra["context_reason"] == "set by --ctx"
    finally:
        backend.close()
