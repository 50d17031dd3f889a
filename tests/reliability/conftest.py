"""Helpers for the reliability tests: real subprocesses, real servers, and the figures they record.

Every process started here is ended by its own handle; nothing is killed by name.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from backends.llamacpp import embedded_model_path
from tests import pg
from tests.net import free_port

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO_ROOT = Path(__file__).resolve().parents[2]
# Generous: the two cores are often shared with other test runs and the model.
START_TIMEOUT_S = 180.0
FIGURES_ENV = "LLAMADESK_FIGURES"


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a llamadesk subprocess: no user config, no analytics, unbuffered."""
    return {
        **os.environ,
        "LLAMADESK_CONFIG": "/nonexistent/llamadesk.toml",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        **extra,
    }


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ui.cli", *args]


def stop_process(proc: subprocess.Popen[Any], grace_s: float = 10.0) -> None:
    """Terminate one process we started (SIGTERM, then SIGKILL), and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


# -- streams with timestamps --------------------------------------------------------------------


@dataclass
class TimedStream:
    """Reads a pipe in a thread and records when each byte arrived."""

    pipe: IO[bytes]
    chunks: list[tuple[float, int]] = field(default_factory=list)  # (monotonic time, total bytes so far)
    data: bytearray = field(default_factory=bytearray)
    _thread: threading.Thread | None = None

    def start(self) -> TimedStream:
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        fd = self.pipe.fileno()
        while chunk := os.read(fd, 65536):
            self.data.extend(chunk)
            self.chunks.append((time.monotonic(), len(self.data)))

    def join(self, timeout_s: float = 30.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def unsaved_span(arrivals: list[tuple[float, int]], saved: int, at: float) -> tuple[float, float]:
    """How much of what the user saw before ``at`` storage lacked: (seconds of streaming, age).

    ``arrivals`` are (time, total size so far) of the output a user saw; ``saved`` is the size
    of what storage held. The span runs from the first unsaved output to the last one seen before
    ``at``: the part of the stream a crash lost. The age is how long ago the first unsaved output
    arrived, which also counts any stall of the stream after it.
    """
    unsaved = [t for t, total in arrivals if total > saved and t <= at]
    if not unsaved:
        return 0.0, 0.0
    return unsaved[-1] - unsaved[0], at - unsaved[0]


# -- the SQLite file, read from outside the app -------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    conversation_id: str
    user_content: str
    reply_content: str | None
    reply_status: str | None


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def read_exchange(db_file: Path, user_text: str) -> Exchange | None:
    """The exchange that starts with ``user_text``, read with a plain sqlite3 connection."""
    if not db_file.exists():
        return None
    conn = sqlite3.connect(db_file, timeout=10)
    try:
        row = conn.execute(
            "SELECT conversation_id, id, content FROM messages WHERE role = 'user' AND content = ?",
            (user_text,),
        ).fetchone()
        if row is None:
            return None
        reply = conn.execute(
            "SELECT content, status FROM messages WHERE conversation_id = ? AND id > ? "
            "AND role = 'assistant' ORDER BY id LIMIT 1",
            (row[0], row[1]),
        ).fetchone()
    except sqlite3.OperationalError:  # not migrated yet, or briefly locked
        return None
    finally:
        conn.close()
    return Exchange(row[0], row[2], reply[0] if reply else None, reply[1] if reply else None)


def integrity(db_file: Path) -> str:
    conn = sqlite3.connect(db_file, timeout=30)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


# -- llamadesk serve as a subprocess ------------------------------------------------------------


@dataclass
class ServeProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path


def start_serve(db_url: str, log: Path, *extra: str, host: str = "127.0.0.1") -> ServeProcess:
    """`python -m ui.cli serve` on a free port; returns once it answers HTTP."""
    port = free_port()
    command = cli_command("serve", "--port", str(port), "--db", db_url, "--host", host, *extra)
    return launch(command, port, log, "llamadesk serve")


def launch(command: list[str], port: int, log: Path, what: str) -> ServeProcess:
    """Start a server process that logs to ``log``; returns once it answers HTTP on ``port``."""
    with log.open("ab") as out:
        proc = subprocess.Popen(command, cwd=REPO_ROOT, env=cli_env(), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until(lambda: _answers(url, proc), START_TIMEOUT_S, f"{what} on {url}", 0.25)
    except BaseException:
        stop_process(proc)
        raise
    return ServeProcess(proc, url, log)


def _answers(url: str, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"the server exited with code {proc.returncode} during start-up")
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


# -- llama_cpp.server on a chosen port ----------------------------------------------------------


def start_llama_server(port: int, n_ctx: int = 2048) -> subprocess.Popen[bytes]:
    """The real OpenAI-compatible llama_cpp.server with the embedded SmolLM2, on ``port``.

    One thread: llama.cpp's threads spin on barriers, so two of them on two cores shared with
    other test runs slow down many times over; one is steady and fast enough for short replies.
    """
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(embedded_model_path()),
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", "1",
        "--interrupt_requests", "False",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1/models"
    try:
        wait_until(lambda: _llama_ready(url, proc), START_TIMEOUT_S, "llama_cpp.server", 0.25)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def _llama_ready(url: str, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"llama_cpp.server exited with code {proc.returncode} during start-up")
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[Any]]]:
    """Processes a test starts; each one still running afterwards is stopped by its own handle."""
    started: list[subprocess.Popen[Any]] = []
    yield started
    for proc in started:
        stop_process(proc)


# -- PostgreSQL -------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database: a SQLite file, then a scratch PostgreSQL database when a server is there."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'llamadesk.db'}"
        return
    base = os.environ.get(pg.PG_ENV, "").strip()
    if not base:
        reason = pg.skip_reason() or f"{pg.PG_ENV} is not set and the tests.pg plugin did not start a server"
        pytest.fail(f"PostgreSQL is required and missing: {reason}")
    with pg.scratch_database(base) as url:
        yield url


# -- figures for tests/RELIABILITY.md ------------------------------------------------------------


def record_figure(name: str, value: dict[str, Any]) -> None:
    """Print a figure for tests/RELIABILITY.md; with LLAMADESK_FIGURES=FILE.json, also keep it there."""
    print(f"FIGURE {name}: {json.dumps(value, ensure_ascii=False)}")
    target = os.environ.get(FIGURES_ENV, "").strip()
    if not target:
        return
    path = Path(target)
    try:
        figures = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        figures = {}
    figures[name] = {**value, "at": time.strftime("%Y-%m-%d %H:%M:%S")}
    path.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# -- a server with a scripted backend, in its own process ------------------------------------


def serve_scripted(argv: list[str] | None = None) -> None:
    """Entry point of a `serve --auth` subprocess whose backend is a fast ScriptedBackend.

    Arguments: DB_URL PORT REPLY DELAY_S. Run it with start_scripted_server(); it serves until stopped.
    """
    from backends.scripted import ScriptedBackend, replying
    from tests.conftest import make_app
    from ui.server import ServeOptions, launch

    db_url, port, reply, delay = argv if argv is not None else sys.argv[1:]
    app = make_app(db_url, ScriptedBackend(handler=replying(reply, delay_s=float(delay))))
    launch(app, ServeOptions(port=int(port), auth=True), block=True)


def start_scripted_server(db_url: str, log: Path, reply: str, delay_s: float) -> ServeProcess:
    """A server in a separate process, so that clients and server do not share one interpreter lock."""
    port = free_port()
    code = "from tests.reliability.conftest import serve_scripted; serve_scripted()"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, db_url, str(port), reply, str(delay_s)],
            cwd=REPO_ROOT,
            env=cli_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until(lambda: _answers(url, proc), START_TIMEOUT_S, f"the scripted server on {url}", 0.25)
    except BaseException:
        stop_process(proc)
        raise
    return ServeProcess(proc, url, log)
