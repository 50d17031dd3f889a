"""The CLI contract where it used to break: JSON on every error, strict backend names, bad model files,
token limits, one language check for every entry point, and a quiet stderr. Real processes throughout."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ui.cli_process import CliProcess, cli_env, messages
from tests.ui.test_cli import cli, one_line_error

ROOT = Path(__file__).resolve().parents[2]


def documented_codes() -> set[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- error-codes -->", 1)[1].split("<!-- /error-codes -->", 1)[0]
    return set(re.findall(r"`([a-z_]+)`", block)) - {"auto"}


def json_error(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The one JSON line of a failed --json command, with a documented code."""
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    error = json.loads(lines[0])["error"]
    assert error["code"] in documented_codes(), error
    assert "Traceback" not in result.stderr
    return dict(error)


@pytest.mark.parametrize(
    "args",
    [
        ("chat", "--json"),  # the message is missing
        ("chat", "--json", "--max-tokens", "many", "hi"),
        ("conversations", "rename", "--json"),
        ("--json", "nonsense"),
        ("serve-vllm", "--json", "--tensor-parallel-size", "0"),
    ],
)
def test_argument_errors_are_one_json_line_with_json(db_url: str, args: tuple[str, ...]) -> None:
    result = cli(*args, db=db_url)
    assert result.returncode == 2
    assert json_error(result)["code"] == "bad_input"
    assert "usage:" not in result.stderr
    one_line_error(result)


@pytest.mark.parametrize("value", ["0", "-5"])
def test_max_tokens_below_one_is_rejected_before_anything_runs(db_url: str, value: str) -> None:
    result = cli("chat", "--json", "--max-tokens", value, "hello", db=db_url)
    assert result.returncode == 2
    assert "--max-tokens" in json_error(result)["message"]
    assert messages(db_url) == []


def test_every_code_the_cli_emits_is_documented(db_url: str, tmp_path: Path) -> None:
    runs = [
        cli("chat", "--json", "", db=db_url),
        cli("chat", "--json", "--lang", "xx", "hi", db=db_url),
        cli("chat", "--json", "--backend", "nope", "hi", db=db_url),
        cli("conversations", "show", "f" * 32, "--json", db=db_url),
        cli("summarize", "--json", "--lang", "klingon", str(tmp_path / "none.pdf"), db=db_url),
    ]
    codes = [json_error(run)["code"] for run in runs]
    assert codes == [
        "empty_message",
        "unsupported_language",
        "unknown_backend",
        "not_found",
        "unsupported_language",
    ]


def test_conversation_json_outputs_are_objects(db_url: str) -> None:
    chat = json.loads(cli("chat", "--json", "--max-tokens", "8", "Hello!", db=db_url).stdout)
    listing = cli("conversations", "list", "--json", db=db_url)
    assert json.loads(listing.stdout) == {"conversations": [json.loads(listing.stdout)["conversations"][0]]}
    assert json.loads(listing.stdout)["conversations"][0]["id"] == chat["conversation_id"]
    deleted = cli("conversations", "delete", chat["conversation_id"], "--json", db=db_url)
    assert deleted.returncode == 0
    assert json.loads(deleted.stdout) == {"deleted": chat["conversation_id"]}
    assert json.loads(cli("conversations", "list", "--json", db=db_url).stdout) == {"conversations": []}


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_model_file_is_bad_input_and_stores_nothing(
    db_url: str, tmp_path: Path, model_path: Path, damage: str
) -> None:
    bad = tmp_path / "damaged.gguf"
    if damage == "garbage":
        bad.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    else:
        bad.write_bytes(model_path.read_bytes()[: model_path.stat().st_size // 3])
    for attempt in range(2):
        result = cli("chat", "--json", "--model", str(bad), f"hello {attempt}", db=db_url)
        assert result.returncode == 2, result.stderr
        error = json_error(result)
        assert error["code"] == "bad_model" and str(bad) in error["message"]
        one_line_error(result)
    assert messages(db_url) == []
    assert json.loads(cli("conversations", "list", "--json", db=db_url).stdout) == {"conversations": []}


def test_chat_stderr_is_empty_and_debug_shows_the_engine_log(db_url: str) -> None:
    quiet = cli("chat", "--max-tokens", "4", "Hi", db=db_url)
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = cli("--debug", "chat", "--max-tokens", "4", "Hi", db=db_url)
    assert loud.returncode == 0 and "llama_model_loader" in loud.stderr
    backends = cli("backends", db=db_url)
    assert backends.returncode == 0 and "n_ctx" not in backends.stderr and backends.stderr == ""


def test_summarize_errors_start_with_the_error_line(db_url: str, tmp_path: Path) -> None:
    from tests.pdfs import long_pdf

    pdf = long_pdf(tmp_path / "r.pdf", 2)
    result = cli("summarize", str(pdf), "--vllm-url", "http://127.0.0.1:9", db=db_url)
    assert result.returncode == 3
    assert result.stderr.splitlines()[0].strip(), result.stderr
    one_line_error(result)


def test_serve_with_an_unknown_backend_exits_2_and_names_the_configured_ones(db_url: str) -> None:
    result = cli("serve", "--backend", "nope", db=db_url, timeout=120)
    assert result.returncode == 2
    line = one_line_error(result)
    assert "unknown backend 'nope'" in line and "configured: local" in line


def test_serve_with_a_known_backend_makes_it_the_default(
    db_url: str, tmp_path: Path, model_path: Path
) -> None:
    config = tmp_path / "llamadesk.toml"
    config.write_text(
        'default_backend = "local"\n'
        f'[backends.local]\nkind = "llamacpp"\nmodel = "{model_path}"\n'
        f'[backends.second]\nkind = "llamacpp"\nmodel = "{model_path}"\n'
    )
    from tests.ui.conftest import free_port

    process = CliProcess(
        "serve", "--config", str(config), "--backend", "second", "--port", str(free_port()), db_url=db_url
    )
    try:
        process.wait_for_stderr(r"llamadesk: \w+ ready")
        assert "llamadesk: second ready" in process.stderr.text()
    finally:
        process.signal_and_wait()


def test_an_unknown_conversation_backend_is_an_error_not_the_default(db_url: str, tmp_path: Path) -> None:
    first = json.loads(cli("chat", "--json", "--max-tokens", "4", "Hello!", db=db_url).stdout)
    config = tmp_path / "renamed.toml"
    config.write_text('[backends.other]\nkind = "llamacpp"\n')
    result = cli(
        "chat",
        "--json",
        "--config",
        str(config),
        "--conversation",
        first["conversation_id"],
        "Again",
        db=db_url,
    )
    assert result.returncode == 2
    error = json_error(result)
    assert (
        error["code"] == "unknown_backend" and "'local'" in error["message"] and "other" in error["message"]
    )


def test_the_installed_entry_point_is_the_ui_command_line() -> None:
    import importlib
    import tomllib

    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["llamadesk"]
    module, _, name = target.partition(":")
    assert module == "ui.cli" and callable(getattr(importlib.import_module(module), name))
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, env=cli_env("sqlite://")
    )
    assert result.returncode == 0 and "serve-vllm" in result.stdout
