"""The small contract every backend implements.

A backend connects once, which settles its model id, context window and parallelism as plain
values, then turns a list of OpenAI-style messages into a closable generator of text deltas.
Everything else (history, storage, languages, documents) lives in ``app/``.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypedDict

Role = Literal["system", "user", "assistant"]


class ChatMessage(TypedDict):
    role: Role
    content: str


@dataclass(frozen=True)
class GenerationOptions:
    """Every sampling setting, each of which every backend passes on to its engine
    (tests/backends/test_contract.py checks each one). The defaults are the app's defaults."""

    max_tokens: int = 1024
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None
    stop: tuple[str, ...] = ()
    repeat_penalty: float = 1.0  # >1 discourages loops; small models need it for long outputs


DEFAULT_OPTIONS = GenerationOptions()

DeltaStream = Generator["Delta", None, None]


@dataclass(frozen=True)
class Connection:
    """What connecting settles; plain values afterwards, so reading them never does I/O."""

    model: str
    context_window: int
    parallel: int = 1  # requests the engine runs at once; more just queue there


@dataclass(frozen=True)
class Delta:
    """One piece of a streamed reply. The last one carries usage and finish_reason."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass
class Usage:
    """The tokens of one generation, gathered from its deltas.

    A stream closed early (a Stop, the loop guard) ends before the backend reports usage; the
    text deltas it wrote, a token each, stand in for the count then.
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    text_deltas: int = 0

    def add(self, delta: Delta) -> None:
        self.text_deltas += bool(delta.text)
        if delta.prompt_tokens is not None:
            self.prompt_tokens, self.completion_tokens = delta.prompt_tokens, delta.completion_tokens or 0

    @property
    def known(self) -> bool:
        """Whether there is anything to count: a report, or text."""
        return self.prompt_tokens is not None or self.text_deltas > 0

    def settled(self, count_prompt: Callable[[], int]) -> tuple[int, int]:
        """(prompt, completion): as reported, else the app's own count of the prompt and the deltas seen."""
        return self.prompt_tokens or count_prompt(), self.completion_tokens or self.text_deltas


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class BackendInfo:
    name: str
    kind: str
    model: str
    context_window: int
    concurrent: bool
    demo: bool = False
    parallel: int = 1
    extra: dict[str, str | int | float | bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "model": self.model,
            "context_window": self.context_window,
            "concurrent": self.concurrent,
            "demo": self.demo,
            "parallel": self.parallel,
            **self.extra,
        }


class BackendError(Exception):
    """A backend failed; the message is shown to the user as is."""

    code = "backend_error"


class BackendUnavailable(BackendError):
    """The backend cannot be reached or did not load."""

    code = "backend_unavailable"


class ModelFileError(BackendUnavailable):
    """The model file exists but cannot be loaded (corrupt, truncated, not a model): bad input."""

    code = "bad_model"


class BackendTimeout(BackendUnavailable):
    """The backend did not answer in time."""


class ContextOverflow(BackendError):
    """The prompt does not fit the model's context window."""

    code = "context_overflow"

    def __init__(self, message: str, prompt_tokens: int | None = None, context_window: int | None = None):
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.context_window = context_window


# Chat templates add a few tokens of framing per message; used when a backend
# can only count plain text.
MESSAGE_OVERHEAD_TOKENS = 4


class ChatBackend(ABC):
    """A model that streams chat replies.

    ``connect()`` comes first (the registry does it): it loads the model or asks the server,
    and may raise. ``model``, ``context_window`` and ``parallel`` are then plain values.
    ``concurrent`` tells callers (the summarizer, the UI queue) whether parallel
    requests help. A backend that cannot serve two requests at once serializes
    them itself.
    """

    kind: str = "base"
    concurrent: bool = False

    def __init__(self, name: str) -> None:
        self.name = name
        self._connection: Connection | None = None
        self._connect_lock = threading.Lock()

    def connect(self) -> Connection:
        """Settle model, window and parallelism once; raises a BackendError when it cannot.
        A failed attempt is not remembered, so the next call tries again."""
        with self._connect_lock:
            if self._connection is None:
                self._connection = self._connect()
            return self._connection

    @abstractmethod
    def _connect(self) -> Connection: ...

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            raise BackendUnavailable(f"the backend {self.name!r} is not connected")
        return self._connection

    @property
    def model(self) -> str:
        return self.connection.model

    @property
    def context_window(self) -> int:
        return self.connection.context_window

    @property
    def parallel(self) -> int:
        return self.connection.parallel

    def parallel_for(self, request_tokens: int) -> int:
        """Requests of this size (prompt plus output) the engine runs at once."""
        return self.parallel

    @abstractmethod
    def count_tokens(self, text: str) -> int: ...

    @abstractmethod
    def stream_chat(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> DeltaStream:
        """A generator of the reply's deltas; closing it stops the generation and frees the engine.
        Raises a BackendError subclass on failure."""

    def count_message_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return sum(self.count_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages) + 2

    def health(self) -> Health:
        return Health(ok=True)

    @property
    def demo(self) -> bool:
        return False

    def info(self) -> BackendInfo:
        return BackendInfo(
            name=self.name,
            kind=self.kind,
            model=self.model,
            context_window=self.context_window,
            concurrent=self.concurrent,
            demo=self.demo,
            parallel=self.parallel,
        )

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free resources; the default has none."""


def close_stream(stream: Iterator[Delta]) -> None:
    """Close a delta stream early (a generator's ``finally`` then runs now, not at garbage collection)."""
    close = getattr(stream, "close", None)
    if close is not None:
        close()
