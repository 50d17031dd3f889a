"""The OpenAI-compatible /v1 routes, used the way other programs use them: the real `openai` client
and curl against the real server running the embedded model."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from app.api_keys import create_key
from app.core import App
from app.users import add_user
from backends.scripted import ScriptedBackend, replying
from tests.conftest import make_app
from tests.ui.conftest import Served, serving, wait_until

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Name three colours of the rainbow."},
]
GREEDY = {"temperature": 0.0, "seed": 7}


def client_for(served: Served, key: str = "not-needed-without-auth") -> OpenAI:
    return OpenAI(base_url=f"{served.url.rstrip('/')}/v1", api_key=key, max_retries=0, timeout=300)


@pytest.fixture
def local_client(served_local: Served) -> Iterator[OpenAI]:
    client = client_for(served_local)
    yield client
    client.close()


def test_models_lists_the_configured_backends(local_client: OpenAI) -> None:
    models = local_client.models.list()
    assert [m.id for m in models.data] == ["local"]
    assert models.data[0].owned_by == "llamadesk"


def test_completion_streamed_and_not_agree_and_carry_usage(local_client: OpenAI) -> None:
    whole = local_client.chat.completions.create(model="local", messages=MESSAGES, max_tokens=24, **GREEDY)
    text = whole.choices[0].message.content or ""
    assert text.strip()
    assert whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage is not None
    assert 0 < whole.usage.completion_tokens <= 24 and whole.usage.prompt_tokens > 10
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens

    chunks = list(
        local_client.chat.completions.create(
            model="local", messages=MESSAGES, max_tokens=24, stream=True, **GREEDY
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text, "greedy decoding gives the same reply, streamed or not"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3, "it really streamed"
    final = chunks[-1]
    assert final.choices[0].finish_reason == whole.choices[0].finish_reason
    assert final.usage is not None and final.usage.completion_tokens == whole.usage.completion_tokens

    with_usage = list(
        local_client.chat.completions.create(
            model="local",
            messages=MESSAGES,
            max_tokens=24,
            stream=True,
            stream_options={"include_usage": True},
            **GREEDY,
        )
    )
    assert with_usage[-1].choices == [] and with_usage[-1].usage is not None
    assert with_usage[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert all(c.usage is None for c in with_usage[:-1]), "OpenAI sends usage once, on its own chunk"


def test_max_tokens_stop_and_seed(local_client: OpenAI) -> None:
    short = local_client.chat.completions.create(model="local", messages=MESSAGES, max_tokens=3, **GREEDY)
    assert short.choices[0].finish_reason == "length"
    assert short.usage is not None and short.usage.completion_tokens == 3

    free = local_client.chat.completions.create(model="local", messages=MESSAGES, max_tokens=40, **GREEDY)
    text = free.choices[0].message.content or ""
    words = text.split()
    assert len(words) >= 4, text
    stop_word = words[3]
    stopped = local_client.chat.completions.create(
        model="local", messages=MESSAGES, max_tokens=40, stop=[stop_word], **GREEDY
    )
    assert stopped.choices[0].message.content == text[: text.index(stop_word)]
    assert stopped.choices[0].finish_reason == "stop"

    sampled = [
        local_client.chat.completions.create(
            model="local", messages=MESSAGES, max_tokens=24, temperature=1.2, seed=seed
        )
        .choices[0]
        .message.content
        for seed in (11, 11, 12)
    ]
    assert sampled[0] == sampled[1], "the same seed samples the same reply"


def test_errors_have_openais_shape(local_client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        local_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert missing.value.body["type"] == "invalid_request_error"  # type: ignore[index]

    with pytest.raises(openai.BadRequestError) as bad:
        local_client.chat.completions.create(model="local", messages=MESSAGES, temperature=5)
    assert bad.value.body["param"] == "temperature"  # type: ignore[index]

    too_long = [{"role": "user", "content": "lighthouse " * 6000}]
    with pytest.raises(openai.BadRequestError) as overflow:
        local_client.chat.completions.create(model="local", messages=too_long, max_tokens=8)  # type: ignore[arg-type]
    assert overflow.value.body["code"] == "context_length_exceeded"  # type: ignore[index]

    with pytest.raises(openai.BadRequestError) as nothing:
        local_client.chat.completions.create(model="local", messages=[{"role": "system", "content": "hi"}])
    assert nothing.value.body["code"] == "empty_message"  # type: ignore[index]


def test_a_named_conversation_stores_the_exchange(served_local: Served, local_client: OpenAI) -> None:
    app = served_local.app
    first = local_client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "My name is Ada. Say hello."}],
        max_tokens=16,
        extra_body={"conversation_id": "new"},
        **GREEDY,
    )
    cid = first.model_extra["conversation_id"]  # type: ignore[index]
    stored = app.repo.messages(app.local_user_id(), cid)
    assert [(m.role, m.status) for m in stored] == [("user", "complete"), ("assistant", "complete")]
    assert stored[1].content == first.choices[0].message.content

    chunks = list(
        local_client.chat.completions.create(
            model="local",
            messages=[{"role": "user", "content": "What is my name?"}],
            max_tokens=16,
            stream=True,
            extra_headers={"X-Llamadesk-Conversation": cid},
            **GREEDY,
        )
    )
    reply = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    stored = app.repo.messages(app.local_user_id(), cid)
    assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[-1].content == reply and stored[-1].status == "complete"

    with pytest.raises(openai.NotFoundError) as unknown:
        local_client.chat.completions.create(
            model="local", messages=MESSAGES, extra_body={"conversation_id": "0" * 32}
        )
    assert unknown.value.body["code"] == "conversation_not_found"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as no_model:
        local_client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_body={"conversation_id": cid}
        )
    assert no_model.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_a_client_that_leaves_mid_stream_keeps_the_reply_interrupted_and_frees_the_model(
    served_local: Served, local_client: OpenAI
) -> None:
    # The reply is made on a thread of its own, ahead of the client: leaving must still close it.
    app = served_local.app
    stream = local_client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
        max_tokens=400,
        stream=True,
        extra_body={"conversation_id": "new"},
        **GREEDY,
    )
    seen = ""
    for chunk in stream:
        cid = chunk.model_extra["conversation_id"]  # type: ignore[index]
        seen += (chunk.choices[0].delta.content or "") if chunk.choices else ""
        if len(seen) > 40:
            break
    stream.close()

    def reply() -> tuple[str, str]:
        last = app.repo.messages(app.local_user_id(), cid)[-1]
        return last.status, last.content

    wait_until(lambda: reply()[0] != "streaming", what="the reply to be closed")
    status, content = reply()
    assert status == "interrupted" and content.startswith(seen)
    after = local_client.chat.completions.create(model="local", messages=MESSAGES, max_tokens=8, **GREEDY)
    assert after.choices[0].message.content


def test_tokens_made_faster_than_they_are_sent_go_out_together_in_order(db_url: str) -> None:
    # One chunk per token cost the server and the client CPU that the model shares on a laptop.
    text = "".join(f"word{i} " for i in range(300))
    app = make_app(db_url, ScriptedBackend(handler=replying(text)))
    try:
        with serving(app) as served:
            client = client_for(served)
            chunks = list(
                client.chat.completions.create(
                    model="scripted", messages=MESSAGES, max_tokens=1000, stream=True
                )
            )
            client.close()
    finally:
        app.close()
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == text
    assert len(pieces) < 300 / 2, f"{len(pieces)} chunks for 300 tokens made at once"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 300


def curl(*args: str) -> str:
    binary = shutil.which("curl")
    assert binary, "curl is needed for this test (Debian: apt-get install curl)"
    result = subprocess.run([binary, "-sS", "--max-time", "300", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_curl_streaming_and_not(served_local: Served) -> None:
    url = f"{served_local.url.rstrip('/')}/v1/chat/completions"
    body = {"model": "local", "messages": MESSAGES, "max_tokens": 12, **GREEDY}
    whole = json.loads(curl("-H", "Content-Type: application/json", "-d", json.dumps(body), url))
    assert whole["object"] == "chat.completion" and whole["usage"]["completion_tokens"] > 0

    raw = curl("-N", "-H", "Content-Type: application/json", "-d", json.dumps({**body, "stream": True}), url)
    lines = [ln.removeprefix("data: ") for ln in raw.splitlines() if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    events = [json.loads(ln) for ln in lines[:-1]]
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    assert text == whole["choices"][0]["message"]["content"]

    broken = json.loads(curl("-H", "Content-Type: application/json", "-d", "{not json", url))
    assert broken["error"]["code"] == "invalid_json" and broken["error"]["type"] == "invalid_request_error"


def test_auth_needs_a_users_key_and_keeps_users_apart(local_app: App) -> None:
    add_user(local_app.repo, "alice", "alice-password-1")
    add_user(local_app.repo, "bob", "bob-password-22")
    alice_key, bob_key = create_key(local_app.repo, "alice"), create_key(local_app.repo, "bob")
    with serving(local_app, auth=True) as served:
        for key in ("", "ldk-not-a-key", "alice-password-1"):
            with pytest.raises(openai.AuthenticationError) as refused:
                client_for(served, key or "x").models.list()
            assert refused.value.body["code"] == "invalid_api_key"  # type: ignore[index]
        alice, bob = client_for(served, alice_key), client_for(served, bob_key)
        assert [m.id for m in alice.models.list().data] == ["local"]
        reply = alice.chat.completions.create(
            model="local",
            messages=[{"role": "user", "content": "alice-secret-zebra: remember it."}],
            max_tokens=8,
            extra_body={"conversation_id": "new"},
        )
        cid = reply.model_extra["conversation_id"]  # type: ignore[index]
        alice_id = local_app.repo.user_id("alice")
        assert alice_id is not None
        assert local_app.repo.get_conversation(alice_id, cid).id == cid
        with pytest.raises(openai.NotFoundError):
            bob.chat.completions.create(
                model="local",
                messages=[{"role": "user", "content": "What did alice say?"}],
                max_tokens=8,
                extra_body={"conversation_id": cid},
            )
        assert len(local_app.repo.messages(alice_id, cid)) == 2, "bob's attempt wrote nothing into it"


def test_users_key_prints_a_new_key_once_and_stores_only_its_hash(db_url: str, tmp_path: Path) -> None:
    from tests.ui.test_cli import cli

    assert cli("users", "add", "carol", db=db_url, stdin="carol-password-1\n").returncode == 0
    first = cli("users", "key", "carol", db=db_url)
    second = cli("users", "key", "carol", db=db_url)
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    key = first.stdout.strip()
    assert key.startswith("ldk-") and len(key) > 40 and key != second.stdout.strip()
    database = Path(db_url.removeprefix("sqlite:///"))
    stored = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    assert key[12:].encode() not in stored, "only the key's hash and its first characters are stored"
    missing = cli("users", "key", "nobody", db=db_url)
    assert missing.returncode == 2 and "no user" in missing.stderr
