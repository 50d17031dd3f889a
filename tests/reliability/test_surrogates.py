"""A lone UTF-16 surrogate in what a user sends: cleaned once at the edge, for the browser, the API
and the command line, so the stream survives and the stored text is valid."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client
from playwright.sync_api import Browser

from tests.reliability.conftest import ServeProcess, cli_command, cli_env
from tests.reliability.security_helpers import PASSWORD, login, security_server
from tests.reliability.test_rendering import Recorder, _signed_in_context, _wait_for_text

REPLY = "The reply arrived intact."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with security_server(tmp_path_factory.mktemp("surrogates"), reply=REPLY) as served:
        yield served


def test_the_browser_chat_survives_a_lone_surrogate(chromium: Browser, server: ServeProcess) -> None:
    recorder = Recorder(server.url.rstrip("/"))
    context = _signed_in_context(chromium, server, recorder)
    page = context.new_page()
    try:
        page.goto(server.url)
        box = page.locator("#message textarea").first
        box.wait_for()
        box.fill("placeholder")
        # A string with an unpaired high surrogate, as a broken paste or a script can produce.
        box.evaluate(
            """el => {
                el.value = "broken \\uD800 paste";
                el.dispatchEvent(new Event("input", {bubbles: true}));
            }"""
        )
        box.press("Enter")
        _wait_for_text(page, "#chatbot", REPLY)
        _wait_for_text(page, "#chatbot", "broken \ufffd paste")
        assert page.locator(".toast-body").count() == 0
    finally:
        context.close()


def test_the_api_stores_a_lone_surrogate_cleaned(server: ServeProcess) -> None:
    bob = login(server.url, "bob")
    # Written by hand: JSON may carry an escaped lone surrogate, which no client library will send.
    body = b'{"data": ["api \\ud83d text", ""]}'
    started = bob.post("gradio_api/call/chat", content=body, headers={"content-type": "application/json"})
    assert started.status_code == 200, started.text
    with bob.stream("GET", f"gradio_api/call/chat/{started.json()['event_id']}", timeout=300) as stream:
        events = [line for line in stream.iter_lines() if line.startswith("event:")]
    assert events[-1] == "event: complete", events
    client = Client(server.url, auth=("bob", PASSWORD["bob"]), verbose=False)
    try:
        (row,) = client.predict(api_name="/conversations")
        stored = client.predict(row["id"], api_name="/conversation")
    finally:
        client.close()
    assert stored["messages"][0]["content"] == "api \ufffd text"


def test_the_command_line_takes_undecodable_bytes(tmp_path: Path) -> None:
    message = b"bytes \xed\xa0\x80 here"  # UTF-8 of a lone surrogate: Python hands it over as \udced...
    done = subprocess.run(
        [os.fsencode(a) for a in cli_command("chat", "--max-tokens", "4", "--json")] + [message],
        env=cli_env(LLAMADESK_DB=f"sqlite:///{tmp_path / 'cli.db'}"),
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    reply = json.loads(done.stdout)
    assert reply["conversation_id"]
    show = subprocess.run(
        cli_command("conversations", "show", reply["conversation_id"]),
        env=cli_env(LLAMADESK_DB=f"sqlite:///{tmp_path / 'cli.db'}"),
        capture_output=True,
        timeout=120,
    )
    assert "bytes \ufffd" in show.stdout.decode("utf-8"), show.stdout
