"""Moving from the demo model to a real GGUF: from disk, or from Hugging Face when online."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.config import Settings
from app.model_files import ModelSourceError, check_gguf, download_gguf, pick_gguf, register_local_model
from app.registry import BackendRegistry
from backends.llamacpp import embedded_model_path


def test_check_gguf_accepts_a_model_and_refuses_other_files(tmp_path: Path) -> None:
    assert check_gguf(embedded_model_path()).is_file()
    fake = tmp_path / "model.gguf"
    fake.write_text("not a model")
    with pytest.raises(ModelSourceError, match="not a GGUF"):
        check_gguf(fake)
    with pytest.raises(ModelSourceError, match="no such file"):
        check_gguf(tmp_path / "missing.gguf")


def test_pick_gguf_prefers_q4_k_m() -> None:
    files = ["README.md", "m-Q8_0.gguf", "m-Q4_K_M.gguf", "m-IQ2_M.gguf"]
    assert pick_gguf(files) == "m-Q4_K_M.gguf"
    assert pick_gguf(["a-Q8_0.gguf"]) == "a-Q8_0.gguf"
    with pytest.raises(ModelSourceError):
        pick_gguf(["README.md"])


def test_offline_download_fails_fast_and_clearly() -> None:
    """This machine cannot reach the hub: the user is told at once and keeps the demo model."""
    started = time.monotonic()
    with pytest.raises(ModelSourceError, match="demo model"):
        download_gguf("bartowski/Meta-Llama-3.1-8B-Instruct-GGUF")
    assert time.monotonic() - started < 10
    with pytest.raises(ModelSourceError, match="repo id"):
        download_gguf("not a repo")


def test_register_a_local_model_loads_it_and_reports_progress() -> None:
    registry = BackendRegistry(Settings())
    steps: list[str] = []
    name = register_local_model(registry, embedded_model_path(), lambda d, t, what: steps.append(what))
    try:
        assert name == "smollm2-135m-instruct-q4-1"
        assert name in registry.names
        assert registry.get(name).health().ok
        assert steps[0].startswith("loading") and steps[-1].startswith("loaded in")
    finally:
        registry.close()
