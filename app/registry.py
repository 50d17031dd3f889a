"""Backends by name, created on first use and shared by every request."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from app.config import BackendSpec, Settings
from backends.base import BackendError, BackendInfo, BackendUnavailable, ChatBackend


def create_backend(spec: BackendSpec) -> ChatBackend:
    if spec.kind == "llamacpp":
        from backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(spec.name, spec.model, n_ctx=spec.ctx)
    if spec.kind == "vllm":
        from backends.vllm import OpenAICompatBackend

        optional: dict[str, Any] = {
            "api_key": spec.api_key,
            "timeout_s": spec.timeout_s,
            "parallel": spec.parallel,
        }
        return OpenAICompatBackend(
            spec.name,
            spec.url or "",
            model=spec.model,
            **{k: v for k, v in optional.items() if v is not None},
        )
    raise BackendUnavailable(f"unknown backend kind {spec.kind!r}")


class BackendRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._backends: dict[str, ChatBackend] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.settings.backends]

    @property
    def default_name(self) -> str:
        return self.settings.default_backend

    def get(self, name: str | None = None, *, connect: bool = True) -> ChatBackend:
        """The backend called ``name`` (None: the default), connected unless ``connect`` is False.
        Raises UnknownBackend for any other name, and a BackendError while it cannot connect
        (tried again next time)."""
        spec = self.settings.backend(name)
        with self._lock:
            backend = self._backends.get(spec.name)
            if backend is None:
                backend = self._backends[spec.name] = create_backend(spec)
        if connect:
            backend.connect()
        return backend

    def register(self, spec: BackendSpec) -> None:
        """Add a backend while the app runs (a model the user just picked); replaces one of the same name."""
        with self._lock:
            others = tuple(s for s in self.settings.backends if s.name != spec.name)
            self.settings = replace(self.settings, backends=(*others, spec))
            stale = self._backends.pop(spec.name, None)
        if stale is not None:
            stale.close()

    def add(self, backend: ChatBackend) -> None:
        """Register an already built backend (tests, embedding); it connects on first use."""
        with self._lock:
            self._backends[backend.name] = backend

    def describe(self, name: str) -> dict[str, object]:
        """Info plus health for one backend; never raises, so a listing always completes."""
        spec = self.settings.backend(name)
        try:
            backend = self.get(name)
            health = backend.health()
            info: dict[str, object] = backend.info().as_dict() if health.ok else _offline(spec, backend.kind)
        except BackendError as exc:  # unreachable, a refused key, a model the server does not serve
            return {**_offline(spec, spec.kind), "healthy": False, "detail": str(exc)}
        return {**info, "healthy": health.ok, "detail": health.detail, "default": name == self.default_name}

    def close(self) -> None:
        with self._lock:
            for backend in self._backends.values():
                backend.close()
            self._backends.clear()


def _offline(spec: BackendSpec, kind: str) -> dict[str, object]:
    return BackendInfo(
        name=spec.name, kind=kind, model=spec.model or "", context_window=0, concurrent=kind != "llamacpp"
    ).as_dict()
