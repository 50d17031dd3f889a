"""`llamadesk chat`, `summarize` and `backends` end to end through `--vllm-url` and a config file,
against the real vLLM server that tests/vllm_server.py starts (it requires an API key)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from app.config import VLLM_API_KEY_ENV, load_settings, with_remote, with_timeout
from tests.pdfs import long_pdf
from tests.ui.test_cli import cli, one_line_error
from tests.vllm_server import VllmServer

DOCUMENT_PAGES = 25
LOOP_NGRAM = 8  # words; a phrase this long said three times over is a loop


@pytest.fixture
def keyed(vllm_server: VllmServer, monkeypatch: pytest.MonkeyPatch) -> VllmServer:
    monkeypatch.setenv(VLLM_API_KEY_ENV, vllm_server.api_key)
    return vllm_server


def config_file(tmp_path: Path, server: VllmServer, model: str) -> Path:
    path = tmp_path / "llamadesk.toml"
    path.write_text(
        'default_backend = "node"\n\n[backends.node]\nkind = "vllm"\n'
        f'url = "{server.url}"\napi_key = "{server.api_key}"\nmodel = "{model}"\ntimeout_s = 120\n',
        encoding="utf-8",
    )
    return path


def loops(text: str) -> list[str]:
    words = text.split()
    grams = Counter(" ".join(words[i : i + LOOP_NGRAM]) for i in range(len(words) - LOOP_NGRAM + 1))
    return [gram for gram, n in grams.items() if n >= 3]


def test_chat_through_vllm_url_sends_the_configured_key(keyed: VllmServer, db_url: str) -> None:
    result = cli("--vllm-url", keyed.url, "chat", "Name a color.", "--max-tokens", "8", "--json", db=db_url)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["backend"], out["model"]) == ("vllm", "smollm2")
    assert out["reply"].strip()
    assert 0 < out["completion_tokens"] <= 8 and out["prompt_tokens"] > 5


def test_chat_without_the_key_is_a_clear_backend_error(vllm_server: VllmServer, db_url: str) -> None:
    env_key = os.environ.pop(VLLM_API_KEY_ENV, None)
    try:
        result = cli("--vllm-url", vllm_server.url, "chat", "hi", "--json", db=db_url)
    finally:
        if env_key is not None:
            os.environ[VLLM_API_KEY_ENV] = env_key
    assert result.returncode == 3
    assert "refused the API key" in one_line_error(result)


def test_a_configured_model_the_server_lacks_is_reported_not_replaced(
    vllm_server: VllmServer, db_url: str, tmp_path: Path
) -> None:
    config = str(config_file(tmp_path, vllm_server, "llama-3.1-8b-instruct"))
    listing = cli("backends", "--json", "--config", config, db=db_url)
    assert listing.returncode == 0, listing.stderr
    node = next(b for b in json.loads(listing.stdout)["backends"] if b["name"] == "node")
    assert node["healthy"] is False
    assert "does not serve the model 'llama-3.1-8b-instruct'; it serves smollm2" in node["detail"]
    chat = cli("chat", "hi", "--json", "--config", config, db=db_url)
    assert chat.returncode == 3
    assert json.loads(chat.stdout)["error"]["code"] == "backend_unavailable"
    assert "does not serve the model 'llama-3.1-8b-instruct'" in one_line_error(chat)


@pytest.mark.timeout(900)
def test_a_25_page_summary_completes_without_loops_and_cites_pages(
    keyed: VllmServer, db_url: str, tmp_path: Path
) -> None:
    pdf = long_pdf(tmp_path / "report.pdf", DOCUMENT_PAGES)
    result = cli("--vllm-url", keyed.url, "summarize", str(pdf), "--json", db=db_url, timeout=880)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["strategy"] == "map-reduce" and out["chunks"] >= 2, "25 pages exceed the 8192-token window"
    assert out["document"]["pages"] == DOCUMENT_PAGES
    assert out["citations"], "the summary cites no pages"
    for citation in out["citations"]:
        first, last = citation["pages"]
        assert 1 <= first <= last <= DOCUMENT_PAGES
    assert not loops(out["summary"]), f"the summary loops: {loops(out['summary'])[:3]}"


# ---- settings: no server needed --------------------------------------------------


def test_the_timeout_comes_from_config_and_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[backends.node]\nkind = "vllm"\nurl = "http://h:8000"\ntimeout_s = 42\nparallel = 4\n',
        encoding="utf-8",
    )
    settings = load_settings(path, env={})
    assert (settings.backend("node").timeout_s, settings.backend("node").parallel) == (42.0, 4)
    settings = with_timeout(with_remote(settings, "http://other:8000", api_key="k"), 7.5)
    assert [s.timeout_s for s in settings.backends] == [7.5, 7.5]
    assert settings.backend("vllm").api_key == "k"


def test_a_bad_timeout_is_bad_input(db_url: str) -> None:
    result = cli("--vllm-url", "http://127.0.0.1:9", "--vllm-timeout", "0", "chat", "hi", db=db_url)
    assert result.returncode == 2
    assert "--vllm-timeout must be more than 0" in one_line_error(result)
