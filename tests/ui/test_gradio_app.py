"""The named API (/chat, /conversations, /conversation) through gradio_client against a live server."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from gradio_client.client import Job

from backends.scripted import ScriptedBackend, replying, unavailable
from tests.benchmarks.sse_client import call_streaming
from tests.ui.conftest import (
    SLOW_REPLY,
    Served,
    ServeFactory,
    last_reply_settled,
    only_conversation,
    stored_messages,
    wait_until,
)
from ui.server import QUEUE_KNOBS, tune_queue

REPO_ROOT = Path(__file__).resolve().parents[2]

# The programmatic API contract of DESIGN.md, and the MCP tools (ui/mcp_tools.py); UI events must not add
# to it or rename it.
PUBLIC_ENDPOINTS = {
    "/chat",
    "/conversations",
    "/conversation",
    "/summarize",
    "/summarize_document",
    "/ask_document",
    "/send_message",
    "/search_conversations",
}


@pytest.fixture
def local_client(served_local: Served) -> Iterator[Client]:
    client = Client(served_local.url, verbose=False)
    yield client
    client.close()


@pytest.fixture
def scripted_client(served_scripted: Served) -> Iterator[Client]:
    client = Client(served_scripted.url, verbose=False)
    yield client
    client.close()


def connect(served: Served) -> Client:
    return Client(served.url, verbose=False)


def texts(job: Job) -> list[str]:
    """The non-empty partial replies streamed so far (the stream opens with an empty one)."""
    return [str(o) for o in job.outputs() if o]


def wait_for_outputs(job: Job, count: int, timeout_s: float = 120.0) -> list[str]:
    """Block until the stream has sent `count` non-empty partial replies, then return them."""
    wait_until(lambda: len(texts(job)) >= count or job.done(), timeout_s, f"{count} streamed outputs")
    outputs = texts(job)
    assert len(outputs) >= count and not job.done(), (
        f"the reply ended after {len(outputs)} output(s), before the test could stop it: {outputs[-1:]!r}"
    )
    return outputs


def assert_cumulative(outputs: list[str]) -> None:
    """Each streamed output is the whole reply so far, so it extends the previous one."""
    for before, after in itertools.pairwise(outputs):
        assert after.startswith(before), f"stream went backwards: {before!r} → {after!r}"


def conversation(client: Client, conversation_id: str) -> dict[str, Any]:
    result = client.predict(conversation_id, api_name="/conversation")
    assert isinstance(result, dict)
    return result


# -- the real embedded model ------------------------------------------------


def test_the_queue_knobs_exist_and_are_set() -> None:
    # Fails when a Gradio upgrade renames a knob, so the CPU it saves is not lost silently.
    import gradio as gr

    with gr.Blocks() as demo:
        gr.Markdown("x")
    demo.queue()
    assert tune_queue(demo) == []
    for name, value in QUEUE_KNOBS.items():
        assert getattr(demo._queue, name) == value, name


def test_an_absent_matplotlib_is_recorded_once_so_gradio_stops_searching_for_it() -> None:
    # Run apart: the test process must keep its own sys.modules as it is.
    code = """
import importlib.util
from ui.server import skip_absent_matplotlib
absent = importlib.util.find_spec("matplotlib") is None
assert skip_absent_matplotlib() is absent and skip_absent_matplotlib() is absent
try:
    import matplotlib  # noqa: F401
except ImportError:
    assert absent
else:
    assert not absent
print("absent" if absent else "present")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("absent", "present")


def test_chat_streams_a_real_reply_and_stores_it(served_local: Served, local_client: Client) -> None:
    job = local_client.submit("Name three colours of the rainbow, one per line.", "", api_name="/chat")
    final = str(job.result(timeout=300))
    outputs = texts(job)

    assert final.strip(), "the model's reply is empty"
    # A short reply can stream in few throttled steps, but never in one.
    assert len(set(outputs)) >= 2 and len(outputs[0]) < len(final), f"the reply did not stream: {outputs!r}"
    assert_cumulative(outputs)
    assert outputs[-1] == final

    listed = local_client.predict(api_name="/conversations")
    assert isinstance(listed, list) and len(listed) == 1
    summary = listed[0]
    assert set(summary) >= {"id", "title", "updated_at", "language"}
    assert summary["title"]

    data = conversation(local_client, summary["id"])
    assert data["id"] == summary["id"]
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert data["messages"][0] == {
        "role": "user",
        "content": "Name three colours of the rainbow, one per line.",
        "status": "complete",
    }
    assert data["messages"][1]["content"] == final
    assert data["messages"][1]["status"] == "complete"


def test_stop_keeps_the_real_partial_reply(served_local: Served, local_client: Client) -> None:
    app = served_local.app
    job = local_client.submit(
        "Write a very long and detailed story, in at least ten paragraphs, about a dragon who bakes bread.",
        "",
        api_name="/chat",
    )
    seen = wait_for_outputs(job, 3)
    job.cancel()

    conversation_id = only_conversation(app)
    wait_until(lambda: last_reply_settled(app, conversation_id), 60, "the stopped reply to be saved")
    user, reply = stored_messages(app, conversation_id)
    assert (user.role, user.status) == ("user", "complete")
    assert reply.status == "interrupted"
    assert reply.content.strip(), "the partial reply was not kept"
    # The server may have produced a few more tokens than the client saw before the stop landed.
    assert_cumulative([*seen, reply.content])

    api_reply = conversation(local_client, conversation_id)["messages"][-1]
    assert api_reply == {"role": "assistant", "content": reply.content, "status": "interrupted"}

    # The model's lock was released: the conversation goes on.
    follow_up = str(local_client.predict("Now say hello in one word.", conversation_id, api_name="/chat"))
    assert follow_up.strip()
    rows = stored_messages(app, conversation_id)
    assert [(r.role, r.status) for r in rows] == [
        ("user", "complete"),
        ("assistant", "interrupted"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert rows[1].content == reply.content
    assert rows[3].content == follow_up


# -- the scripted backend ---------------------------------------------------


def test_stop_keeps_an_exact_prefix_of_the_scripted_reply(
    served_scripted: Served, scripted_client: Client
) -> None:
    app = served_scripted.app
    job = scripted_client.submit("Tell me everything.", "", api_name="/chat")
    seen = wait_for_outputs(job, 3, timeout_s=30)
    job.cancel()

    conversation_id = only_conversation(app)
    wait_until(lambda: last_reply_settled(app, conversation_id), 30, "the stopped reply to be saved")
    reply = stored_messages(app, conversation_id)[-1]
    assert reply.status == "interrupted"
    assert reply.content, "the partial reply was not kept"
    assert SLOW_REPLY.startswith(reply.content)
    assert len(reply.content) < len(SLOW_REPLY), "the stop did not land mid-reply"
    assert_cumulative([*seen, reply.content])

    # Nothing keeps writing after the stop.
    time.sleep(0.3)
    assert stored_messages(app, conversation_id)[-1].content == reply.content
    assert conversation(scripted_client, conversation_id)["messages"][-1]["status"] == "interrupted"


class HeldAtThePrompt(ScriptedBackend):
    """Holds the chat's first step (the prompt being measured) until the test lets it go on."""

    def __init__(self) -> None:
        super().__init__("held", replying(SLOW_REPLY, delay_s=0.05))
        self.measuring = threading.Event()
        self.go_on = threading.Event()

    def count_tokens(self, text: str) -> int:
        self.measuring.set()
        self.go_on.wait(30)
        return super().count_tokens(text)


def test_a_stop_during_the_first_step_leaves_the_reply_interrupted_at_once(
    serve_backends: ServeFactory,
) -> None:
    # Gradio keeps a stream's generator only after its first step. A stop during that step was
    # never passed on to it: the reply stayed "streaming" until garbage collection found it.
    backend = HeldAtThePrompt()
    served = serve_backends(backend)
    client = connect(served)
    try:
        job = client.submit("Tell me everything.", "", api_name="/chat")
        assert backend.measuring.wait(30), "the chat never reached the backend"
        # The cancel waits for the step in flight; the step goes on once the cancel is (most likely)
        # under way. Should it come later, the stop lands in a later step and the outcome is the same.
        stopping = threading.Thread(target=job.cancel)
        stopping.start()
        threading.Timer(0.5, backend.go_on.set).start()
        stopping.join(60)
        assert not stopping.is_alive()
        conversation_id = only_conversation(served.app)
        assert [(m.role, m.status) for m in stored_messages(served.app, conversation_id)] == [
            ("user", "complete"),
            ("assistant", "interrupted"),
        ]
    finally:
        backend.go_on.set()
        client.close()


def test_chat_continues_a_conversation_with_its_history(serve_backends: ServeFactory) -> None:
    backend = ScriptedBackend(handler=replying("Paris is the capital of France."))
    served = serve_backends(backend)
    client = connect(served)
    try:
        first = client.predict("What is the capital of France?", "", api_name="/chat")
        assert first == "Paris is the capital of France."
        conversation_id = only_conversation(served.app)

        second = client.predict(message="And of Italy?", conversation_id=conversation_id, api_name="/chat")
        assert second == "Paris is the capital of France."
        assert only_conversation(served.app) == conversation_id, "the follow-up started a new conversation"

        asked = next(r for r in reversed(backend.requests) if r[-1]["content"] == "And of Italy?")
        assert [(m["role"], m["content"]) for m in asked[1:]] == [
            ("user", "What is the capital of France?"),
            ("assistant", "Paris is the capital of France."),
            ("user", "And of Italy?"),
        ]
        assert asked[0]["role"] == "system"
        assert [m["role"] for m in conversation(client, conversation_id)["messages"]] == [
            "user",
            "assistant",
            "user",
            "assistant",
        ]
    finally:
        client.close()


def test_unknown_conversation_is_a_clear_error(serve_backends: ServeFactory) -> None:
    served = serve_backends(ScriptedBackend())
    client = connect(served)
    try:
        with pytest.raises(Exception, match="not found"):
            client.predict("hello", "no-such-conversation", api_name="/chat")
        with pytest.raises(Exception, match="not found"):
            client.predict("no-such-conversation", api_name="/conversation")
        assert served.app.repo.list_conversations(served.app.local_user_id()) == []
    finally:
        client.close()


def test_empty_message_is_rejected_and_nothing_stored(serve_backends: ServeFactory) -> None:
    backend = ScriptedBackend()
    served = serve_backends(backend)
    client = connect(served)
    try:
        for blank in ("", "   \n\t "):
            with pytest.raises(Exception, match="empty"):
                client.predict(blank, "", api_name="/chat")
        assert client.predict(api_name="/conversations") == []
        assert served.app.repo.list_conversations(served.app.local_user_id()) == []
        assert backend.requests == []
    finally:
        client.close()


def test_backend_down_is_a_clear_error_and_the_message_is_kept(serve_backends: ServeFactory) -> None:
    served = serve_backends(ScriptedBackend(handler=unavailable()))
    client = connect(served)
    try:
        with pytest.raises(Exception, match="not reachable"):
            client.predict("Are you there?", "", api_name="/chat")
        conversation_id = only_conversation(served.app)
        messages = conversation(client, conversation_id)["messages"]
        # The empty reply is dropped; what the user typed stays.
        assert messages == [{"role": "user", "content": "Are you there?", "status": "complete"}]
    finally:
        client.close()


def test_the_http_api_takes_the_contract_s_values_and_no_more(serve_backends: ServeFactory) -> None:
    # A client without gradio_client (curl, another language) posts exactly DESIGN.md's values; Gradio
    # refuses a call with fewer values than the function has parameters, defaults or not.
    served = serve_backends(ScriptedBackend(handler=replying("Plain HTTP works.")))
    with httpx.Client(base_url=served.url, timeout=60) as http:
        reply = call_streaming(http, "chat", ["Hello over plain HTTP.", ""]).output
        listed = call_streaming(http, "conversations", []).output
    assert reply == "Plain HTTP works."
    assert isinstance(listed, list) and len(listed) == 1


def test_only_the_contract_endpoints_are_public(serve_backends: ServeFactory) -> None:
    served = serve_backends(ScriptedBackend())
    client = connect(served)
    try:
        info = client.view_api(print_info=False, return_format="dict")
        assert isinstance(info, dict)
        assert set(info["named_endpoints"]) == PUBLIC_ENDPOINTS
        assert not info["unnamed_endpoints"], "UI events leak into the public API"

        visibility = {d.get("api_name"): d.get("api_visibility") for d in client.config["dependencies"]}
        public = {f"/{name}" for name, v in visibility.items() if v != "private"}
        assert public == PUBLIC_ENDPOINTS
        # The UI's own events (send, regenerate, sidebar, ...) exist but are private.
        assert {"send", "regenerate", "open_conversation", "sidebar"} <= set(visibility)

        ui_send = next(i for i, d in enumerate(client.config["dependencies"]) if d.get("api_name") == "send")
        with pytest.raises(ValueError):
            client.predict(
                {"text": "hi", "files": []}, "", [], False, "", 0.7, 64, "auto", "", fn_index=ui_send
            )
        assert served.app.repo.list_conversations(served.app.local_user_id()) == []
    finally:
        client.close()
