"""A CLI run beside a live server must not flip the server's streaming reply to interrupted;
a reply whose writer died must still be swept. Real server process, real CLI, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gradio_client import Client

from tests import pg
from tests.ui.cli_process import CliProcess
from tests.ui.conftest import free_port
from tests.ui.test_cli import cli

pytestmark = pytest.mark.slow

STORY = "Write a long, detailed story about a lighthouse keeper and a storm. Use many chapters."


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    base = os.environ.get(pg.PG_ENV, "").strip()
    assert base, f"PostgreSQL is needed for this test: {pg.skip_reason()}"
    with pg.scratch_database(base) as url:
        yield url


def conversation(db: str, conversation_id: str) -> dict[str, object]:
    result = cli("conversations", "show", conversation_id, "--json", db=db)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def reply_status(db: str, conversation_id: str) -> str:
    rows = conversation(db, conversation_id)["messages"]
    assert isinstance(rows, list) and rows
    return str(rows[-1]["status"])


def only_conversation_id(db: str) -> str | None:
    listing = json.loads(cli("conversations", "list", "--json", db=db).stdout)["conversations"]
    return str(listing[0]["id"]) if listing else None


def start_server(db: str) -> tuple[CliProcess, str]:
    port = free_port()
    server = CliProcess("serve", "--port", str(port), db_url=db)
    server.wait_for_stderr("llamadesk is running at")
    return server, f"http://127.0.0.1:{port}/"


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    """Each check is a CLI run (about a second), so this polls without sleeping."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"


def wait_for_conversation(db: str) -> str:
    found: list[str] = []

    def listed() -> bool:
        cid = only_conversation_id(db)
        found[:] = [cid] if cid else []
        return bool(found)

    wait_for(listed, "the chat's conversation")
    return found[0]


def last_content(db: str, conversation_id: str) -> str:
    rows = conversation(db, conversation_id)["messages"]
    assert isinstance(rows, list) and rows
    return str(rows[-1]["content"])


def test_cli_beside_a_live_server_leaves_its_reply_streaming(shared_db: str) -> None:
    server, url = start_server(shared_db)
    try:
        job = Client(url, verbose=False).submit(STORY, "", api_name="/chat")
        cid = wait_for_conversation(shared_db)
        # Each CLI run opens the app on the same database; the reply is mid-stream all along.
        assert reply_status(shared_db, cid) == "streaming"
        assert not job.done(), "the reply ended before the check; it must still be streaming"
        job.result(timeout=600)
        assert reply_status(shared_db, cid) == "complete"
    finally:
        server.signal_and_wait()


def test_the_reply_of_a_killed_server_is_swept_once_it_is_stale(shared_db: str) -> None:
    server, url = start_server(shared_db)
    job = Client(url, verbose=False).submit(STORY, "", api_name="/chat")
    try:
        cid = wait_for_conversation(shared_db)
        wait_for(lambda: bool(last_content(shared_db, cid)), "a checkpoint of the reply")
    finally:
        code = server.signal_and_wait(signal.SIGKILL)
    assert code == -signal.SIGKILL
    del job
    wait_for(
        lambda: reply_status(shared_db, cid) == "interrupted", "the sweep of the dead server's reply", 60
    )
