"""kill -9 in the middle of a reply, for real: the CLI and the server as subprocesses, the real model.

After each SIGKILL the user's message must be intact, the partial reply stored (still
``streaming``: nothing ran after the kill) and at most about a second behind what was shown,
the SQLite file must pass ``PRAGMA integrity_check``, and a start once the reply is stale (its
writer's heartbeat stopped) must mark it ``interrupted`` and offer to continue or regenerate.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client

from app.config import Settings
from app.core import App
from app.heartbeat import STALE_AFTER_S, SWEEP_EVERY_S
from tests.reliability.conftest import (
    REPO_ROOT,
    Exchange,
    ServeProcess,
    TimedStream,
    cli_command,
    cli_env,
    integrity,
    read_exchange,
    record_figure,
    sqlite_path,
    start_serve,
    stop_process,
    unsaved_span,
    wait_until,
)

CLI_TRIALS = 5
SERVER_TRIALS = 3
PROMPT = "Write a long, detailed story about a dragon who learns to bake bread. Use many chapters."
# Checkpoints are 0.5 s apart, so a crash loses at most the output of the last half second of
# streaming, plus a commit; "about 1 s" leaves room for a 2-core machine shared with other runs.
# (The lost part's age can be longer when the stream stalls, as a starved model does: the next
# token is what triggers the next checkpoint; the age is reported alongside.)
MAX_UNSAVED_SPAN_S = 1.0
# How long after the first checkpoint to pull the plug: varied, so kills land at many points.
KILL_AFTER_S = (0.0, 1.5)
FIRST_CHECKPOINT_TIMEOUT_S = 240.0

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Trial:
    kind: str
    streamed: int  # bytes (CLI) or characters (server) the user had seen at the kill
    saved: int
    unsaved_span_s: float
    unsaved_age_s: float
    ok: bool


def prompt_for(kind: str, trial: int) -> str:
    return f"{PROMPT} (run {kind}-{trial})"


def partial_reply_stored(db_file: Path, user_text: str) -> Exchange | None:
    exchange = read_exchange(db_file, user_text)
    return exchange if exchange is not None and exchange.reply_content else None


def kill_when_streaming(
    proc: subprocess.Popen[Any], db_file: Path, user_text: str, rng: random.Random
) -> tuple[float, Exchange]:
    """Wait for the first checkpoint of the reply, wait a little more, then SIGKILL; the kill time."""
    seen: list[Exchange] = []

    def checkpointed() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the process ended (code {proc.returncode}) before its reply was stored")
        exchange = partial_reply_stored(db_file, user_text)
        seen[:] = [exchange] if exchange else []
        return bool(seen)

    wait_until(checkpointed, FIRST_CHECKPOINT_TIMEOUT_S, "the first checkpoint of the reply", 0.02)
    time.sleep(rng.uniform(*KILL_AFTER_S))
    assert proc.poll() is None, "the reply finished before the kill; make the prompt longer"
    os.kill(proc.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    return killed_at, seen[0]


def check_after_kill(db_file: Path, user_text: str) -> Exchange:
    """The state that the kill left: the user's message, a streaming partial, a sound file."""
    assert integrity(db_file) == "ok"
    exchange = read_exchange(db_file, user_text)
    assert exchange is not None, "the user's message was lost"
    assert exchange.user_content == user_text
    assert exchange.reply_content, "the partial reply was lost"
    assert exchange.reply_status == "streaming"
    return exchange


def open_after_recovery(db_url: str) -> App:
    """The first start that finds the reply stale: its writer stopped beating (app/heartbeat.py)."""
    opened: list[App] = []

    def recovered() -> bool:
        app = App.open(Settings(db_url=db_url))
        if app.recovered_replies:
            opened.append(app)
            return True
        app.close()
        return False

    wait_until(recovered, STALE_AFTER_S * 6, "the sweep of the killed writer's reply", 0.2)
    return opened[0]


def check_recovery(db_url: str, exchange: Exchange) -> None:
    """A later start marks the reply interrupted, keeps its text, and the UI offers a way on."""
    from ui.handlers import Handlers
    from ui.i18n import text

    app = open_after_recovery(db_url)
    try:
        assert app.recovered_replies == 1
        user_id = app.local_user_id()
        rows = app.repo.messages(user_id, exchange.conversation_id)
        assert [(r.role, r.status) for r in rows] == [("user", "complete"), ("assistant", "interrupted")]
        assert rows[1].content == exchange.reply_content
        shown = Handlers(app).open_conversation(exchange.conversation_id, _Request())
        assert text("chat.interrupted_offer", "en") in shown
    finally:
        app.close()
    assert integrity(sqlite_path(db_url)) == "ok"


class _Request:
    username = None


def summarize(name: str, trials: list[Trial]) -> None:
    record_figure(
        name,
        {
            "trials": len(trials),
            "lost": sum(not t.ok for t in trials),
            "max_unsaved_span_s": round(max(t.unsaved_span_s for t in trials), 3),
            "max_unsaved_age_s": round(max(t.unsaved_age_s for t in trials), 3),
            "saved_of_streamed": [f"{t.saved}/{t.streamed}" for t in trials],
            "unsaved_span_s": [round(t.unsaved_span_s, 3) for t in trials],
        },
    )
    assert all(t.ok for t in trials)


# -- the CLI ---------------------------------------------------------------------------------


def run_cli_trial(db_url: str, index: int, rng: random.Random) -> Trial:
    db_file = sqlite_path(db_url)
    user_text = prompt_for("cli", index)
    cmd = cli_command("chat", user_text, "--db", db_url, "--max-tokens", "2000", "--temperature", "0")
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    stdout = TimedStream(proc.stdout).start()
    try:
        killed_at, _ = kill_when_streaming(proc, db_file, user_text, rng)
    finally:
        stop_process(proc)
        stdout.join()
        proc.stdout.close()
    exchange = check_after_kill(db_file, user_text)
    assert exchange.reply_content is not None
    saved = exchange.reply_content.encode()
    shown = bytes(stdout.data)
    assert shown.startswith(saved), "the stored partial is not what the CLI printed"
    span, age = unsaved_span(stdout.chunks, len(saved), killed_at)
    assert span <= MAX_UNSAVED_SPAN_S, f"the stored reply lacked the last {span:.2f} s of printed output"
    check_recovery(db_url, exchange)
    return Trial("cli", len(shown), len(saved), span, age, ok=True)


def test_kill9_of_the_cli_mid_reply_loses_nothing(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'cli.db'}"  # one file through every kill, as a user's would be
    rng = random.Random(5)
    trials = [run_cli_trial(db_url, i, rng) for i in range(CLI_TRIALS)]
    summarize("crash_kill_cli", trials)


# -- the server ------------------------------------------------------------------------------


@dataclass
class ClientStream:
    """The partial replies a gradio_client job has received, with their arrival times."""

    arrivals: list[tuple[float, int]]
    last: str = ""

    def poll(self, outputs: list[Any]) -> None:
        latest = next((str(o) for o in reversed(outputs) if o), "")
        if len(latest) > len(self.last):
            self.last = latest
            self.arrivals.append((time.monotonic(), len(latest)))


def run_server_trial(server: ServeProcess, db_url: str, index: int, rng: random.Random) -> Trial:
    db_file = sqlite_path(db_url)
    user_text = prompt_for("server", index)
    client = Client(server.url, verbose=False)
    stream = ClientStream([])
    try:
        job = client.submit(user_text, "", api_name="/chat")
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                stream.poll(job.outputs())
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        killed_at, _ = kill_when_streaming(server.proc, db_file, user_text, rng)
        time.sleep(0.2)  # let outputs already sent before the kill arrive
        done.set()
        sampler.join(10)
    finally:
        _close_quietly(client)
    exchange = check_after_kill(db_file, user_text)
    assert exchange.reply_content is not None
    saved = exchange.reply_content
    # The server saves before it sends, so the stored text may be ahead of what arrived.
    assert stream.last.startswith(saved) or saved.startswith(stream.last)
    span, age = unsaved_span(stream.arrivals, len(saved), killed_at)
    assert span <= MAX_UNSAVED_SPAN_S, f"the stored reply lacked the last {span:.2f} s of streamed output"
    return Trial("server", len(stream.last), len(saved), span, age, ok=True)


def _close_quietly(client: Client) -> None:
    with contextlib.suppress(Exception):  # the server it talked to may be gone
        client.close()


def check_server_recovery(server: ServeProcess, db_url: str, user_text: str, restarts: int) -> None:
    """The restarted server reports the partial reply as interrupted through /conversation.

    A restart within STALE_AFTER_S of the kill finds the reply's last beat still fresh: a later sweep
    of the running server marks it."""

    def recovered() -> bool:
        exchange = read_exchange(sqlite_path(db_url), user_text)
        said = server.log.read_text(encoding="utf-8", errors="replace").count("marked interrupted")
        return exchange is not None and exchange.reply_status == "interrupted" and said == restarts

    wait_until(recovered, STALE_AFTER_S + SWEEP_EVERY_S + 30, "the restarted server to mark the reply")
    exchange = read_exchange(sqlite_path(db_url), user_text)
    assert exchange is not None
    client = Client(server.url, verbose=False)
    try:
        data = client.predict(exchange.conversation_id, api_name="/conversation")
    finally:
        _close_quietly(client)
    assert [(m["role"], m["status"]) for m in data["messages"]] == [
        ("user", "complete"),
        ("assistant", "interrupted"),
    ]
    assert data["messages"][0]["content"] == user_text
    assert data["messages"][1]["content"] == exchange.reply_content
    assert server.log.read_text(encoding="utf-8", errors="replace").count("marked interrupted") == restarts


def test_kill9_of_the_server_mid_reply_loses_nothing(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'server.db'}"
    log = tmp_path / "serve.log"
    rng = random.Random(7)
    trials: list[Trial] = []
    server = start_serve(db_url, log)
    try:
        for index in range(SERVER_TRIALS):
            trials.append(run_server_trial(server, db_url, index, rng))
            # The restart that checks this trial's recovery serves the next trial.
            server = start_serve(db_url, log)
            check_server_recovery(server, db_url, prompt_for("server", index), restarts=index + 1)
    finally:
        stop_process(server.proc)
    assert integrity(sqlite_path(db_url)) == "ok"
    summarize("crash_kill_server", trials)
