"""`--window` without a usable pywebview: a clear hint, then the app in the browser instead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.ui.conftest import free_port
from ui import window
from ui.window import open_window

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180.0  # the embedded model loads first; two cores may be busy with other tests
STOP_TIMEOUT_S = 30.0
HINT = "llamadesk[desktop]"
FALLBACK = "opening the browser instead"


def test_open_window_without_pywebview_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A None entry makes `import webview` raise ImportError even where pywebview is installed.
    monkeypatch.setitem(sys.modules, "webview", None)
    assert open_window("http://127.0.0.1:1/") is False
    captured = capsys.readouterr()
    assert HINT in captured.err
    assert FALLBACK in captured.err
    assert captured.out == ""


def test_open_window_falls_back_when_no_gui_backend_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    opened: list[str] = []

    def create_window(title: str, url: str, **_: object) -> None:
        opened.append(url)

    def start() -> None:
        raise Exception("You must have either QT or GTK installed")  # what pywebview raises headless

    fake = types.ModuleType("webview")
    fake.create_window = create_window  # type: ignore[attr-defined]
    fake.start = start  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "webview", fake)

    assert window.open_window("http://127.0.0.1:1/") is False
    assert opened == ["http://127.0.0.1:1/"]
    err = capsys.readouterr().err
    assert "QT or GTK" in err and FALLBACK in err


def test_open_window_returns_true_once_the_window_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    fake = types.ModuleType("webview")
    fake.create_window = lambda title, url, **_: calls.append(f"create {url}")  # type: ignore[attr-defined]
    fake.start = lambda: calls.append("start")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "webview", fake)

    assert open_window("http://127.0.0.1:1/") is True
    assert calls == ["create http://127.0.0.1:1/", "start"]


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:  # refused or reset while the server starts
        return None


def _child_env(tmp_path: Path, browser_log: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMADESK_")}
    # pywebview may be installed on a developer's machine; this package shadows it so the
    # fallback path runs everywhere.
    blocker = tmp_path / "no-webview" / "webview"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("pywebview hidden by the test")\n')
    # webbrowser runs $BROWSER with the URL; this one records it instead of opening anything.
    browser = tmp_path / "record-browser"
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{browser_log}"\n')
    browser.chmod(0o755)
    home = tmp_path / "home"
    env.update(
        BROWSER=str(browser),
        PYTHONPATH=os.pathsep.join([str(blocker.parent), str(ROOT)]),
        HOME=str(home),  # no user config file leaks in
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        GRADIO_ANALYTICS_ENABLED="False",
        PYTHONUNBUFFERED="1",
    )
    return env


def test_serve_window_falls_back_to_the_browser_and_serves_the_page(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    browser_log = tmp_path / "browser.log"
    command = [
        sys.executable,
        "-m",
        "ui.cli",
        "serve",
        "--window",
        "--port",
        str(port),
        "--db",
        f"sqlite:///{tmp_path / 'llamadesk.db'}",
    ]
    # Files, not pipes: llama.cpp's load log could fill a pipe nobody reads and stall the child.
    stdout_path, stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        child = subprocess.Popen(
            command, cwd=ROOT, env=_child_env(tmp_path, browser_log), stdout=out, stderr=err
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while _status(url) != 200:
            if child.poll() is not None:
                pytest.fail(f"serve exited with {child.returncode}:\n{stderr_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no page at {url} after {START_TIMEOUT_S:.0f} s:\n{stderr_path.read_text()[-3000:]}"
                )
            time.sleep(0.25)

        with urllib.request.urlopen(url, timeout=10) as response:
            assert b"gradio" in response.read().lower()
        # The hint is printed just before the browser fallback, both after the server is up.
        deadline = time.monotonic() + 30
        while not browser_log.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        stderr = stderr_path.read_text(errors="replace")
        assert HINT in stderr and FALLBACK in stderr, stderr[-3000:]
        assert f"running at {url}" in stderr
        assert browser_log.read_text().split() == [url], "the browser was not opened on the app"
    finally:
        # Ctrl-C is how a user stops the laptop app; it must end with exit status 0.
        child.send_signal(signal.SIGINT)
        try:
            code = child.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            pytest.fail(f"serve ignored Ctrl-C for {STOP_TIMEOUT_S:.0f} s")
    assert code == 0, stderr_path.read_text()[-3000:]
    assert _status(url) is None, "the port still answers after the server stopped"
