"""Who may fetch, use, stop or snapshot what, on a real `serve --auth` server with two accounts.

Every cross-user attempt counts as a check; any that succeeds is a cross-user read (or write).
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from tests.pdfs import text_pdf
from tests.reliability.conftest import ServeProcess, cli_command, cli_env, record_figure, wait_until
from tests.reliability.security_helpers import (
    PASSWORD,
    call,
    file_data,
    login,
    security_server,
    signed_in,
    upload,
)

SLOW_REPLY = " ".join(f"w{i:03d}" for i in range(150))
REPORT = ["Quarterly report. Revenue grew in every region, and costs fell. " * 12]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with security_server(tmp_path_factory.mktemp("access"), reply=SLOW_REPLY, delay_s=0.02) as served:
        yield served


def test_files_belong_to_their_uploader(server: ServeProcess, tmp_path: Path) -> None:
    alice, bob = login(server.url, "alice"), login(server.url, "bob")
    path = upload(alice, text_pdf(tmp_path / "alice-report.pdf", REPORT))
    checks, reads = 0, []

    # Gradio's file route: only the uploader gets the file; others and anonymous callers get 404.
    assert alice.get(f"gradio_api/file={path}").status_code == 200
    for who, session in (("bob", bob), ("anonymous", httpx.Client(base_url=server.url))):
        checks += 1
        answer = session.get(f"gradio_api/file={path}")
        if answer.status_code == 200:
            reads.append(f"{who} downloaded alice's upload")
    # Summarizing by path, through the API and the queue: someone else's upload is refused.
    checks += 1
    event, detail = call(bob, "summarize", [file_data(path), "en"])
    if event == "complete":
        reads.append(f"bob summarized alice's upload: {detail[:100]}")
    # Files outside the uploads, by absolute path and by URL, are not served to anyone.
    for target in ("/etc/passwd", str(Path(server.log)), "http://example.invalid/x"):
        checks += 1
        if alice.get(f"gradio_api/file={target}").status_code == 200:
            reads.append(f"served {target}")

    # The owner's own summary works, and the upload is deleted once its text is stored.
    event, summary = call(alice, "summarize", [file_data(path), "en"])
    assert event == "complete", summary
    assert not Path(path).exists(), "the upload is still on disk after its text was stored"
    assert alice.get(f"gradio_api/file={path}").status_code in (403, 404)
    record_figure("access_files", {"checks": checks, "cross_user_reads": len(reads)})
    assert not reads, reads


def test_deep_links_are_off(server: ServeProcess) -> None:
    alice, bob = login(server.url, "alice"), login(server.url, "bob")
    client = Client(server.url, auth=("alice", PASSWORD["alice"]), verbose=False)
    try:
        assert client.predict("hello", "", api_name="/chat") == SLOW_REPLY
        for who, session in (("alice", alice), ("bob", bob)):
            answer = session.get("gradio_api/deep_link", params={"session_hash": client.session_hash})
            assert answer.status_code == 404, f"{who} got a snapshot: {answer.text[:200]}"
    finally:
        client.close()


def test_nobody_else_can_cancel_a_reply(server: ServeProcess) -> None:
    client = Client(server.url, auth=("alice", PASSWORD["alice"]), verbose=False)
    bob = login(server.url, "bob")
    anonymous = httpx.Client(base_url=server.url, timeout=30)
    try:
        fn_index = client._infer_fn_index("/chat", None)
        job = client.submit("a long answer please", "", api_name="/chat")
        wait_until(lambda: bool(job.outputs()), 60, "alice's reply to start streaming")
        attempts = {}
        cancel = {"data": [], "fn_index": fn_index, "session_hash": client.session_hash}
        for who, session in (("bob", bob), ("anonymous", anonymous)):
            attempts[who] = session.post("gradio_api/cancel", json=cancel).status_code
            # The session's queue stream is its owner's only.
            status = session.get("gradio_api/queue/data", params={"session_hash": client.session_hash})
            attempts[f"{who} stream"] = status.status_code
        final = job.result(timeout=120)
        assert final == SLOW_REPLY, "alice's reply was cut short by someone else's cancel"
        assert all(code in (401, 403, 404) for code in attempts.values()), attempts
    finally:
        client.close()
    record_figure("access_cancel", {"attempts": len(attempts), "succeeded": 0})


def test_sessions_follow_the_account_and_its_password(server: ServeProcess, tmp_path: Path) -> None:
    db_url = _db_url(server)
    carol_password = "carol-password-1"
    _cli("users", "add", "carol", "--db", db_url, stdin=carol_password)
    old = login(server.url, "carol", carol_password)
    assert signed_in(old)

    # Removed and added again under the same name: the old cookie is not the new account's.
    _cli("users", "remove", "carol", "--db", db_url)
    _cli("users", "add", "carol", "--db", db_url, stdin="carol-password-2")
    assert not signed_in(old), "a cookie from the removed account signs in to the new one"

    # A new password ends the account's sessions at once; the old password no longer works.
    current = login(server.url, "carol", "carol-password-2")
    _cli("users", "passwd", "carol", "--db", db_url, stdin="carol-password-3")
    assert not signed_in(current), "a session survived the password change"
    assert login(server.url, "carol", "carol-password-3")
    refused = httpx.post(f"{server.url}login", data={"username": "carol", "password": "carol-password-2"})
    assert refused.status_code == 400

    # Sessions expire.
    late = login(server.url, "carol", "carol-password-3")
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE sessions SET expires_at = '2000-01-01 00:00:00.000000'")
    assert not signed_in(late), "an expired session still signs in"


def test_concurrent_cancel_attempts_do_not_leak(server: ServeProcess) -> None:
    """Many guesses at another session's hash from another account: none reaches alice's stream."""
    client = Client(server.url, auth=("alice", PASSWORD["alice"]), verbose=False)
    bob = login(server.url, "bob")
    results: list[int] = []
    try:
        job = client.submit("another long answer", "", api_name="/chat")
        wait_until(lambda: bool(job.outputs()), 60, "alice's reply to start streaming")

        def attack() -> None:
            for fn_index in range(8):
                body = {"data": [], "fn_index": fn_index, "session_hash": client.session_hash}
                results.append(bob.post("gradio_api/cancel", json=body).status_code)

        threads = [threading.Thread(target=attack) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert job.result(timeout=120) == SLOW_REPLY
    finally:
        client.close()
    assert results and all(code == 404 for code in results), results


def _db_url(server: ServeProcess) -> str:
    return f"sqlite:///{server.log.parent / 'llamadesk.db'}"


def _cli(*args: str, stdin: str = "") -> None:
    done = subprocess.run(
        cli_command(*args), input=stdin + "\n", env=cli_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"llamadesk {' '.join(args)}: {done.returncode} {done.stderr}"
