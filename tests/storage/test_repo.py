"""Repository behaviour on every configured database (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.heartbeat import Heartbeat
from storage.db import Database
from storage.models import Message
from storage.repo import NotFound, Repository


def _count_messages(db: Database, cid: str | None = None) -> int:
    stmt = select(func.count()).select_from(Message)
    if cid is not None:
        stmt = stmt.where(Message.conversation_id == cid)
    with db.session() as s:
        return int(s.scalar(stmt) or 0)


# users ------------------------------------------------------------------------------------------


def test_ensure_user_is_get_or_create(repo: Repository) -> None:
    first = repo.ensure_user("carol")
    assert repo.ensure_user("carol") == first
    assert repo.user_id("carol") == first
    assert repo.password_hash("carol") is None
    assert repo.user_id("nobody") is None


def test_add_user_refuses_duplicates(repo: Repository) -> None:
    uid = repo.add_user("dave", "argon2-hash")
    assert repo.password_hash("dave") == "argon2-hash"
    assert repo.user_id("dave") == uid
    with pytest.raises(ValueError, match="exists"):
        repo.add_user("dave", "other")
    with pytest.raises(ValueError):
        repo.add_user("  ", "x")


def test_list_and_remove_users_cascades(repo: Repository, db: Database) -> None:
    erin = repo.add_user("erin", "h")
    repo.ensure_user("alice")
    cid = repo.create_conversation(erin, title="t")
    repo.add_message(erin, cid, "user", "hello")
    assert repo.list_users() == ["alice", "erin"]
    assert repo.remove_user("erin") is True
    assert repo.remove_user("erin") is False
    assert repo.list_users() == ["alice"]
    assert _count_messages(db) == 0


# conversations ----------------------------------------------------------------------------------


def test_create_and_get_conversation(repo: Repository, alice: int) -> None:
    cid = repo.create_conversation(alice, title="Trip", backend="local", model="smol")
    row = repo.get_conversation(alice, cid)
    assert (row.id, row.title, row.backend, row.model, row.language) == (cid, "Trip", "local", "smol", "auto")
    assert len(cid) == 32 and int(cid, 16) >= 0
    assert row.created_at.tzinfo is not None and row.created_at.utcoffset() == timedelta(0)
    assert abs(row.created_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_create_conversation_for_unknown_user(repo: Repository) -> None:
    with pytest.raises(NotFound):
        repo.create_conversation(987654)


def test_list_conversations_newest_activity_first(repo: Repository, alice: int) -> None:
    ids = [repo.create_conversation(alice, title=f"c{i}") for i in range(5)]
    repo.add_message(alice, ids[1], "user", "bump")  # activity moves it to the top
    listed = [c.id for c in repo.list_conversations(alice)]
    assert listed == [ids[1], ids[4], ids[3], ids[2], ids[0]]
    assert [c.id for c in repo.list_conversations(alice, limit=2, offset=1)] == [ids[4], ids[3]]


def test_rename_and_update_conversation(repo: Repository, alice: int) -> None:
    cid = repo.create_conversation(alice)
    repo.rename_conversation(alice, cid, "Nouveau titre")
    repo.update_conversation(alice, cid, backend="vllm", model="405b")
    repo.update_conversation(alice, cid, language="fr")
    repo.update_conversation(alice, cid)  # no-op, still checks the id
    row = repo.get_conversation(alice, cid)
    assert (row.title, row.backend, row.model, row.language) == ("Nouveau titre", "vllm", "405b", "fr")


def test_a_title_replaces_only_the_title_it_was_made_for(repo: Repository, alice: int, bob: int) -> None:
    cid = repo.create_conversation(alice, title="How do I keep basil…")
    assert repo.replace_title(alice, cid, "How do I keep basil…", "Basil care")
    repo.rename_conversation(alice, cid, "My herbs")
    assert not repo.replace_title(alice, cid, "Basil care", "Basil care, again")
    assert repo.get_conversation(alice, cid).title == "My herbs"
    with pytest.raises(NotFound):
        repo.replace_title(bob, cid, "My herbs", "mine now")
    assert repo.get_conversation(alice, cid).title == "My herbs"


def test_missing_conversation_raises(repo: Repository, alice: int) -> None:
    with pytest.raises(NotFound):
        repo.get_conversation(alice, "0" * 32)
    with pytest.raises(NotFound):
        repo.delete_conversation(alice, "nope")


# messages ---------------------------------------------------------------------------------------


def test_append_messages_in_order(repo: Repository, alice: int) -> None:
    cid = repo.create_conversation(alice)
    before = repo.get_conversation(alice, cid).updated_at
    time.sleep(0.002)
    first = repo.add_message(alice, cid, "user", "Bonjour")
    second = repo.add_message(
        alice,
        cid,
        "assistant",
        "Salut !",
        backend="local",
        model="smol",
        prompt_tokens=12,
        completion_tokens=3,
    )
    assert second > first
    rows = repo.messages(alice, cid)
    assert [(m.id, m.role, m.content, m.status) for m in rows] == [
        (first, "user", "Bonjour", "complete"),
        (second, "assistant", "Salut !", "complete"),
    ]
    assert (rows[1].backend, rows[1].model, rows[1].prompt_tokens, rows[1].completion_tokens) == (
        "local",
        "smol",
        12,
        3,
    )
    assert all(m.conversation_id == cid and m.created_at.utcoffset() == timedelta(0) for m in rows)
    assert repo.get_conversation(alice, cid).updated_at > before


def test_an_exchange_is_the_message_then_its_empty_streaming_reply(repo: Repository, alice: int) -> None:
    cid = repo.create_conversation(alice)
    before = repo.get_conversation(alice, cid).updated_at
    time.sleep(0.002)
    question, reply = repo.add_exchange(alice, cid, "Bonjour", backend="vllm", model="llama")
    rows = repo.messages(alice, cid)
    assert [(m.id, m.role, m.content, m.status) for m in rows] == [
        (question, "user", "Bonjour", "complete"),
        (reply, "assistant", "", "streaming"),
    ]
    assert (rows[1].backend, rows[1].model) == ("vllm", "llama")
    assert repo.get_conversation(alice, cid).updated_at > before


def test_an_exchange_in_someone_else_s_conversation_writes_nothing(repo: Repository, alice: int) -> None:
    bob = repo.ensure_user("bob")
    cid = repo.create_conversation(alice)
    with pytest.raises(NotFound):
        repo.add_exchange(bob, cid, "hi", backend="vllm", model="llama")
    assert repo.messages(alice, cid) == []


def test_add_message_rejects_unknown_status(repo: Repository, alice: int) -> None:
    cid = repo.create_conversation(alice)
    with pytest.raises(ValueError):
        repo.add_message(alice, cid, "assistant", "", status="done")


def test_checkpoint_updates_content_status_and_tokens(repo: Repository, alice: int) -> None:
    cid = repo.create_conversation(alice)
    mid = repo.add_message(alice, cid, "assistant", "", status="streaming")
    repo.checkpoint_message(alice, mid, "Hel", status="streaming")
    repo.checkpoint_message(alice, mid, "Hello", status="streaming", prompt_tokens=40)
    (row,) = repo.messages(alice, cid)
    assert (row.content, row.status, row.prompt_tokens, row.completion_tokens) == (
        "Hello",
        "streaming",
        40,
        None,
    )
    repo.checkpoint_message(alice, mid, "Hello world", status="complete", completion_tokens=2)
    (row,) = repo.messages(alice, cid)
    assert (row.content, row.status, row.prompt_tokens, row.completion_tokens) == (
        "Hello world",
        "complete",
        40,
        2,
    )
    assert row.updated_at >= row.created_at
    with pytest.raises(ValueError):
        repo.checkpoint_message(alice, mid, "x", status="bogus")
    with pytest.raises(NotFound):
        repo.checkpoint_message(alice, mid + 1000, "x", status="complete")


def test_checkpoint_keeps_search_index_in_step(repo: Repository, alice: int) -> None:
    cid = repo.create_conversation(alice)
    mid = repo.add_message(alice, cid, "assistant", "draft platypus", status="streaming")
    repo.checkpoint_message(alice, mid, "final wombat", status="complete")
    assert repo.search(alice, "platypus") == []
    assert [h.message_id for h in repo.search(alice, "wombat")] == [mid]


def test_delete_messages_from(repo: Repository, alice: int, db: Database) -> None:
    cid = repo.create_conversation(alice)
    other = repo.create_conversation(alice)
    ids = [repo.add_message(alice, cid, "user" if i % 2 == 0 else "assistant", f"m{i}") for i in range(6)]
    kept_elsewhere = repo.add_message(alice, other, "user", "untouched")
    assert repo.delete_messages_from(alice, cid, ids[3]) == 3
    assert [m.id for m in repo.messages(alice, cid)] == ids[:3]
    assert [m.id for m in repo.messages(alice, other)] == [kept_elsewhere]
    with pytest.raises(NotFound):  # the message belongs to another conversation
        repo.delete_messages_from(alice, cid, kept_elsewhere)
    with pytest.raises(NotFound):
        repo.delete_messages_from(alice, cid, ids[4])  # already deleted
    new_id = repo.add_message(alice, cid, "assistant", "regenerated")
    assert new_id > ids[-1], "ids of deleted messages must not be handed out again"


def test_mark_streaming_interrupted(repo: Repository, alice: int) -> None:
    cid = repo.create_conversation(alice)
    done = repo.add_message(alice, cid, "user", "q")
    crashed = repo.add_message(alice, cid, "assistant", "partial", status="streaming")
    time.sleep(0.6)
    live = repo.add_message(alice, cid, "assistant", "still going", status="streaming")
    assert repo.mark_streaming_interrupted(stale_after=3600) == 0  # nothing that old
    assert repo.mark_streaming_interrupted(stale_after=0.3) == 1  # only the one that stopped
    statuses = {m.id: m.status for m in repo.messages(alice, cid)}
    assert statuses == {done: "complete", crashed: "interrupted", live: "streaming"}
    assert repo.mark_streaming_interrupted() == 1
    assert repo.messages(alice, cid)[-1].status == "interrupted"
    assert repo.mark_streaming_interrupted() == 0


def test_a_running_sweeper_marks_a_reply_once_its_writer_stops_beating(repo: Repository, alice: int) -> None:
    # A server restarted within the stale time of a kill found the reply fresh at start-up, and
    # nothing marked it until the next restart.
    cid = repo.create_conversation(alice)
    killed = repo.add_message(alice, cid, "assistant", "partial", status="streaming")
    heartbeat = Heartbeat(repo, beat_s=0.05, stale_after_s=2.0)
    marked: list[int] = []
    reported = threading.Event()
    try:
        assert heartbeat.sweep() == 0  # at start-up: fresh
        with heartbeat.alive(repo.add_message(alice, cid, "assistant", "live", status="streaming")):
            heartbeat.keep_sweeping(lambda n: (marked.append(n), reported.set()), every_s=0.05)
            assert reported.wait(30)
            statuses = {m.id: m.status for m in repo.messages(alice, cid)}
    finally:
        heartbeat.close()
    assert marked == [1]
    assert statuses[killed] == "interrupted"
    assert sorted(statuses.values()) == ["interrupted", "streaming"], "the live reply was marked"


def test_delete_conversation_cascades(repo: Repository, alice: int, db: Database) -> None:
    cid = repo.create_conversation(alice)
    keep = repo.create_conversation(alice)
    repo.add_message(alice, cid, "user", "zanzibar question")
    repo.add_message(alice, cid, "assistant", "zanzibar answer")
    repo.add_message(alice, keep, "user", "zanzibar elsewhere")
    repo.delete_conversation(alice, cid)
    assert _count_messages(db, cid) == 0
    assert [h.conversation_id for h in repo.search(alice, "zanzibar")] == [keep]
    with pytest.raises(NotFound):
        repo.messages(alice, cid)


def test_concurrent_writers_and_readers(repo: Repository, alice: int) -> None:
    cids = [repo.create_conversation(alice) for _ in range(4)]
    errors: list[BaseException] = []

    def stream(cid: str) -> None:
        try:
            mid = repo.add_message(alice, cid, "assistant", "", status="streaming")
            for i in range(40):
                repo.checkpoint_message(alice, mid, "tok " * i, status="streaming")
                repo.list_conversations(alice, limit=10)
            repo.checkpoint_message(alice, mid, "done", status="complete")
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=stream, args=(cid,)) for cid in cids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(repo.messages(alice, cid)[0].content == "done" for cid in cids)


# ownership --------------------------------------------------------------------------------------


def test_other_users_ids_are_not_found(repo: Repository, alice: int, bob: int) -> None:
    cid = repo.create_conversation(alice, title="private")
    mid = repo.add_message(alice, cid, "user", "secret kumquat")
    repo.store_document("ab" * 32, "a.pdf", "en", ["page one"])
    calls = [
        lambda: repo.get_conversation(bob, cid),
        lambda: repo.rename_conversation(bob, cid, "mine now"),
        lambda: repo.replace_title(bob, cid, "private", "mine now"),
        lambda: repo.update_conversation(bob, cid, model="x"),
        lambda: repo.update_conversation(bob, cid),
        lambda: repo.delete_conversation(bob, cid),
        lambda: repo.messages(bob, cid),
        lambda: repo.add_message(bob, cid, "user", "intrusion"),
        lambda: repo.checkpoint_message(bob, mid, "overwritten", status="complete"),
        lambda: repo.delete_messages_from(bob, cid, mid),
        lambda: repo.attach_document(bob, cid, "ab" * 32),
        lambda: repo.conversation_documents(bob, cid),
    ]
    for call in calls:
        with pytest.raises(NotFound) as foreign:
            call()
        assert "another" not in str(foreign.value) and "owner" not in str(foreign.value)
    assert repo.list_conversations(bob) == []
    assert repo.search(bob, "kumquat") == []
    # Same message for a foreign id as for a missing one: nothing to learn from it.
    with pytest.raises(NotFound) as missing:
        repo.get_conversation(bob, "f" * 32)
    with pytest.raises(NotFound) as foreign:
        repo.get_conversation(bob, cid)
    assert str(missing.value) == str(foreign.value)
    # Alice's data is untouched by all of the above.
    row = repo.get_conversation(alice, cid)
    assert row.title == "private" and row.model == ""
    assert [(m.id, m.content) for m in repo.messages(alice, cid)] == [(mid, "secret kumquat")]


# search -----------------------------------------------------------------------------------------


def test_search_finds_own_messages_with_snippet(repo: Repository, alice: int) -> None:
    cid = repo.create_conversation(alice, title="Recipes")
    other = repo.create_conversation(alice, title="Travel")
    mid = repo.add_message(alice, cid, "user", "How long should I bake sourdough bread at high altitude?")
    repo.add_message(alice, other, "user", "Is the bread in Lisbon good?")
    hits = repo.search(alice, "sourdough bread")
    assert [(h.conversation_id, h.message_id, h.title) for h in hits] == [(cid, mid, "Recipes")]
    assert "sourdough" in hits[0].snippet
    assert {h.conversation_id for h in repo.search(alice, "BREAD")} == {cid, other}
    assert len(repo.search(alice, "bread", limit=1)) == 1


def test_search_matches_word_prefixes(repo: Repository, alice: int) -> None:
    cid = repo.create_conversation(alice, title="Tales")
    repo.add_message(alice, cid, "assistant", "The dragon slept in its cave.")
    assert [h.conversation_id for h in repo.search(alice, "drag")] == [cid]
    assert repo.search(alice, "ragon") == []  # a prefix, not any substring


def test_search_lists_newest_first(repo: Repository, alice: int) -> None:
    old = repo.create_conversation(alice, title="old")
    new = repo.create_conversation(alice, title="new")
    first = repo.add_message(alice, old, "user", "capybara facts")
    second = repo.add_message(alice, new, "user", "more capybara facts")
    third = repo.add_message(alice, old, "assistant", "capybara answer")
    assert [h.message_id for h in repo.search(alice, "capybara")] == [third, second, first]
    assert [h.title for h in repo.search(alice, "capybara facts")] == ["new", "old"]


def test_search_handles_accents_and_non_latin(repo: Repository, alice: int) -> None:
    cid = repo.create_conversation(alice)
    repo.add_message(alice, cid, "user", "Ich möchte eine Zusammenfassung, s'il vous plaît")
    repo.add_message(alice, cid, "user", "नमस्ते दुनिया")
    assert len(repo.search(alice, "möchte")) == 1
    assert len(repo.search(alice, "नमस्ते")) == 1


NASTY_QUERIES = [
    '"foo',
    'foo"',
    '"',
    '""',
    "AND",
    "OR",
    "NOT",
    "NEAR",
    "NEAR(foo bar",
    "*",
    "foo*",
    "-",
    "-foo",
    "foo -bar",
    "(",
    ")",
    "^foo",
    "content:foo",
    "body:foo",
    "a:b:c",
    "' OR 1=1 --",
    "%",
    "_",
    "\\",
    "{foo}",
    "foo + bar",
    ":",
    "   ",
    "",
    "🦙 emoji",
    "foo\x00bar",
    " ".join(["word"] * 200),
]


@pytest.mark.parametrize("query", NASTY_QUERIES)
def test_search_survives_hostile_queries(repo: Repository, alice: int, query: str) -> None:
    cid = repo.create_conversation(alice)
    repo.add_message(alice, cid, "user", "foo bar AND word content")
    hits = repo.search(alice, query)
    assert isinstance(hits, list)
    assert all(h.conversation_id == cid for h in hits)


def test_search_quoted_term_still_matches(repo: Repository, alice: int) -> None:
    cid = repo.create_conversation(alice)
    mid = repo.add_message(alice, cid, "user", "foo and bar")
    assert [h.message_id for h in repo.search(alice, '"foo')] == [mid]
    assert [h.message_id for h in repo.search(alice, "AND")] == [mid]  # a word, not an operator
    # "-" is no NOT operator here either: every word is simply required.
    assert [h.message_id for h in repo.search(alice, "foo -bar")] == [mid]


# documents --------------------------------------------------------------------------------------

SHA = "0f" * 32


def test_store_document_once(repo: Repository) -> None:
    assert not repo.has_document(SHA)
    repo.store_document(SHA, "manual.pdf", "en", ["alpha page", "beta page", ""])
    repo.store_document(SHA, "renamed.pdf", "de", ["different"])  # same hash: ignored
    assert repo.has_document(SHA)
    assert repo.document_pages(SHA) == ["alpha page", "beta page", ""]
    assert repo.document_pages("ee" * 32) == []
    with pytest.raises(ValueError):
        repo.store_document("not a hash!", "x.pdf", "en", ["x"])


def test_search_document_ranks_pages(repo: Repository) -> None:
    pages = [
        "Introduction to shells.",
        "Redirection: the shell redirects input and output. Redirection operators.",
        "Arithmetic expansion.",
        "A brief note on redirection.",
    ]
    repo.store_document(SHA, "bash.pdf", "en", pages)
    repo.store_document("ab" * 32, "other.pdf", "en", ["redirection redirection redirection"])
    hits = repo.search_document(SHA, "how does redirection work?")
    assert [page_no for page_no, _ in hits] == [2, 4]
    assert hits[0][1] == pages[1]
    assert repo.search_document(SHA, "arithmetic OR nonsense", limit=1) == [(3, pages[2])]
    for query in NASTY_QUERIES:
        assert isinstance(repo.search_document(SHA, query), list)


def test_attach_documents(repo: Repository, alice: int) -> None:
    cid = repo.create_conversation(alice)
    repo.store_document(SHA, "a.pdf", "en", ["one"])
    repo.store_document("ab" * 32, "b.pdf", "en", ["two"])
    repo.attach_document(alice, cid, SHA)
    repo.attach_document(alice, cid, "ab" * 32)
    repo.attach_document(alice, cid, SHA)  # idempotent
    assert repo.conversation_documents(alice, cid) == [SHA, "ab" * 32]
    repo.add_message(alice, cid, "user", "what do they say?")
    state = repo.turn_state(alice, cid)
    assert state.documents == [SHA, "ab" * 32] and state.conversation.id == cid
    assert [m.content for m in state.messages] == ["what do they say?"]
    with pytest.raises(NotFound):
        repo.attach_document(alice, cid, "cd" * 32)
    repo.delete_conversation(alice, cid)
    assert repo.has_document(SHA), "documents outlive the conversations that used them"


def test_summary_and_chunk_caches(repo: Repository) -> None:
    repo.store_document(SHA, "a.pdf", "en", ["one"])
    assert repo.cached_summary("k1") is None
    repo.put_summary("k1", SHA, "short summary", {"strategy": "single", "chunks": 1})
    assert repo.cached_summary("k1") == "short summary"
    assert repo.cached_summary_meta("k1") == {"strategy": "single", "chunks": 1}
    repo.put_summary("k1", SHA, "better summary", {"strategy": "map-reduce"})
    assert repo.cached_summary("k1") == "better summary"
    assert repo.chunk_result("c1") is None
    repo.put_chunk_result("c1", SHA, "chunk notes")
    repo.put_chunk_result("c1", SHA, "chunk notes v2")
    assert repo.chunk_result("c1") == "chunk notes v2"
    with pytest.raises(NotFound):
        repo.put_summary("k2", "ee" * 32, "orphan", {})
    with pytest.raises(NotFound):
        repo.put_chunk_result("c2", "ee" * 32, "orphan")
