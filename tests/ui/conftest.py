"""The Gradio app served on a free local port, for gradio_client and browser tests.

The helpers are plain functions so that tests/e2e can reuse them without
re-registering these fixtures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import NamedTuple

import pytest

from app.core import App
from backends.base import ChatBackend
from backends.scripted import ScriptedBackend, replying
from storage.repo import MessageRow
from tests.conftest import make_app
from tests.net import free_port
from ui.server import ServeOptions, launch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# 200 distinct words at 20 ms each: about 4 s, so a stop lands mid-reply on any machine.
SLOW_REPLY = " ".join(f"word{i:03d}" for i in range(200))
SLOW_DELAY_S = 0.02


class Served(NamedTuple):
    app: App
    url: str


@contextmanager
def serving(app: App, auth: bool = False) -> Iterator[Served]:
    """Launch the real server (same code path as `llamadesk serve`) without blocking."""
    demo, url = launch(app, ServeOptions(port=free_port(), auth=auth), block=False)
    try:
        yield Served(app, url)
    finally:
        demo.close()


def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.02)


def only_conversation(app: App) -> str:
    rows = app.repo.list_conversations(app.local_user_id())
    assert len(rows) == 1, f"expected one conversation, found {len(rows)}"
    return rows[0].id


def stored_messages(app: App, conversation_id: str) -> list[MessageRow]:
    return app.repo.messages(app.local_user_id(), conversation_id)


def last_reply_settled(app: App, conversation_id: str) -> bool:
    """True once the newest assistant message is no longer streaming (stop or end)."""
    rows = stored_messages(app, conversation_id)
    return bool(rows) and rows[-1].role == "assistant" and rows[-1].status != "streaming"


def slow_backend() -> ScriptedBackend:
    return ScriptedBackend(handler=replying(SLOW_REPLY, delay_s=SLOW_DELAY_S))


@pytest.fixture
def served_local(local_app: App) -> Iterator[Served]:
    """The app with the real embedded SmolLM2; local_app keeps the shared model loaded."""
    with serving(local_app) as served:
        yield served


@pytest.fixture
def served_scripted(db_url: str) -> Iterator[Served]:
    """The app with a slow, deterministic scripted backend."""
    app = make_app(db_url, slow_backend())
    try:
        with serving(app) as served:
            yield served
    finally:
        app.close()


ServeFactory = Callable[..., Served]


@pytest.fixture
def serve_backends(db_url: str) -> Iterator[ServeFactory]:
    """serve_backends(backend, ...) → Served; one app per test, closed afterwards."""
    with ExitStack() as stack:

        def start(*backends: ChatBackend) -> Served:
            app = make_app(db_url, *backends)
            stack.callback(app.close)
            return stack.enter_context(serving(app))

        yield start
