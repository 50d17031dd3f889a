"""Two accounts on one `serve --auth` server: B can never list, read, change, delete or summarize into A's.

The API path is real (two signed-in gradio_client sessions against the launched server); the UI
handlers are called as Gradio calls them, with a request that carries the signed-in username.
Every attempt counts as a check; a leak is any attempt that shows A's secrets to B or changes A's data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fpdf import FPDF
from gradio_client import Client

from app.chat import ChatSettings
from app.core import App
from app.users import add_user
from backends.scripted import ScriptedBackend, replying
from storage.repo import NotFound
from tests.conftest import make_app
from tests.net import free_port
from tests.reliability.conftest import record_figure, start_serve, stop_process
from ui.handlers import Handlers
from ui.server import ServeOptions, launch

PASSWORD = {"alice": "alice-password-1", "bob": "bob-password-22"}
SECRET_MESSAGE = "alice-secret-zebra-7731 what is my balance"
SECRET_TITLE = "alice-secret-quokka-title"
SECRETS = ("zebra-7731", "quokka")


@dataclass
class Served:
    app: App
    url: str
    alice: int
    bob: int


@dataclass
class Tally:
    """Attempts by B on A's data: each one is a check; showing A's secrets or changing A's data is a leak."""

    snapshot: Callable[[], object]
    checks: int = 0
    leaks: list[str] = field(default_factory=list)

    def attempt(self, name: str, action: Callable[[], Any], refused: bool = False) -> None:
        """Run B's action; with ``refused``, anything but an error counts as a leak too."""
        before = self.snapshot()
        try:
            result: Any = action()
            if isinstance(result, Iterator):
                result = list(result)
        except (TypeError, AttributeError):
            raise  # a handler's signature changed: the test must follow, not count it as a refusal
        except Exception as exc:  # a refusal is the expected outcome for most attempts
            result = exc
        self.checks += 1
        print(f"{name}: {'refused' if isinstance(result, Exception) else 'answered'}: {repr(result)[:100]}")
        if refused and not isinstance(result, Exception):
            self.leaks.append(f"{name}: was not refused: {repr(result)[:200]}")
        shown = repr(result)
        if any(secret in shown for secret in SECRETS):
            self.leaks.append(f"{name}: showed A's data: {shown[:200]}")
        if self.snapshot() != before:
            self.leaks.append(f"{name}: changed A's data")


class FakeRequest:
    """What the handlers read from gr.Request: the signed-in username."""

    def __init__(self, username: str | None) -> None:
        self.username = username


@pytest.fixture
def served(db_url: str) -> Iterator[Served]:
    app = make_app(db_url, ScriptedBackend(handler=replying("A plain reply.", delay_s=0.001)))
    alice = add_user(app.repo, "alice", PASSWORD["alice"])
    bob = add_user(app.repo, "bob", PASSWORD["bob"])
    demo, url = launch(app, ServeOptions(port=free_port(), auth=True), block=False)
    try:
        yield Served(app, url, alice, bob)
    finally:
        demo.close()
        app.close()


def signed_in(url: str, user: str) -> Client:
    return Client(url, auth=(user, PASSWORD[user]), verbose=False)


def tiny_pdf(path: Path) -> Path:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, "Quarterly report. Revenue grew in every region. " * 20)
    pdf.output(str(path))
    return path


def alice_state(app: App, alice: int) -> Callable[[], object]:
    def snapshot() -> object:
        conversations = app.repo.list_conversations(alice, limit=1000)
        return [
            (
                c.id,
                c.title,
                [(m.id, m.role, m.content, m.status) for m in app.repo.messages(alice, c.id)],
                app.repo.conversation_documents(alice, c.id),
            )
            for c in conversations
        ]

    return snapshot


def api_attempts(tally: Tally, served: Served, bob: Client, alice_cid: str, pdf: Path) -> None:
    from gradio_client import handle_file

    # A listing that held A's conversation would show her secret title.
    tally.attempt("api /conversations", lambda: bob.predict(api_name="/conversations"))
    tally.attempt("api /conversation", lambda: bob.predict(alice_cid, api_name="/conversation"), refused=True)
    tally.attempt(
        "api /chat into A's", lambda: bob.predict("bob writes", alice_cid, api_name="/chat"), refused=True
    )
    # /summarize takes no conversation: what B summarizes must land in B's own conversations.
    tally.attempt("api /summarize", lambda: bob.predict(handle_file(str(pdf)), "en", api_name="/summarize"))
    tally.attempt("api /conversations after", lambda: bob.predict(api_name="/conversations"))


def handler_attempts(tally: Tally, served: Served, alice_cid: str, pdf: Path) -> None:
    handlers = Handlers(served.app, auth=True)
    bob = FakeRequest("bob")
    chat = {
        "system_prompt": "",
        "temperature": 0.7,
        "max_tokens": 64,
        "reply_language": "auto",
        "backend": None,
    }
    tally.attempt("ui sidebar", lambda: handlers.sidebar(alice_cid, bob))
    tally.attempt("ui search", lambda: handlers.search("zebra", bob))
    tally.attempt("ui open", lambda: handlers.open_conversation(alice_cid, bob))
    tally.attempt("ui rename", lambda: handlers.rename(alice_cid, "renamed by bob", bob))
    tally.attempt("ui delete", lambda: handlers.delete(alice_cid, alice_cid, bob))
    tally.attempt(
        "ui send into A's",
        lambda: handlers.send(
            message={"text": "bob writes here", "files": []},
            conversation_id=alice_cid,
            history=[],
            editing=False,
            request=bob,
            **chat,
        ),
    )
    tally.attempt(
        "ui edit A's last",
        lambda: handlers.send({"text": "x", "files": []}, alice_cid, [], True, request=bob, **chat),
    )
    tally.attempt("ui regenerate A's", lambda: handlers.regenerate(alice_cid, request=bob, **chat))
    tally.attempt("ui continue A's", lambda: handlers.continue_reply(alice_cid, request=bob, **chat))
    tally.attempt("ui edit_last", lambda: handlers.edit_last(alice_cid, bob))
    tally.attempt(
        "ui summarize into A's",
        lambda: handlers.summarize(str(pdf), "en", "", None, alice_cid, bob),
    )
    tally.attempt(
        "ui PDF dropped into A's chat",
        lambda: handlers.send({"text": "", "files": [str(pdf)]}, alice_cid, [], False, request=bob, **chat),
    )


def service_attempts(tally: Tally, served: Served, alice_cid: str, pdf: Path) -> None:
    """The app layer below both paths: every call with B's id and A's conversation."""
    from app.documents import extract_pdf

    app, bob = served.app, served.bob
    alice_message = app.repo.messages(served.alice, alice_cid)[0].id
    doc = extract_pdf(pdf, filename=pdf.name)
    tally.attempt("app chat.send", lambda: app.chat.send(bob, alice_cid, "hi", ChatSettings()), refused=True)
    tally.attempt(
        "app chat.continue_last", lambda: app.chat.continue_last(bob, alice_cid, ChatSettings()), refused=True
    )
    tally.attempt(
        "app chat.regenerate", lambda: app.chat.regenerate(bob, alice_cid, ChatSettings()), refused=True
    )
    tally.attempt(
        "app chat.edit_last", lambda: app.chat.edit_last(bob, alice_cid, "x", ChatSettings()), refused=True
    )
    tally.attempt(
        "app documents.summary_events",
        lambda: app.documents.summary_events(bob, doc, conversation_id=alice_cid),
    )
    tally.attempt("repo get_conversation", lambda: app.repo.get_conversation(bob, alice_cid), refused=True)
    tally.attempt("repo messages", lambda: app.repo.messages(bob, alice_cid), refused=True)
    tally.attempt(
        "repo turn_state",
        lambda: app.repo.turn_state(bob, alice_cid),
        refused=True,
    )
    tally.attempt("repo rename", lambda: app.repo.rename_conversation(bob, alice_cid, "x"), refused=True)
    alice_title = app.repo.get_conversation(served.alice, alice_cid).title  # B guesses it right
    tally.attempt(
        "repo replace_title", lambda: app.repo.replace_title(bob, alice_cid, alice_title, "x"), refused=True
    )
    tally.attempt(
        "repo update", lambda: app.repo.update_conversation(bob, alice_cid, language="de"), refused=True
    )
    tally.attempt("repo delete", lambda: app.repo.delete_conversation(bob, alice_cid), refused=True)
    tally.attempt("repo add_message", lambda: app.repo.add_message(bob, alice_cid, "user", "x"), refused=True)
    tally.attempt(
        "repo add_exchange",
        lambda: app.repo.add_exchange(bob, alice_cid, "x", backend="b", model="m"),
        refused=True,
    )
    tally.attempt(
        "repo checkpoint",
        lambda: app.repo.checkpoint_message(bob, alice_message, "x", status="complete"),
        refused=True,
    )
    tally.attempt(
        "repo delete_messages_from",
        lambda: app.repo.delete_messages_from(bob, alice_cid, alice_message),
        refused=True,
    )
    tally.attempt(
        "repo attach_document", lambda: app.repo.attach_document(bob, alice_cid, doc.sha256), refused=True
    )
    tally.attempt(
        "repo conversation_documents", lambda: app.repo.conversation_documents(bob, alice_cid), refused=True
    )
    tally.attempt("repo search", lambda: app.repo.search(bob, "zebra"))


def anonymous_attempts(tally: Tally, served: Served, alice_cid: str) -> None:
    """No sign-in, a wrong password, or a handler call without a user: all refused."""
    base = served.url.rstrip("/")
    nobody = FakeRequest(None)
    anonymous = {
        "anonymous client": lambda: Client(served.url, verbose=False).predict(api_name="/conversations"),
        "wrong password": lambda: Client(served.url, auth=("alice", "wrong-password"), verbose=False),
        "raw /conversations": lambda: _raw_call(base, "conversations", []),
        "raw /conversation": lambda: _raw_call(base, "conversation", [alice_cid]),
        "raw /chat": lambda: _raw_call(base, "chat", ["anon", alice_cid]),
        "ui open without user": lambda: Handlers(served.app, auth=True).open_conversation(alice_cid, nobody),
        "ui sidebar without user": lambda: Handlers(served.app, auth=True).sidebar("", nobody),
    }
    for name, action in anonymous.items():
        tally.attempt(name, action, refused=True)


def _raw_call(base: str, endpoint: str, data: list[str]) -> str:
    """The HTTP API without the session cookie; anything but a refusal is returned for inspection."""
    response = httpx.post(f"{base}/gradio_api/call/{endpoint}", json={"data": data}, timeout=30)
    if response.status_code in (401, 403):
        raise PermissionError(response.status_code)
    event = response.json().get("event_id")
    with httpx.stream("GET", f"{base}/gradio_api/call/{endpoint}/{event}", timeout=30) as stream:
        return stream.read().decode()


def test_user_b_cannot_reach_user_a_s_conversations(served: Served, tmp_path: Path) -> None:
    pdf = tiny_pdf(tmp_path / "report.pdf")
    alice_client = signed_in(served.url, "alice")
    bob_client = signed_in(served.url, "bob")
    try:
        assert alice_client.predict(SECRET_MESSAGE, "", api_name="/chat") == "A plain reply."
        (alice_row,) = alice_client.predict(api_name="/conversations")
        alice_cid = alice_row["id"]
        served.app.repo.rename_conversation(served.alice, alice_cid, SECRET_TITLE)
        assert bob_client.predict("bob's own question", "", api_name="/chat") == "A plain reply."

        tally = Tally(alice_state(served.app, served.alice))
        api_attempts(tally, served, bob_client, alice_cid, pdf)
        handler_attempts(tally, served, alice_cid, pdf)
        service_attempts(tally, served, alice_cid, pdf)
        anonymous_attempts(tally, served, alice_cid)

        # A still sees exactly her own conversation, intact, and B only his.
        mine = alice_client.predict(alice_cid, api_name="/conversation")
        assert mine["title"] == SECRET_TITLE and mine["messages"][0]["content"] == SECRET_MESSAGE
        assert {r["id"] for r in alice_client.predict(api_name="/conversations")} == {alice_cid}
        assert alice_cid not in {r["id"] for r in bob_client.predict(api_name="/conversations")}
    finally:
        for client in (alice_client, bob_client):
            with contextlib.suppress(Exception):
                client.close()
    record_figure("isolation", {"checks": tally.checks, "leaks": len(tally.leaks)})
    assert not tally.leaks, "\n".join(tally.leaks)


def test_insecure_no_auth_allows_a_public_bind(tmp_path: Path) -> None:
    """The escape hatch works: --host 0.0.0.0 --insecure-no-auth starts (refusal without it: test_cli)."""
    server = start_serve(
        f"sqlite:///{tmp_path / 'open.db'}", tmp_path / "serve.log", "--insecure-no-auth", host="0.0.0.0"
    )
    try:
        assert httpx.get(server.url, timeout=10).status_code == 200
    finally:
        stop_process(server.proc)
    assert "refusing" not in server.log.read_text(encoding="utf-8", errors="replace")


def test_repo_refuses_other_users_ids_with_not_found(scripted_app: App) -> None:
    """The same NotFound for someone else's id as for no id at all: ids reveal nothing."""
    alice = scripted_app.repo.ensure_user("alice")
    bob = scripted_app.repo.ensure_user("bob")
    cid = scripted_app.repo.create_conversation(alice, title="mine")
    with pytest.raises(NotFound) as theirs:
        scripted_app.repo.get_conversation(bob, cid)
    with pytest.raises(NotFound) as missing:
        scripted_app.repo.get_conversation(bob, "0" * 32)
    assert str(theirs.value) == str(missing.value)
