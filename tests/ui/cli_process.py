"""A real `llamadesk` process for tests: its output read as it comes, its database read while it runs."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVENT_TIMEOUT_S = 300.0


def cli_env(db_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "LLAMADESK_DB": db_url,
        "LLAMADESK_CONFIG": "/nonexistent/llamadesk.toml",
        "PYTHONUNBUFFERED": "1",
    }


class _Pipe:
    """Collects everything a pipe carries, without waiting for newlines (progress lines use \\r)."""

    def __init__(self, stream: object) -> None:
        self.data = b""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: object) -> None:
        fd = stream.fileno()  # type: ignore[attr-defined]
        while chunk := os.read(fd, 65536):
            with self._lock:
                self.data += chunk

    def text(self) -> str:
        with self._lock:
            return self.data.decode("utf-8", "replace")

    def join(self) -> None:
        self._thread.join(30)


class CliProcess:
    def __init__(self, *args: str, db_url: str, python_flags: Sequence[str] = ()) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, *python_flags, "-m", "ui.cli", *args],
            cwd=ROOT,
            env=cli_env(db_url),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.stdout = _Pipe(self.popen.stdout)
        self.stderr = _Pipe(self.popen.stderr)

    def wait_until(
        self, condition: Callable[[], bool], what: str, timeout_s: float = EVENT_TIMEOUT_S
    ) -> None:
        """Poll ``condition``; fail if the process ends first or the time runs out."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self.popen.poll() is not None:
                tail = self.stderr.text()[-3000:]
                raise AssertionError(f"the process ended ({self.popen.returncode}) before {what}:\n{tail}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.01)

    def wait_for_stderr(self, pattern: str, timeout_s: float = EVENT_TIMEOUT_S) -> None:
        regex = re.compile(pattern)
        self.wait_until(
            lambda: regex.search(self.stderr.text()) is not None, f"{pattern!r} on stderr", timeout_s
        )

    def signal_and_wait(self, signum: int = signal.SIGINT, timeout_s: float = 120.0) -> int:
        self.popen.send_signal(signum)
        return self.finish(timeout_s)

    def finish(self, timeout_s: float = 600.0) -> int:
        try:
            code = self.popen.wait(timeout_s)
        finally:
            if self.popen.poll() is None:
                self.popen.kill()
                self.popen.wait()
            self.stdout.join()
            self.stderr.join()
            for pipe in (self.popen.stdout, self.popen.stderr):
                if pipe is not None:
                    pipe.close()
        return code


def sqlite_file(db_url: str) -> Path:
    return Path(db_url.removeprefix("sqlite:///"))


def query(db_url: str, sql: str) -> list[tuple[object, ...]]:
    """Rows from the live database file; [] while the app has not created its tables yet."""
    path = sqlite_file(db_url)
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise


def messages(db_url: str) -> list[tuple[str, str, str]]:
    """(role, content, status) of every stored message, oldest first."""
    rows = query(db_url, "SELECT role, content, status FROM messages ORDER BY id")
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]
