"""Client for OpenAI-compatible servers: `vllm serve`, and llama_cpp.server as a peer.

Streaming goes through the ``openai`` package; the vLLM extras that the OpenAI API
lacks (``/tokenize`` at the server root, ``max_model_len`` in ``/v1/models``,
``/health``) go through the same pooled httpx client. Where a server lacks one of
them (llama_cpp.server), the client falls back and says so in ``info().extra``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import httpx
from openai import APIConnectionError, APIError, APIStatusError, APITimeoutError, OpenAI, Stream

from backends.base import (
    MESSAGE_OVERHEAD_TOKENS,
    BackendError,
    BackendInfo,
    BackendTimeout,
    BackendUnavailable,
    ChatBackend,
    ChatMessage,
    Connection,
    ContextOverflow,
    Delta,
    DeltaStream,
    GenerationOptions,
    Health,
)
from backends.stall import StallWatch
from backends.vllm_metrics import kv_cache_tokens, progress

DEFAULT_FALLBACK_CONTEXT_WINDOW = 8192
CHARS_PER_TOKEN_ESTIMATE = 3.5
HEALTH_TIMEOUT_S = 10.0
# More than any llama.cpp context a laptop runs, so the probe always overflows and
# the server rejects it after tokenizing, before any model work.
CONTEXT_PROBE_TOKENS = 1 << 20
MAX_MESSAGE_CHARS = 300
# Token counts remembered per backend. Every turn re-counts the whole history to fit it in the
# window; remembered, a turn asks the server only about its new message and the last reply.
TOKEN_COUNT_CACHE_SIZE = 4096
# Without a server figure, as many map steps as the app always sent a remote server.
DEFAULT_REMOTE_PARALLEL = 8
MAX_PARALLEL = 64
# A stream's longest wait for any byte; the stall watch normally decides long before.
STREAM_HARD_LIMIT_S = 3600.0
# The name each server family gives llama.cpp's repeat_penalty; vLLM's is the OpenAI-style default.
PENALTY_FIELD = {"llamacpp": "repeat_penalty"}

# vLLM and llama_cpp.server phrase context overflows in several ways across versions.
_OVERFLOW_PATTERNS = (
    re.compile(r"maximum context length", re.I),
    re.compile(r"maximum model length", re.I),
    re.compile(r"exceed(?:s)? context window", re.I),
    re.compile(r"context length exceeded|context_length_exceeded", re.I),
    re.compile(r"cannot be greater than max_model_len", re.I),  # vLLM >= 0.11, max_tokens too large
    re.compile(r"at least \d+ input tokens", re.I),  # vLLM >= 0.11, prompt too long (a lower bound)
)
_WINDOW_PATTERNS = (
    re.compile(r"maximum (?:context|model) length (?:is|of) (\d+)", re.I),
    re.compile(r"context window of (\d+)", re.I),
    re.compile(r"max_model_len=(\d+)", re.I),
)
_PROMPT_PATTERNS = (
    re.compile(r"(\d+) input tokens", re.I),
    re.compile(r"\((\d+) in the messages", re.I),
    re.compile(r"requested (\d+) tokens in the messages", re.I),
    re.compile(r"prompt \(length (\d+)\)", re.I),
    re.compile(r"Requested tokens \((\d+)\)", re.I),
)


def _one_line(text: str) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= MAX_MESSAGE_CHARS else flat[: MAX_MESSAGE_CHARS - 1] + "…"


def _first_int(patterns: Sequence[re.Pattern[str]], text: str) -> int | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return int(match.group(1))
    return None


def is_overflow_message(message: str) -> bool:
    return any(p.search(message) for p in _OVERFLOW_PATTERNS)


def overflow_error(message: str) -> ContextOverflow:
    """A ContextOverflow carrying whatever numbers the server's message states."""
    return ContextOverflow(
        _one_line(message),
        prompt_tokens=_first_int(_PROMPT_PATTERNS, message),
        context_window=_first_int(_WINDOW_PATTERNS, message),
    )


def _body_message(body: object) -> str | None:
    """The human message inside an error body, in OpenAI, vLLM or FastAPI shape."""
    if isinstance(body, str):
        return body or None
    if not isinstance(body, dict):
        return None
    for key in ("error", "message", "detail"):
        value = body.get(key)
        inner = _body_message(value) if isinstance(value, dict) else value
        if isinstance(inner, str) and inner:
            return inner
    return None


def normalize_base_url(base_url: str) -> str:
    """The server root: accepts http://host:port, with or without a trailing /v1."""
    root = base_url.strip().rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    if not root.startswith(("http://", "https://")):
        root = "http://" + root
    return root


class ModelNotServed(BackendUnavailable):
    """The configured model id is not among those the server serves."""


class OpenAICompatBackend(ChatBackend):
    """A remote model behind an OpenAI-compatible API, never serialized by the app."""

    kind = "vllm"
    concurrent = True

    def __init__(
        self,
        name: str,
        base_url: str,
        model: str | None = None,
        api_key: str = "EMPTY",
        timeout_s: float = 300.0,  # silence while the server makes no progress; queueing is not silence
        connect_timeout_s: float = 5.0,
        fallback_context_window: int = DEFAULT_FALLBACK_CONTEXT_WINDOW,
        max_connections: int = 256,
        parallel: int | None = None,  # a cap on requests at once (e.g. the server's max_num_seqs)
    ) -> None:
        super().__init__(name)
        self.root_url = normalize_base_url(base_url)
        self.timeout_s = timeout_s
        self._configured_model = model
        self._configured_parallel = parallel
        self._fallback_context_window = fallback_context_window
        self._model_id = model or ""
        self._context_source = ""
        self._parallel_source = ""
        self._kv_tokens: int | None = None
        self._tokenizer: str | None = None  # "vllm" | "llamacpp" | "estimate"
        self._usage_source = ""
        self._counts = _BoundedCache(TOKEN_COUNT_CACHE_SIZE)
        self._stall = StallWatch(timeout_s, self._progress)
        # Streams wait as long as the stall watch allows; this only bounds a server that
        # accepted the request and then never answered at all.
        self._stream_timeout = httpx.Timeout(max(timeout_s, STREAM_HARD_LIMIT_S), connect=connect_timeout_s)
        # One pooled client shared by every thread; the pool must exceed the
        # number of concurrent streams or requests would queue inside httpx.
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=64),
            headers={"Authorization": f"Bearer {api_key}"},
        )
        self._client = OpenAI(
            base_url=self.root_url + "/v1",
            api_key=api_key,
            max_retries=0,
            # No `timeout=`: openai then takes the http client's (connect and read).
            # openai >= 3 types this as httpx2.Client but accepts httpx's too.
            http_client=cast(Any, self._http),
        )

    # ---- connecting ---------------------------------------------------------

    def _connect(self) -> Connection:
        entries = self._model_entries()
        ids = [str(e["id"]) for e in entries]
        if not ids:
            raise BackendError(f"the server at {self.root_url} lists no models in /v1/models")
        model = self._configured_model or ids[0]
        if model not in ids:
            # Never fall back to another model: its window and tokenizer would silently differ.
            raise ModelNotServed(
                f"the server at {self.root_url} does not serve the model {model!r}; "
                f"it serves {', '.join(ids)}"
            )
        self._model_id = model
        self._tokenizer = self._find_tokenizer()
        window, self._context_source = self._discover_context_window(entries[ids.index(model)])
        parallel, self._parallel_source = self._discover_parallel(window)
        return Connection(model, window, parallel)

    def _model_entries(self) -> list[dict[str, Any]]:
        response = self._request("GET", "/v1/models")
        self._check(response, "/v1/models")
        data = self._json(response).get("data") or []
        return [e for e in data if isinstance(e, dict) and "id" in e]

    def _discover_context_window(self, entry: dict[str, Any]) -> tuple[int, str]:
        reported = entry.get("max_model_len")
        if isinstance(reported, int) and reported > 0:
            return reported, "server"
        if self._tokenizer == "llamacpp":
            probed = self._probe_llamacpp_context()
            if probed:
                return probed, "probe"
        return self._fallback_context_window, "fallback"

    def _discover_parallel(self, window: int) -> tuple[int, str]:
        """Requests the server runs at once: a configured cap, else what its KV cache holds."""
        text = self._metrics_text()
        self._kv_tokens = kv_cache_tokens(text) if text else None
        if self._configured_parallel:
            return self._configured_parallel, "config"
        if self._kv_tokens:
            # vLLM's own "maximum concurrency" figure: full-window requests that fit the KV cache.
            return max(1, self._kv_tokens // window), "server"
        if self._tokenizer == "llamacpp":
            return 1, "llama.cpp"  # llama_cpp.server runs one request at a time
        return DEFAULT_REMOTE_PARALLEL, "default"

    def parallel_for(self, request_tokens: int) -> int:
        """Requests of this size (prompt + output) the server runs at once."""
        if not self._kv_tokens or self._configured_parallel:
            return self.parallel
        return max(1, min(MAX_PARALLEL, self._kv_tokens // max(1, request_tokens)))

    def _metrics_text(self) -> str | None:
        try:
            response = self._request("GET", "/metrics", timeout=HEALTH_TIMEOUT_S)
        except BackendError:
            return None
        return response.text if response.status_code == 200 else None

    def _progress(self) -> object | None:
        text = self._metrics_text()
        return progress(text) if text else None

    def _probe_llamacpp_context(self) -> int | None:
        """Read n_ctx from llama_cpp.server's overflow message; its /v1/models lacks it.

        The request is refused right after tokenizing. It does interrupt a stream
        running on that server, which is why it is asked once, when connecting.
        """
        payload = {"model": self._model_id, "prompt": " a" * CONTEXT_PROBE_TOKENS, "max_tokens": 1}
        try:
            response = self._request("POST", "/v1/completions", json=payload)
        except BackendError:
            return None
        if response.status_code != 400:
            return None
        return _first_int(_WINDOW_PATTERNS, _body_message(self._json(response)) or "")

    # ---- tokens -----------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        kind = self._tokenizer_kind()
        if kind == "estimate":
            return self._estimate(text)
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        count = self._counts.get(key)
        if count is None:
            count = self._count_remote(kind, text)
            self._counts.put(key, count)
        return count

    def count_message_tokens(self, messages: Sequence[ChatMessage]) -> int:
        if self._tokenizer_kind() == "vllm":
            body = {"model": self._model_id, "messages": list(messages), "add_generation_prompt": True}
            return self._count_response(self._request("POST", "/tokenize", json=body), "/tokenize")
        # One request for the whole history instead of one per message.
        joined = "\n".join(m["content"] for m in messages)
        return self.count_tokens(joined) + MESSAGE_OVERHEAD_TOKENS * len(messages) + 2

    @staticmethod
    def _estimate(text: str) -> int:
        return round(len(text) / CHARS_PER_TOKEN_ESTIMATE)

    def _tokenize_request(self, kind: str, text: str) -> tuple[str, dict[str, Any]]:
        if kind == "vllm":
            return "/tokenize", {"model": self._model_id, "prompt": text, "add_special_tokens": False}
        return "/extras/tokenize/count", {"model": self._model_id, "input": text}

    def _count_remote(self, kind: str, text: str) -> int:
        path, body = self._tokenize_request(kind, text)
        return self._count_response(self._request("POST", path, json=body), path)

    def _count_response(self, response: httpx.Response, path: str) -> int:
        self._check(response, path)
        data = self._json(response)
        count = data.get("count") if isinstance(data, dict) else None
        if not isinstance(count, int):
            raise BackendError(f"{self.root_url}{path} answered without a token count")
        return count

    def _tokenizer_kind(self) -> str:
        self.connection  # noqa: B018 - raises when not connected: the tokenizer is found then
        return self._tokenizer or "estimate"

    def _find_tokenizer(self) -> str:
        """Which token counter this server has: vLLM's, llama.cpp's, or none."""
        for candidate in ("vllm", "llamacpp"):
            path, body = self._tokenize_request(candidate, "hello")
            response = self._request("POST", path, json=body)
            if response.status_code in (404, 405):
                continue
            self._check(response, path)
            return candidate
        return "estimate"

    # ---- chat -------------------------------------------------------------

    def stream_chat(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> DeltaStream:
        stream = self._open_stream(messages, options)
        yield from self._relay(stream, messages)

    def _open_stream(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> Stream[object]:
        try:
            return self._create_stream(messages, options, options.max_tokens)
        except ContextOverflow as exc:
            # The server's numbers are bounds at best ("at least N input tokens"): measure the
            # prompt with the app's own count, then refuse it or trim max_tokens to the room left,
            # as llama.cpp does.
            prompt = self._quiet(lambda: self.count_message_tokens(messages))
            window = self.context_window
            if prompt is None:
                room = _room_for_output(exc)
                if room is None or room >= options.max_tokens:
                    raise
                return self._create_stream(messages, options, room)
            if prompt >= window:
                raise ContextOverflow(
                    f"the prompt is {prompt} tokens; the model's context window is {window}",
                    prompt_tokens=prompt,
                    context_window=window,
                ) from exc
            if window - prompt >= options.max_tokens:
                raise
            return self._create_stream(messages, options, window - prompt)

    def _create_stream(
        self, messages: Sequence[ChatMessage], options: GenerationOptions, max_tokens: int
    ) -> Stream[object]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            **sampling_body(options, max_tokens, self._tokenizer or "estimate"),
        }
        try:
            # The SDK's generic post, not chat.completions.create, and chunks as the JSON they
            # arrive in, not pydantic models; the SDK still sends, decodes the SSE and raises
            # its errors. create matches every message against six TypedDict unions (1.2 ms of
            # CPU per request), and building a model per chunk took 170 µs of CPU where the
            # JSON takes 40: with 32 streams at 50 tokens/s, a fifth of a core.
            return self._client.post(
                "/chat/completions",
                body=body,
                cast_to=object,
                options=cast(Any, {"timeout": self._stream_timeout}),
                stream=True,
                stream_cls=Stream[object],
            )
        except APIStatusError as exc:
            raise self._status_error(exc) from exc
        except APIConnectionError as exc:
            raise self._connection_error(exc) from exc

    def _relay(self, stream: Stream[object], messages: Sequence[ChatMessage]) -> Iterator[Delta]:
        parts: list[str] = []
        finish: str | None = None
        usage: dict[str, Any] | None = None
        with stream, self._stall.watch(stream.response) as watched:
            try:
                for chunk in stream:
                    watched.touch()
                    data = _chunk_dict(chunk)
                    usage = _dict(data.get("usage")) or usage
                    for entry in data.get("choices") or ():
                        choice = _dict(entry)
                        content = _dict(choice.get("delta")).get("content")
                        if isinstance(content, str) and content:
                            parts.append(content)
                            yield Delta(text=content)
                        finish = choice.get("finish_reason") or finish
            # openai >= 3 wraps transport errors met mid-stream; older versions let
            # httpx's own through. Both are handled, timeouts first.
            except (APITimeoutError, httpx.TimeoutException) as exc:
                raise self._stalled() from exc
            except (APIConnectionError, httpx.TransportError) as exc:
                if watched.stalled:
                    raise self._stalled() from exc
                raise self._lost_connection(exc, messages, bool(parts)) from exc
            except APIError as exc:  # the openai package's form of an SSE `error` event
                raise BackendError(_one_line(f"the server failed mid-reply: {exc.message}")) from exc
        if watched.stalled:
            raise self._stalled()
        if finish is None:
            overflow = None if parts else self._overflow_diagnosis(messages)
            raise overflow or BackendError("the server ended the reply without finishing it (interrupted)")
        yield self._final_delta(finish, usage, messages, "".join(parts))

    def _stalled(self) -> BackendTimeout:
        return BackendTimeout(
            f"the server at {self.root_url} sent nothing for {self.timeout_s:g} s mid-reply, "
            "and made no progress on any request meanwhile"
        )

    def _final_delta(
        self, finish: str, usage: dict[str, Any] | None, messages: Sequence[ChatMessage], reply: str
    ) -> Delta:
        if usage and isinstance(usage.get("prompt_tokens"), int):
            self._usage_source = "server"
            completion = usage.get("completion_tokens")
            return Delta(
                finish_reason=finish,
                prompt_tokens=usage["prompt_tokens"],
                completion_tokens=completion if isinstance(completion, int) else None,
            )
        # llama_cpp.server ignores include_usage: count what was sent and received.
        self._usage_source = "counted"
        return Delta(
            finish_reason=finish,
            prompt_tokens=self._quiet(lambda: self.count_message_tokens(messages)),
            completion_tokens=self._quiet(lambda: self.count_tokens(reply)),
        )

    @staticmethod
    def _quiet(count: Callable[[], int]) -> int | None:
        try:
            return int(count())
        except BackendError:
            return None

    # ---- health and info ----------------------------------------------------

    def health(self) -> Health:
        try:
            response = self._request("GET", "/health", timeout=HEALTH_TIMEOUT_S)
            if response.status_code == 200:
                return Health(ok=True, detail=f"{self.root_url}/health ok")
            if response.status_code != 404:
                return Health(ok=False, detail=f"{self.root_url}/health answered HTTP {response.status_code}")
            response = self._request("GET", "/v1/models", timeout=HEALTH_TIMEOUT_S)
            if response.status_code != 200:
                return Health(
                    ok=False, detail=f"{self.root_url}/v1/models answered HTTP {response.status_code}"
                )
            ids = [str(e.get("id")) for e in self._json(response).get("data") or [] if isinstance(e, dict)]
            return Health(ok=True, detail=f"{self.root_url} serves {', '.join(ids) or 'no models'}")
        except BackendError as exc:
            return Health(ok=False, detail=str(exc))

    def info(self) -> BackendInfo:
        try:
            info = super().info()
            estimated = self._tokenizer_kind() == "estimate"
        except BackendError as exc:
            # `llamadesk backends` must list an unreachable server, not crash on it.
            return BackendInfo(
                name=self.name,
                kind=self.kind,
                model=self._configured_model or "",
                context_window=self._fallback_context_window,
                concurrent=self.concurrent,
                extra={"url": self.root_url, "reachable": False, "error": str(exc)},
            )
        extra: dict[str, str | int | float | bool] = {
            "url": self.root_url,
            "reachable": True,
            "context_window_source": self._context_source,
            "parallel_source": self._parallel_source,
            "token_count": "estimate" if estimated else "server",
        }
        if self._usage_source:
            extra["usage"] = self._usage_source
        return dataclasses.replace(info, extra=extra)

    def close(self) -> None:
        self._stall.close()
        self._client.close()
        self._http.close()

    # ---- HTTP plumbing and error mapping ------------------------------------

    def _request(
        self, method: str, path: str, json: object = None, timeout: float | None = None
    ) -> httpx.Response:
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        url = self.root_url + path
        try:
            try:
                return self._http.request(method, url, json=json, **extra)
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
                # A pooled keep-alive connection the server has just dropped (as
                # llama_cpp.server does after a failed stream) fails once; these
                # requests have no side effects, so try again on a fresh one.
                return self._http.request(method, url, json=json, **extra)
        except httpx.TimeoutException as exc:
            raise BackendTimeout(f"the server at {self.root_url} did not answer {path} in time") from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(
                _one_line(f"cannot reach vLLM server at {self.root_url}: {exc}")
            ) from exc

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _check(self, response: httpx.Response, path: str) -> None:
        if response.status_code < 400:
            return
        message = _body_message(self._json(response)) or response.text or response.reason_phrase
        raise self._http_error(response.status_code, _one_line(message), path)

    def _http_error(self, status: int, message: str, path: str) -> BackendError:
        if status in (400, 413, 422) and is_overflow_message(message):
            return overflow_error(message)
        if status in (502, 503, 504):
            return BackendUnavailable(
                f"the server at {self.root_url} is unavailable (HTTP {status}): {message}"
            )
        if status >= 500:
            return BackendError(f"the server at {self.root_url} failed (HTTP {status}): {message}")
        if status in (401, 403):
            return BackendError(f"the server at {self.root_url} refused the API key (HTTP {status})")
        return BackendError(f"the server at {self.root_url} rejected {path} (HTTP {status}): {message}")

    def _status_error(self, exc: APIStatusError) -> BackendError:
        message = _body_message(exc.body) or exc.message
        return self._http_error(exc.status_code, _one_line(message), "/v1/chat/completions")

    def _connection_error(self, exc: APIConnectionError) -> BackendError:
        if isinstance(exc, APITimeoutError):
            return BackendTimeout(f"the server at {self.root_url} did not answer within {self.timeout_s:g} s")
        cause = exc.__cause__ or exc
        return BackendUnavailable(_one_line(f"cannot reach vLLM server at {self.root_url}: {cause}"))

    def _lost_connection(
        self, exc: Exception, messages: Sequence[ChatMessage], got_text: bool
    ) -> BackendError:
        if not got_text and (overflow := self._overflow_diagnosis(messages)):
            return overflow
        cause = exc.__cause__ if isinstance(exc, APIConnectionError) and exc.__cause__ else exc
        return BackendUnavailable(_one_line(f"connection lost mid-reply from {self.root_url}: {cause}"))

    def _overflow_diagnosis(self, messages: Sequence[ChatMessage]) -> ContextOverflow | None:
        """llama_cpp.server reports an over-long prompt only by ending the stream it
        already opened, with no event; tell that apart from a dead or interrupted server."""
        prompt = self._quiet(lambda: self.count_message_tokens(messages))
        window = self._quiet(lambda: self.context_window)
        if prompt is None or window is None or prompt < window:
            return None
        return ContextOverflow(
            f"the prompt is about {prompt} tokens; the model's context window is {window}",
            prompt_tokens=prompt,
            context_window=window,
        )


class _BoundedCache:
    """A thread-safe least-recently-used map of digests to token counts."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[bytes, int] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> int | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: bytes, value: int) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            if len(self._items) > self._size:
                self._items.popitem(last=False)


def sampling_body(options: GenerationOptions, max_tokens: int, dialect: str) -> dict[str, Any]:
    """Every generation option in the request body, under the names the server family reads."""
    body: dict[str, Any] = {
        "max_tokens": max_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
        PENALTY_FIELD.get(dialect, "repetition_penalty"): options.repeat_penalty,
    }
    if options.seed is not None:
        body["seed"] = options.seed
    if options.stop:
        body["stop"] = list(options.stop)
    return body


def _room_for_output(exc: ContextOverflow) -> int | None:
    """Tokens left for the reply when only max_tokens, not the prompt, overflowed."""
    if exc.prompt_tokens is None or exc.context_window is None:
        return None
    room = exc.context_window - exc.prompt_tokens
    return room if room > 0 else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _chunk_dict(chunk: object) -> dict[str, Any]:
    """One streamed chunk as a dict; raises on the error events the SDK passes through.

    Older vLLM sends errors mid-stream as a flat {"object": "error", "message": ...} event,
    which the openai package hands on as an ordinary chunk.
    """
    data = _dict(chunk)
    if data.get("object") == "error":
        message = data.get("message") or "unknown error"
        raise BackendError(_one_line(f"the server failed mid-reply: {message}"))
    return data
