"""Fixtures shared by every test folder: the real embedded model, real SQLite files, the app."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import BackendSpec, Settings
from app.core import App
from app.registry import BackendRegistry
from backends.llamacpp import LlamaCppBackend, embedded_model_path
from backends.scripted import ScriptedBackend

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# Start a throwaway PostgreSQL server and the real vLLM server when selected tests want them.
pytest_plugins = ["tests.pg", "tests.vllm_server", "tests.browser"]


def pytest_configure(config: pytest.Config) -> None:
    # A shell without job control starts a background job with Ctrl-C ignored, and every process the
    # tests start would inherit that: the Ctrl-C tests would meet servers that cannot be interrupted.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def model_path() -> Path:
    return embedded_model_path()


@pytest.fixture(scope="session")
def local_backend() -> Iterator[LlamaCppBackend]:
    """The real embedded SmolLM2 through llama-cpp-python, loaded once per run."""
    backend = LlamaCppBackend("local", n_ctx=4096)
    backend.load()
    yield backend
    backend.close()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'llamadesk.db'}"


def make_app(db_url: str, *backends: object) -> App:
    specs = tuple(BackendSpec(b.name, "llamacpp") for b in backends)  # type: ignore[attr-defined]
    settings = Settings(db_url=db_url, backends=specs, default_backend=specs[0].name)
    registry = BackendRegistry(settings)
    for backend in backends:
        registry.add(backend)  # type: ignore[arg-type]
    return App.open(settings, registry)


@pytest.fixture
def local_app(db_url: str, local_backend: LlamaCppBackend) -> Iterator[App]:
    app = make_app(db_url, local_backend)
    yield app
    app.db.close()  # the session-wide model stays loaded


@pytest.fixture
def scripted_app(db_url: str) -> Iterator[App]:
    app = make_app(db_url, ScriptedBackend())
    yield app
    app.close()
