"""The served app never serializes chats on a concurrent backend, up to its chat limit."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from backends.base import ChatMessage, Delta, GenerationOptions
from backends.scripted import ScriptedBackend, replying
from tests.benchmarks.sse_client import call_streaming
from tests.ui.conftest import ServeFactory
from ui import layout

GATE_TIMEOUT_S = 60.0


class GatedBackend(ScriptedBackend):
    """Answers only once `parties` chats are streaming from it at the same moment."""

    def __init__(self, parties: int) -> None:
        super().__init__("gated", replying("all together"))
        self.gate = threading.Barrier(parties, timeout=GATE_TIMEOUT_S)

    def stream_chat(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> Iterator[Delta]:
        self.gate.wait()  # broken, and so every chat fails, if the app held one of them back
        yield from super().stream_chat(messages, options)


def test_as_many_chats_as_the_limit_stream_at_once(serve_backends: ServeFactory) -> None:
    # Gradio runs 40 events at once unless told otherwise: more than that must not wait.
    parties = layout.CHAT_LIMIT
    assert parties > 40
    served = serve_backends(GatedBackend(parties))
    user = served.app.local_user_id()
    cids = []
    for i in range(parties):
        # Conversations past their first exchange, so that no title request meets the gate.
        cid = served.app.repo.create_conversation(user, title=f"c{i}", backend="gated", language="en")
        served.app.repo.add_message(user, cid, "user", "hello")
        served.app.repo.add_message(user, cid, "assistant", "hi")
        cids.append(cid)

    def chat(i: int) -> str:
        with httpx.Client(base_url=served.url, timeout=GATE_TIMEOUT_S * 2) as client:
            return call_streaming(client, "chat", ["Are we all here?", cids[i]], session_hash=f"s{i}").output

    with ThreadPoolExecutor(parties) as pool:
        replies = list(pool.map(chat, range(parties)))
    assert replies == ["all together"] * parties
