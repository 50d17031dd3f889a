"""20 concurrent gradio_client clients × 50 messages against one server with a fast backend.

Each client is its own signed-in user with its own conversation, so the run also checks that
concurrent writers never cross users. Afterwards the database must hold exactly 1000 user messages
and 1000 complete replies: nothing lost, nothing doubled, and no "database is locked" anywhere.
Runs on SQLite and, when a PostgreSQL server is available (tests/pg.py), on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from gradio_client import Client

from app.config import Settings
from app.core import App
from app.users import add_user
from tests.reliability.conftest import record_figure, start_scripted_server, stop_process

CLIENTS = 20
MESSAGES = 50
REPLY = "ok, noted."
DELAY_S = 0.002  # per word: a fast backend, so the app and the database are what is loaded
PASSWORD = "load-test-password"
RUN_TIMEOUT_S = 420.0
SIGN_IN_WORKERS = 4
SIGN_IN_TIMEOUT_S = 60.0

pytestmark = pytest.mark.slow


@dataclass
class Outcome:
    errors: list[str] = field(default_factory=list)
    wrong_replies: int = 0
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)


def message_text(client: int, index: int) -> str:
    return f"client {client:02d} message {index:02d}"


def sign_in(url: str, client: int) -> Client:
    # Plain HTTP on loopback: with verification on, httpx builds a certificate store for every
    # request, which costs the client ten times the CPU the server spends on a message.
    # Each sign-in is an argon2 check, slow by design: a generous timeout for 20 of them at once.
    return Client(
        url,
        auth=(f"user{client:02d}", PASSWORD),
        verbose=False,
        ssl_verify=False,
        httpx_kwargs={"timeout": SIGN_IN_TIMEOUT_S},
    )


def run_client(session: Client, client: int, outcome: Outcome, deadline: float) -> None:
    """One user: a first message opens the conversation, the other 49 continue it."""
    conversation = ""
    for index in range(MESSAGES):
        if time.monotonic() > deadline:
            outcome.error(f"client {client} ran out of time at message {index}")
            return
        try:
            reply = session.predict(message_text(client, index), conversation, api_name="/chat")
        except Exception as exc:
            outcome.error(f"client {client} message {index}: {exc!r}")
            continue
        with outcome.lock:
            outcome.sent += 1
            outcome.wrong_replies += reply != REPLY
        if not conversation:
            conversation = session.predict(api_name="/conversations")[0]["id"]


def audit(app: App) -> dict[str, int]:
    """Count what the database holds, user by user, message by message."""
    users = [app.repo.user_id(f"user{c:02d}") for c in range(CLIENTS)]
    user_texts: Counter[str] = Counter()
    replies = complete = conversations = crossed = 0
    for client, user_id in enumerate(users):
        assert user_id is not None
        for conversation in app.repo.list_conversations(user_id, limit=1000):
            conversations += 1
            for row in app.repo.messages(user_id, conversation.id):
                if row.role == "user":
                    user_texts[row.content] += 1
                    crossed += not row.content.startswith(f"client {client:02d} ")
                else:
                    replies += 1
                    complete += row.status == "complete" and row.content == REPLY
    expected = {message_text(c, i) for c in range(CLIENTS) for i in range(MESSAGES)}
    return {
        "user_messages": sum(user_texts.values()),
        "replies": replies,
        "complete_replies": complete,
        "duplicates": sum(n - 1 for n in user_texts.values() if n > 1),
        "lost": len(expected - set(user_texts)),
        "crossed_users": crossed,
        "conversations": conversations,
    }


def drive(url: str) -> tuple[Outcome, float]:
    """Sign everyone in, then let all 20 clients send at once; (outcome, seconds of sending)."""
    with ThreadPoolExecutor(max_workers=SIGN_IN_WORKERS) as pool:
        sessions = list(pool.map(lambda c: sign_in(url, c), range(CLIENTS)))
    outcome = Outcome()
    started = time.monotonic()
    threads = [
        threading.Thread(target=run_client, args=(s, c, outcome, started + RUN_TIMEOUT_S), daemon=True)
        for c, s in enumerate(sessions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(RUN_TIMEOUT_S + 60)
    elapsed = time.monotonic() - started
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:  # each close waits up to 1 s for a heartbeat
        list(pool.map(close_quietly, sessions))
    return outcome, elapsed


def close_quietly(session: Client) -> None:
    with contextlib.suppress(Exception):
        session.close()


def test_20_clients_x_50_messages(any_db_url: str, tmp_path: Path) -> None:
    setup = App.open(Settings(db_url=any_db_url))
    try:
        for client in range(CLIENTS):
            add_user(setup.repo, f"user{client:02d}", PASSWORD)
        dialect = setup.db.dialect
    finally:
        setup.close()
    server = start_scripted_server(any_db_url, tmp_path / "server.log", REPLY, DELAY_S)
    try:
        outcome, elapsed = drive(server.url)
    finally:
        stop_process(server.proc)
    app = App.open(Settings(db_url=any_db_url))
    try:
        counts = audit(app)
    finally:
        app.close()
    server_log = server.log.read_text(encoding="utf-8", errors="replace")
    locked = "\n".join([*outcome.errors, server_log]).lower().count("database is locked")
    record_figure(
        f"load_{dialect}",
        {
            "clients": CLIENTS,
            "messages_each": MESSAGES,
            **counts,
            "client_errors": len(outcome.errors),
            "database_is_locked": locked,
            "server_tracebacks": server_log.count("Traceback"),
            "elapsed_s": round(elapsed, 1),
            "messages_per_s": round(counts["user_messages"] / elapsed, 1),
        },
    )
    assert not outcome.errors, outcome.errors[:5]
    assert locked == 0
    assert "Traceback" not in server_log, server_log[-3000:]
    assert outcome.sent == CLIENTS * MESSAGES and outcome.wrong_replies == 0
    assert counts["user_messages"] == counts["replies"] == counts["complete_replies"] == CLIENTS * MESSAGES
    assert counts["duplicates"] == counts["lost"] == counts["crossed_users"] == 0
    assert counts["conversations"] == CLIENTS
