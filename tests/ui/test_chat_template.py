"""A GGUF without a chat template: detected at load, a format chosen and said so, the template counted.

The model is the demo SmolLM2 with its ``tokenizer.chat_template`` key renamed (same length, so the
file stays valid): llama.cpp then sees no template, as with many community GGUFs. Before the fix,
llama-cpp-python fell back to the Llama-2 format in silence, and replies echoed its tags.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.ui.cli_process import CliProcess
from tests.ui.conftest import free_port
from tests.ui.test_cli import cli

TEMPLATE_KEY = b"tokenizer.chat_template"
HIDDEN_KEY = b"tokenizer.chat_templatX"
LLAMA2_TAGS = ("<<SYS>>", "[INST]", "[/INST]")
QUESTION = "Hello! What is the capital of France?"


@pytest.fixture(scope="session")
def templateless_model(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Path:
    data = model_path.read_bytes()
    assert data.count(TEMPLATE_KEY) == 1
    path = tmp_path_factory.mktemp("models") / "SmolLM2-no-template.gguf"
    path.write_bytes(data.replace(TEMPLATE_KEY, HIDDEN_KEY))
    return path


def test_backends_says_the_model_has_no_template(db_url: str, templateless_model: Path) -> None:
    result = cli("backends", "--json", "--model", str(templateless_model), db=db_url)
    assert result.returncode == 0, result.stderr
    local = json.loads(result.stdout)["backends"][0]
    assert local["chat_format"].startswith("chatml") and "no chat template" in local["warning"]
    plain = cli("backends", "--model", str(templateless_model), db=db_url)
    assert "no chat template" in plain.stdout

    regular = json.loads(cli("backends", "--json", db=db_url).stdout)["backends"][0]
    assert regular["chat_format"] == "gguf template" and "warning" not in regular


def test_chat_without_a_template_uses_a_real_format_and_counts_it(
    db_url: str, templateless_model: Path
) -> None:
    args = ("chat", "--json", "--max-tokens", "48", "--temperature", "0", "--lang", "en", QUESTION)
    bare = cli(*args, "--model", str(templateless_model), db=db_url)
    assert bare.returncode == 0, bare.stderr
    reply = json.loads(bare.stdout)
    assert reply["reply"].strip()
    assert not any(tag in reply["reply"] for tag in LLAMA2_TAGS), reply["reply"]
    title = json.loads(cli("conversations", "list", "--json", db=db_url).stdout)["conversations"][0]["title"]
    assert not any(tag in title for tag in LLAMA2_TAGS), title

    # The same model with its own (ChatML) template: the prompt the model reads is the same size.
    original = json.loads(cli(*args, db=db_url).stdout)
    assert abs(reply["prompt_tokens"] - original["prompt_tokens"]) <= 2, (reply, original)


def test_the_web_app_shows_the_warning(db_url: str, templateless_model: Path) -> None:
    port = free_port()
    server = CliProcess("serve", "--port", str(port), "--model", str(templateless_model), db_url=db_url)
    try:
        server.wait_for_stderr("llamadesk is running at")
        config = httpx.get(f"http://127.0.0.1:{port}/config", timeout=60).json()
        texts = [str(c.get("props", {}).get("value", "")) for c in config["components"]]
        assert any("no chat template" in text for text in texts)
    finally:
        server.signal_and_wait()
