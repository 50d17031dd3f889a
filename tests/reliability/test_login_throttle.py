"""Password guessing against a real `serve --auth`: throttled per account and per address, with
backoff, every failure logged, and the same answers for an unknown user as for a wrong password."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.conftest import ServeProcess, record_figure, wait_until
from tests.reliability.security_helpers import PASSWORD, security_server

GUESSES = 200


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServeProcess]:
    with security_server(tmp_path) as served:
        yield served


def _from(address: str, url: str) -> httpx.Client:
    """A client whose connections come from ``address`` (any 127.x.y.z reaches the server)."""
    return httpx.Client(base_url=url, timeout=30, transport=httpx.HTTPTransport(local_address=address))


def _guess(client: httpx.Client, user: str, password: str) -> tuple[int, str]:
    answer = client.post("login", data={"username": user, "password": password})
    return answer.status_code, answer.text


def test_guessing_is_throttled_and_answers_do_not_tell_users_apart(server: ServeProcess) -> None:
    known = _from("127.0.0.2", server.url)
    unknown = _from("127.0.0.3", server.url)
    known_answers = [_guess(known, "alice", f"wrong-{i}") for i in range(GUESSES)]
    # Even the right password waits out the backoff (asked well inside a wait of 2 s or more).
    while (
        refusal := known.post("login", data={"username": "alice", "password": "x"})
    ).status_code != 429 or int(refusal.headers["retry-after"]) < 2:
        pass
    assert _guess(known, "alice", PASSWORD["alice"])[0] == 429
    unknown_answers = [_guess(unknown, "nobody-here", f"wrong-{i}") for i in range(GUESSES)]

    checked = sum(1 for status, _ in known_answers if status == 400)
    throttled = sum(1 for status, _ in known_answers if status == 429)
    assert checked + throttled == GUESSES
    assert checked <= 10, f"{checked} of {GUESSES} guesses in a row were checked"
    # An unknown account is answered exactly like a wrong password, throttling included.
    first = [s for s, _ in known_answers[:6]]
    assert first == [400] * 5 + [429] == [s for s, _ in unknown_answers[:6]], (first, unknown_answers[:6])
    for status in (400, 429):
        said = {re.sub(r"\d+", "N", t) for s, t in known_answers if s == status}
        assert {re.sub(r"\d+", "N", t) for s, t in unknown_answers if s == status} == said
    log = server.log.read_text(encoding="utf-8", errors="replace")
    assert log.count("failed sign-in for 'alice'") >= checked
    assert "failed sign-in for 'nobody-here'" in log
    record_figure("login_throttle", {"guesses": GUESSES, "checked": checked, "throttled": throttled})


def test_backoff_doubles_and_a_success_resets_the_account(server: ServeProcess) -> None:
    client = _from("127.0.0.4", server.url)
    waits = []
    for _ in range(3):
        while (
            answer := client.post("login", data={"username": "bob", "password": "nope-nope"})
        ).status_code == 400:
            pass
        assert answer.status_code == 429
        waits.append(int(answer.headers["retry-after"]))
        deadline = time.monotonic() + waits[-1]
        wait_until(lambda d=deadline: time.monotonic() >= d, waits[-1] + 5, "the backoff to pass")
    assert waits[1] >= 2 * waits[0] - 1 and waits[2] >= 2 * waits[1] - 1, waits
    answer = client.post("login", data={"username": "bob", "password": PASSWORD["bob"]})
    assert answer.status_code == 200
    assert client.post("login", data={"username": "bob", "password": "typo-once"}).status_code == 400


def test_many_accounts_from_one_address_are_throttled(server: ServeProcess) -> None:
    spray = _from("127.0.0.5", server.url)
    statuses = [_guess(spray, f"user{i}", "Password1")[0] for i in range(60)]
    assert statuses.count(429) > 0 and statuses.count(400) <= 25, statuses
    # Another address is not affected: alice signs in from there.
    elsewhere = _from("127.0.0.6", server.url)
    assert _guess(elsewhere, "alice", PASSWORD["alice"])[0] == 200
