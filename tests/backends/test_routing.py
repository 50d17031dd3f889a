"""Routing between a local llama.cpp model and an OpenAI-compatible (vLLM) server, for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from app.chat import ChatSettings
from app.config import BackendSpec, Settings, load_settings
from app.core import App
from app.registry import BackendRegistry
from tests.app.test_summarize import document
from tests.pdfs import long_page_text


def two_backend_config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'default_backend = "node"\n\n[backends.local]\nkind = "llamacpp"\nctx = 2048\n\n'
        f'[backends.node]\nkind = "vllm"\nurl = "{url}"\n',
        encoding="utf-8",
    )
    return config


def test_config_names_both_backends(tmp_path: Path, llama_server: str) -> None:
    settings = load_settings(two_backend_config(tmp_path, llama_server), env={})
    assert [s.name for s in settings.backends] == ["local", "node"]
    assert settings.default_backend == "node"
    assert settings.backend("local").ctx == 2048


def test_backends_json_reports_health_and_context(tmp_path: Path, llama_server: str) -> None:
    config = two_backend_config(tmp_path, llama_server)
    env = {**os.environ, "LLAMADESK_DB": f"sqlite:///{tmp_path / 'x.db'}"}
    result = subprocess.run(
        [sys.executable, "-m", "ui.cli", "backends", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    rows = {r["name"]: r for r in data["backends"]}
    assert data["default"] == "node"
    assert rows["node"]["healthy"] is True and rows["node"]["kind"] == "vllm"
    assert rows["node"]["context_window"] == 2048
    assert rows["local"]["healthy"] is True and rows["local"]["context_window"] == 2048


def test_a_down_server_is_listed_unhealthy(tmp_path: Path) -> None:
    config = two_backend_config(tmp_path, "http://127.0.0.1:9")
    env = {**os.environ, "LLAMADESK_DB": f"sqlite:///{tmp_path / 'x.db'}"}
    result = subprocess.run(
        [sys.executable, "-m", "ui.cli", "backends", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    rows = {r["name"]: r for r in json.loads(result.stdout)["backends"]}
    assert rows["node"]["healthy"] is False and rows["node"]["detail"]


def routed_app(tmp_path: Path, url: str) -> App:
    settings = Settings(
        db_url=f"sqlite:///{tmp_path / 'routing.db'}",
        backends=(BackendSpec("local", "llamacpp", ctx=2048), BackendSpec("node", "vllm", url=url)),
        default_backend="local",
    )
    return App.open(settings, BackendRegistry(settings))


def test_each_conversation_remembers_its_backend(tmp_path: Path, llama_server: str) -> None:
    app = routed_app(tmp_path, llama_server)
    user = app.local_user_id()
    settings = ChatSettings(max_tokens=12, temperature=0)
    remote = list(
        app.chat.send(user, None, "Hello there, node!", ChatSettings(max_tokens=12, backend="node"))
    )[-1]
    local = list(app.chat.send(user, None, "Hello there, laptop!", settings))[-1]
    assert (remote.backend, local.backend) == ("node", "local")
    again = list(app.chat.send(user, remote.conversation_id, "And again?", settings))[-1]
    assert again.backend == "node", "a follow-up goes where the conversation lives"
    assert again.status == "complete" and again.reply.strip()
    assert app.repo.messages(user, remote.conversation_id)[-1].backend == "node"
    app.close()


def test_summarize_through_the_remote_backend_in_parallel(tmp_path: Path, llama_server: str) -> None:
    app = routed_app(tmp_path, llama_server)
    doc = document([long_page_text(n) for n in range(1, 7)])
    plan = app.documents.plan(doc, "node")
    assert plan.strategy == "map-reduce" and len(plan.chunks) >= 2 and plan.context_window == 2048
    outcome = app.documents.summarize(app.local_user_id(), doc, backend_name="node", plan=plan)
    result = outcome.result
    assert result.summary.strip() and result.citations
    assert result.tokens_processed >= plan.document_tokens
    assert app.repo.get_conversation(app.local_user_id(), outcome.conversation_id).backend == "node"
    app.close()
