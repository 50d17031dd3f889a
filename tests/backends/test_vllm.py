"""OpenAICompatBackend against what only other servers show: llama_cpp.server with SmolLM2
(a server without vLLM's extras) and the vLLM-like simulator (failure modes a real engine
cannot be made to show on demand). The real vLLM has its own tests: test_vllm_engine.py."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends.base import (
    BackendError,
    BackendUnavailable,
    ChatMessage,
    ContextOverflow,
    Delta,
    GenerationOptions,
)
from backends.vllm import (
    OpenAICompatBackend,
    _BoundedCache,
    is_overflow_message,
    normalize_base_url,
    overflow_error,
)

N_CTX = 2048  # what conftest starts llama_cpp.server with
ServerFactory = Callable[[], tuple[str, subprocess.Popen[bytes]]]

GREEDY = GenerationOptions(max_tokens=24, temperature=0.0, seed=7)
POEM: list[ChatMessage] = [{"role": "user", "content": "Write a short poem about the sea."}]
SAMPLE_TEXT = (
    "llamadesk summarizes PDFs of up to 128K tokens. Größe, naïve café, 東京, "
    "and numbers like 1234567 tokenize in their own ways."
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def user(text: str) -> list[ChatMessage]:
    return [{"role": "user", "content": text}]


def split(deltas: list[Delta]) -> tuple[list[str], Delta]:
    texts = [d.text for d in deltas if d.text]
    return texts, deltas[-1]


@pytest.fixture
def local(llama_server: str) -> Iterator[OpenAICompatBackend]:
    backend = OpenAICompatBackend("local-peer", llama_server)
    backend.connect()
    yield backend
    backend.close()


@pytest.fixture
def sim(sim_server: str) -> Iterator[OpenAICompatBackend]:
    backend = OpenAICompatBackend("sim", sim_server + "/v1/")
    backend.connect()
    yield backend
    backend.close()


# ---- llama_cpp.server ----------------------------------------------------------


def test_streams_text_in_several_deltas_with_usage(local: OpenAICompatBackend) -> None:
    texts, last = split(list(local.stream_chat(POEM, GREEDY)))
    assert len(texts) >= 3
    assert "".join(texts).strip()
    assert last.text == ""
    assert last.finish_reason in ("stop", "length")
    assert last.prompt_tokens is not None and last.prompt_tokens > 5
    assert last.completion_tokens is not None and 0 < last.completion_tokens <= GREEDY.max_tokens + 1


def test_model_and_context_window_come_from_the_server(local: OpenAICompatBackend) -> None:
    assert local.model  # the server's model alias, from /v1/models
    assert local.context_window == N_CTX
    info = local.info()
    assert info.context_window == N_CTX
    assert info.concurrent is True
    assert info.kind == "vllm"
    assert info.extra["context_window_source"] == "probe"
    assert info.extra["token_count"] == "server"
    # llama_cpp.server runs one request at a time; the summarizer must not send it eight.
    assert (local.parallel, info.extra["parallel_source"]) == (1, "llama.cpp")


def test_count_tokens_matches_the_in_process_tokenizer(local: OpenAICompatBackend, model_path: Path) -> None:
    from llama_cpp import Llama

    vocab = Llama(model_path=str(model_path), vocab_only=True, verbose=False)
    expected = len(vocab.tokenize(SAMPLE_TEXT.encode("utf-8"), add_bos=False, special=True))
    # The server may add a BOS token; nothing else may differ.
    assert abs(local.count_tokens(SAMPLE_TEXT) - expected) <= 1
    assert local.count_message_tokens(user(SAMPLE_TEXT)) > expected


def test_a_text_is_counted_by_the_server_once(
    local: OpenAICompatBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    local.count_tokens("warm up: finds which tokenize endpoint the server has")
    paths: list[str] = []
    request = local._request

    def counting(method: str, path: str, **kwargs: object) -> object:
        paths.append(path)
        return request(method, path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(local, "_request", counting)
    first = local.count_tokens(SAMPLE_TEXT)
    assert local.count_tokens(SAMPLE_TEXT) == first
    assert len(paths) == 1, "the second count of the same text must come from the cache"
    local.count_tokens(SAMPLE_TEXT + " more")
    assert len(paths) == 2, "a different text is asked about"


def test_the_token_count_cache_forgets_the_least_recently_used() -> None:
    cache = _BoundedCache(2)
    cache.put(b"a", 1)
    cache.put(b"b", 2)
    assert cache.get(b"a") == 1  # now "b" is the oldest
    cache.put(b"c", 3)
    assert cache.get(b"b") is None and cache.get(b"a") == 1 and cache.get(b"c") == 3


def test_health_is_ok(local: OpenAICompatBackend) -> None:
    health = local.health()
    assert health.ok, health.detail
    assert local.root_url in health.detail


def test_prompt_over_the_context_window_raises_context_overflow(local: OpenAICompatBackend) -> None:
    long_prompt = user("apple banana cherry " * 1200)  # about 3600 tokens > 2048
    with pytest.raises(ContextOverflow) as caught:
        list(local.stream_chat(long_prompt, GREEDY))
    assert caught.value.context_window == N_CTX
    assert "\n" not in str(caught.value)


def test_closed_port_raises_backend_unavailable_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    backend = OpenAICompatBackend("nowhere", url, model="any", connect_timeout_s=2)
    try:
        with pytest.raises(BackendUnavailable) as caught:
            backend.connect()
        message = str(caught.value)
        assert message.startswith(f"cannot reach vLLM server at {url}")
        assert "\n" not in message
        assert not backend.health().ok
        info = backend.info()  # listing an unreachable backend must not raise
        assert info.extra["reachable"] is False
    finally:
        backend.close()


@pytest.mark.timeout(120)
def test_server_killed_mid_stream_raises_instead_of_hanging(llama_server_factory: ServerFactory) -> None:
    url, proc = llama_server_factory()
    backend = OpenAICompatBackend("doomed", url, timeout_s=30)
    backend.connect()
    story = user("Count from 1 to 300, one number per line.")
    received: list[str] = []
    killed_at = 0.0
    try:
        with pytest.raises(BackendError) as caught:
            for delta in backend.stream_chat(story, GenerationOptions(max_tokens=600, temperature=0.0)):
                received.append(delta.text)
                if len(received) == 3:
                    proc.kill()
                    killed_at = time.monotonic()
        noticed_after = time.monotonic() - killed_at
    finally:
        backend.close()
    assert len(received) >= 3
    assert isinstance(caught.value, BackendUnavailable)
    assert "connection lost mid-reply" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert noticed_after < 5  # the read timeout is 30 s: this was no timeout


# ---- the vLLM-like simulator -------------------------------------------------


def test_vllm_extras_context_window_tokenize_usage(sim: OpenAICompatBackend, sim_server: str) -> None:
    assert sim.root_url == sim_server  # the "/v1/" given was stripped
    assert sim.context_window == 4096
    assert sim.count_tokens("one two three four") == 4
    # The simulator frames each message like a chat template: 4 tokens + 2 for the reply.
    assert sim.count_message_tokens(user("one two three")) == 3 + 4 + 2
    texts, last = split(list(sim.stream_chat(user("hello there"), GREEDY)))
    assert len(texts) == 20
    assert (last.finish_reason, last.prompt_tokens, last.completion_tokens) == ("stop", 8, 20)
    info = sim.info()
    assert info.extra["context_window_source"] == "server"
    assert info.extra["usage"] == "server"
    assert sim.health().ok


def test_midstream_error_event_becomes_backend_error(sim: OpenAICompatBackend) -> None:
    received: list[str] = []
    with pytest.raises(BackendError) as caught:
        for delta in sim.stream_chat(user("please SIM_ERROR"), GREEDY):
            received.append(delta.text)
    assert type(caught.value) is BackendError
    assert "simulated engine failure" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert len([t for t in received if t]) == 3


def test_dropped_connection_becomes_backend_unavailable(sim: OpenAICompatBackend) -> None:
    with pytest.raises(BackendUnavailable, match="connection lost mid-reply"):
        list(sim.stream_chat(user("please SIM_DROP"), GREEDY))


def test_http_503_becomes_backend_unavailable_with_status(sim: OpenAICompatBackend) -> None:
    with pytest.raises(BackendUnavailable) as caught:
        list(sim.stream_chat(user("please SIM_503"), GREEDY))
    assert "HTTP 503" in str(caught.value) and "engine is restarting" in str(caught.value)


def test_vllm_prompt_overflow_is_typed(sim: OpenAICompatBackend) -> None:
    with pytest.raises(ContextOverflow) as caught:
        list(sim.stream_chat(user("word " * 5000), GREEDY))
    assert caught.value.context_window == 4096
    assert caught.value.prompt_tokens == 5000 + 4 + 2
    assert "the prompt is 5006 tokens; the model's context window is 4096" in str(caught.value)


def test_max_tokens_beyond_the_window_is_trimmed_like_llama_cpp(sim: OpenAICompatBackend) -> None:
    # 4080 words + 6 framing = 4086 prompt tokens: room for 10 of the 24 asked for.
    texts, last = split(list(sim.stream_chat(user("word " * 4080), GREEDY)))
    assert len(texts) == 10
    assert last.completion_tokens == 10


# ---- pure helpers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "prompt", "window"),
    [
        (
            "This model's maximum context length is 2048 tokens. However, you requested 2100 tokens "
            "(2000 in the messages, 100 in the completion). Please reduce the length.",
            2000,
            2048,
        ),
        (
            "'max_tokens' or 'max_completion_tokens' is too large: 8000. This model's maximum context "
            "length is 4096 tokens and your request has 2778 input tokens (8000 > 4096 - 2778).",
            2778,
            4096,
        ),
        (
            "The decoder prompt (length 2048) plus the number of requested output tokens (at least 1) "
            "is longer than the maximum model length of 2048.",
            2048,
            2048,
        ),
        ("Requested tokens (3000) exceed context window of 2048", 3000, 2048),
        (
            "This model's maximum context length is 8192 tokens. However, your prompt contains at least "
            "8193 input tokens, which exceeds this limit even without any output tokens.",
            8193,
            8192,
        ),
        (
            "max_tokens=9000 cannot be greater than max_model_len=8192. Please request fewer output tokens.",
            None,
            8192,
        ),
    ],
)
def test_overflow_messages_are_recognized(message: str, prompt: int | None, window: int) -> None:
    assert is_overflow_message(message)
    error = overflow_error(message)
    assert (error.prompt_tokens, error.context_window) == (prompt, window)


def test_base_url_accepts_v1_or_not() -> None:
    assert normalize_base_url("http://h:8000/v1/") == "http://h:8000"
    assert normalize_base_url("http://h:8000") == "http://h:8000"
    assert normalize_base_url("h:8000/v1") == "http://h:8000"
