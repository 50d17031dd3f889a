"""`python -m tests` ends with pytest's verdict even when a test leaves the interpreter unable to exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

STUCK_TEST = """
import threading

def test_leaves_a_thread_behind():
    threading.Thread(target=threading.Event().wait, name="stuck-forever").start()

def test_{name}():
    assert {verdict}
"""


def run_guarded(tmp_path: Path, verdict: str) -> subprocess.CompletedProcess[str]:
    test_file = tmp_path / "test_stuck.py"
    test_file.write_text(STUCK_TEST.format(name="verdict", verdict=verdict))
    return subprocess.run(
        [sys.executable, "-m", "tests", "-q", "-p", "no:cacheprovider", str(test_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_thread_left_running_does_not_hang_the_run(tmp_path: Path) -> None:
    result = run_guarded(tmp_path, "True")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    assert "non-daemon threads still running at exit: stuck-forever" in result.stderr


def test_failures_still_fail_the_run(tmp_path: Path) -> None:
    result = run_guarded(tmp_path, "False")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout
