"""Backend faults against real servers: llama_cpp.server (down, killed mid-stream, overflowing) and
the vLLM simulator (stalled). Each fault must give a clear message in the chat, lose nothing the
user typed or the model already said, and leave the conversation working once the backend is back.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.chat import ChatSettings, ChatUpdate
from app.core import App
from app.language import error_text
from backends.base import BackendTimeout
from backends.scripted import ScriptedBackend, replying
from backends.vllm import OpenAICompatBackend
from storage.repo import MessageRow
from tests.benchmarks.sim_server import start_simulator, stop_simulator
from tests.conftest import make_app
from tests.reliability.conftest import free_port, start_llama_server, stop_process

SETTINGS = ChatSettings(max_tokens=48, temperature=0.0, seed=1)
LONG_REPLY_SETTINGS = ChatSettings(max_tokens=400, temperature=0.7, seed=3)
STORY = "Write a long story about a lighthouse keeper and a storm, with many details."


@pytest.fixture
def remote_app(db_url: str) -> Iterator[tuple[App, OpenAICompatBackend, int]]:
    """An app whose only backend is an OpenAI-compatible server on a port where nothing runs yet."""
    port = free_port()
    backend = OpenAICompatBackend("remote", f"http://127.0.0.1:{port}", timeout_s=120, connect_timeout_s=3)
    app = make_app(db_url, backend)
    yield app, backend, port
    app.close()


def run(updates: Iterator[ChatUpdate]) -> list[ChatUpdate]:
    return list(updates)


def stored(app: App, conversation_id: str) -> list[MessageRow]:
    return app.repo.messages(app.local_user_id(), conversation_id)


def only_conversation(app: App) -> str:
    (row,) = app.repo.list_conversations(app.local_user_id())
    return row.id


def chat_notice(update: ChatUpdate) -> str:
    """What the chat shows for a failed exchange (the UI prefixes it with a warning sign)."""
    assert update.status == "error" and update.error, update
    return update.error


def test_down_at_start_then_recovers(remote_app: tuple[App, OpenAICompatBackend, int]) -> None:
    app, _backend, port = remote_app
    user = app.local_user_id()
    final = run(app.chat.send(user, None, "Hello there, are you awake?", SETTINGS))[-1]
    assert final.error_code == "backend_unavailable"
    assert chat_notice(final).startswith(error_text(final.language, "backend_unavailable"))
    assert "127.0.0.1" in chat_notice(final)  # says which server could not be reached
    cid = final.conversation_id
    assert [(r.role, r.content) for r in stored(app, cid)] == [("user", "Hello there, are you awake?")]

    server = start_llama_server(port)  # the backend comes back on its address
    try:
        again = run(app.chat.regenerate(user, cid, SETTINGS))[-1]
    finally:
        stop_process(server)
    assert again.status == "complete" and again.reply.strip()
    rows = stored(app, cid)
    assert [(r.role, r.status) for r in rows] == [("user", "complete"), ("assistant", "complete")]
    assert rows[1].content == again.reply


def test_server_dies_mid_stream_keeps_the_partial(
    remote_app: tuple[App, OpenAICompatBackend, int], processes: list[subprocess.Popen[Any]]
) -> None:
    app, _backend, port = remote_app
    user = app.local_user_id()
    server = start_llama_server(port)
    processes.append(server)
    updates = app.chat.send(user, None, STORY, LONG_REPLY_SETTINGS)
    seen: list[ChatUpdate] = []
    for update in updates:
        seen.append(update)
        if update.reply.strip() and server.poll() is None:
            os.kill(server.pid, signal.SIGKILL)  # the server dies with the stream open
            server.wait(30)
    final = seen[-1]
    assert server.poll() is not None, f"the reply ended before the server could be killed: {final}"
    assert final.error_code == "backend_unavailable"
    assert chat_notice(final).startswith(error_text(final.language, "backend_unavailable"))
    rows = stored(app, final.conversation_id)
    assert [(r.role, r.status) for r in rows] == [("user", "complete"), ("assistant", "interrupted")]
    assert rows[0].content == STORY
    assert rows[1].content and rows[1].content == final.reply

    processes.append(start_llama_server(port))  # back again: the conversation goes on
    again = run(app.chat.regenerate(user, final.conversation_id, SETTINGS))[-1]
    assert again.status == "complete" and again.reply.strip()


def test_context_overflow_is_explained_and_the_chat_goes_on(
    remote_app: tuple[App, OpenAICompatBackend, int], processes: list[subprocess.Popen[Any]]
) -> None:
    app, _backend, port = remote_app
    user = app.local_user_id()
    processes.append(start_llama_server(port, n_ctx=2048))
    huge = "Please read this carefully. " + "The quick brown fox jumps over the lazy dog. " * 400
    final = run(app.chat.send(user, None, huge, SETTINGS))[-1]
    assert final.error_code == "context_overflow"
    notice = chat_notice(final)
    assert notice.startswith(error_text(final.language, "context_overflow"))
    assert "2048" in notice  # the window, from the server itself
    cid = final.conversation_id
    assert [(r.role, r.content) for r in stored(app, cid)] == [("user", huge.strip())]
    # A short follow-up in the same conversation still works: the long turn is left out.
    follow = run(app.chat.send(user, cid, "Just say hello.", SETTINGS))[-1]
    assert follow.status == "complete" and follow.dropped_turns >= 1


def test_stalled_server_times_out_with_a_clear_message(db_url: str) -> None:
    url, proc = start_simulator(rate=50.0, tokens=40, max_model_len=4096)
    backend = OpenAICompatBackend("sim", url, timeout_s=2.0, connect_timeout_s=2.0)
    app = make_app(db_url, backend)
    try:
        user = app.local_user_id()
        final = run(app.chat.send(user, None, "Tell me a story SIM_STALL", SETTINGS))[-1]
        assert final.error_code == "backend_unavailable"
        assert chat_notice(final).startswith(error_text(final.language, "backend_unavailable"))
        assert "2 s" in chat_notice(final)  # says it was a timeout, and how long it waited
        rows = stored(app, final.conversation_id)
        assert [(r.role, r.status) for r in rows] == [("user", "complete"), ("assistant", "interrupted")]
        assert rows[1].content == final.reply == " tok0 tok1 tok2"  # what came before the stall
        again = run(app.chat.send(user, final.conversation_id, "And now a short one.", SETTINGS))[-1]
        assert again.status == "complete" and again.reply.strip()
    finally:
        app.close()
        stop_simulator(proc)


def test_the_timeout_is_a_backend_timeout() -> None:
    url, proc = start_simulator(rate=50.0, tokens=40, max_model_len=4096)
    backend = OpenAICompatBackend("sim", url, timeout_s=1.0)
    try:
        backend.connect()
        from backends.base import GenerationOptions

        with pytest.raises(BackendTimeout):
            list(
                backend.stream_chat(
                    [{"role": "user", "content": "SIM_STALL"}], GenerationOptions(max_tokens=20)
                )
            )
    finally:
        backend.close()
        stop_simulator(proc)


ODD = "ok \ud800 lone \udfff surrogates, a pair \ud83d\ude00, NUL\x00, ESC\x1b[31m red, RTL\u202e end"


def test_odd_text_from_a_backend_or_a_client_is_stored_and_served(db_url: str) -> None:
    """Lone surrogates, NUL and terminal escapes must not crash storage, the UI or the CLI."""
    app = make_app(db_url, ScriptedBackend(handler=replying(ODD)))
    try:
        user = app.local_user_id()
        final = run(app.chat.send(user, None, "hi \ud800 there\x00", SETTINGS))[-1]
        assert final.status == "complete"
        final.reply.encode("utf-8")  # printable by the CLI, serializable by the UI
        assert "\x00" not in final.reply and "\x1b" not in final.reply
        assert "\U0001f600" in final.reply  # a surrogate pair is one character again
        rows = stored(app, final.conversation_id)
        assert [r.content for r in rows] == ["hi \ufffd there", final.reply]
        assert rows[1].status == "complete"
    finally:
        app.close()


def test_odd_text_through_the_real_api(db_url: str, tmp_path: Path) -> None:
    """A raw JSON client can send a lone surrogate escape; the server stores and answers."""
    import httpx

    from ui.server import ServeOptions, launch

    app = make_app(db_url, ScriptedBackend(handler=replying(ODD)))
    demo, url = launch(app, ServeOptions(port=free_port()), block=False)
    try:
        base = url.rstrip("/")
        body = b'{"data": ["raw \\ud800 message", ""]}'
        response = httpx.post(f"{base}/gradio_api/call/chat", content=body, timeout=30,
                              headers={"content-type": "application/json"})  # fmt: skip
        event = response.json()["event_id"]
        with httpx.stream("GET", f"{base}/gradio_api/call/chat/{event}", timeout=60) as stream:
            events = stream.read().decode()
        assert "event: complete" in events and "\\ud83d\\ude00" in events
        rows = stored(app, only_conversation(app))
        assert [(r.role, r.status) for r in rows] == [("user", "complete"), ("assistant", "complete")]
        assert rows[0].content == "raw \ufffd message"
    finally:
        demo.close()
        app.close()
