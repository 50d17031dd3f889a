"""The first-run panel's handlers: switch from the demo model to a GGUF on disk."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pytest

from app.core import App
from backends.llamacpp import embedded_model_path
from ui.handlers import Handlers


def no_progress(*_: Any, **__: Any) -> None:
    return None


def test_use_a_gguf_from_disk(scripted_app: App) -> None:
    handlers = Handlers(scripted_app)
    status, dropdown, banner = handlers.use_model_file(str(embedded_model_path()), no_progress)  # type: ignore[arg-type]
    assert status.startswith("✅")
    names = [value for _, value in dropdown["choices"]]
    assert dropdown["value"] in names and dropdown["value"].startswith("smollm2")
    assert "· 8K" in banner and "🟢" in banner
    scripted_app.backends.get(dropdown["value"]).close()


def test_a_bad_path_is_reported_not_raised(scripted_app: App, tmp_path: Any) -> None:
    status, _, _ = Handlers(scripted_app).use_model_file(str(tmp_path / "x.gguf"), no_progress)  # type: ignore[arg-type]
    assert status.startswith("⚠️") and "no such file" in status


def test_accounts_cannot_swap_the_model_on_a_shared_server(scripted_app: App) -> None:
    with pytest.raises(gr.Error):
        Handlers(scripted_app, auth=True).use_model_file(str(embedded_model_path()), no_progress)  # type: ignore[arg-type]
