"""SQLite specifics: connection pragmas, FTS5 index upkeep, file placement."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.db import ENV_DB_URL, Database, default_url
from storage.repo import Repository, _search_document_like, _search_like


def _scalar(db: Database, sql: str) -> object:
    with db.engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def _fts_rowids(db: Database, word: str) -> list[int]:
    # MATCH reads the index itself, so stale entries for deleted rows would show up here.
    sql = "SELECT rowid FROM messages_fts WHERE messages_fts MATCH :w ORDER BY rowid"
    with db.engine.connect() as conn:
        return [int(r) for r in conn.execute(text(sql), {"w": word}).scalars()]


def test_every_connection_gets_the_pragmas(sqlite_db: Database) -> None:
    assert _scalar(sqlite_db, "PRAGMA journal_mode") == "wal"
    assert _scalar(sqlite_db, "PRAGMA foreign_keys") == 1
    assert _scalar(sqlite_db, "PRAGMA busy_timeout") == 10000
    assert _scalar(sqlite_db, "PRAGMA synchronous") == 1  # NORMAL
    with sqlite_db.engine.connect() as first, sqlite_db.engine.connect() as second:
        for conn in (first, second):
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_integrity_after_a_workload(sqlite_db: Database) -> None:
    repo = Repository(sqlite_db)
    alice = repo.ensure_user("alice")
    for c in range(5):
        cid = repo.create_conversation(alice, title=f"c{c}")
        mid = repo.add_message(alice, cid, "assistant", "", status="streaming")
        for i in range(10):
            repo.checkpoint_message(alice, mid, f"token{i} " * i, status="streaming")
        if c % 2:
            repo.delete_conversation(alice, cid)
    repo.store_document("ab" * 32, "a.pdf", "en", ["p1", "p2"])
    assert _scalar(sqlite_db, "PRAGMA integrity_check") == "ok"
    assert _scalar(sqlite_db, "PRAGMA foreign_key_check") is None
    with sqlite_db.engine.begin() as conn:  # raises if an FTS index disagrees with its content
        conn.execute(text("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)"))
        conn.execute(text("INSERT INTO document_pages_fts(document_pages_fts) VALUES ('integrity-check')"))


def test_fts_rows_follow_deletes(sqlite_db: Database) -> None:
    repo = Repository(sqlite_db)
    alice = repo.ensure_user("alice")
    cid = repo.create_conversation(alice)
    ids = [repo.add_message(alice, cid, "user", f"quokka {i}") for i in range(4)]
    assert _fts_rowids(sqlite_db, "quokka") == ids
    repo.delete_messages_from(alice, cid, ids[2])
    assert _fts_rowids(sqlite_db, "quokka") == ids[:2]
    repo.delete_conversation(alice, cid)
    assert _fts_rowids(sqlite_db, "quokka") == []
    assert repo.search(alice, "quokka") == []


def test_removing_a_user_clears_their_index_entries(sqlite_db: Database) -> None:
    repo = Repository(sqlite_db)
    uid = repo.ensure_user("zoe")
    repo.add_message(uid, repo.create_conversation(uid), "user", "axolotl")
    repo.remove_user("zoe")
    assert _fts_rowids(sqlite_db, "axolotl") == []


def test_document_pages_index_follows_deletes(sqlite_db: Database) -> None:
    repo = Repository(sqlite_db)
    repo.store_document("ab" * 32, "a.pdf", "en", ["narwhal one", "narwhal two"])
    repo.store_document("cd" * 32, "b.pdf", "en", ["narwhal three"])
    with sqlite_db.engine.begin() as conn:
        conn.execute(text("DELETE FROM documents WHERE sha256 = :s"), {"s": "ab" * 32})
    assert repo.document_pages("ab" * 32) == []
    assert repo.search_document("ab" * 32, "narwhal") == []
    assert repo.search_document("cd" * 32, "narwhal") == [(1, "narwhal three")]
    sql = "SELECT count(*) FROM document_pages_fts WHERE document_pages_fts MATCH 'narwhal'"
    assert _scalar(sqlite_db, sql) == 1


def test_parent_directory_is_created(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "app.db"
    with Database(f"sqlite:///{target}") as db:
        db.upgrade()
        assert db.current_revision() is not None and db.current_revision() >= "0003"
    assert target.exists()


def test_default_url_prefers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DB_URL, "postgresql+psycopg://u:p@db/llamadesk")
    assert default_url() == "postgresql+psycopg://u:p@db/llamadesk"


def test_default_url_is_in_the_user_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_DB_URL, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # macOS/Windows-style fallbacks stay in tmp
    url = default_url()
    assert url.startswith("sqlite:///") and url.endswith("/llamadesk.db")
    path = Path(url.removeprefix("sqlite:///"))
    assert path.parent.is_dir()
    if sys.platform.startswith("linux"):
        assert path == tmp_path / "xdg" / "llamadesk" / "llamadesk.db"


def test_portable_fallback_search(sqlite_db: Database) -> None:
    """The LIKE-based paths used for databases other than SQLite and PostgreSQL."""
    repo = Repository(sqlite_db)
    alice = repo.ensure_user("alice")
    bob = repo.ensure_user("bob")
    cid = repo.create_conversation(alice, title="Pets")
    first = repo.add_message(alice, cid, "user", "My 100% loyal Dog, and a cat")
    second = repo.add_message(alice, cid, "assistant", "Dogs and cats, both loyal")
    repo.store_document("ab" * 32, "a.pdf", "en", ["cats only", "dog and cat", "nothing"])
    with sqlite_db.session() as s:
        hits = _search_like(s, alice, ["dog", "LOYAL"], 50)
        assert [h.message_id for h in hits] == [second, first]
        assert "Dog" in hits[1].snippet
        assert [h.message_id for h in _search_like(s, alice, ["100%"], 50)] == [first]
        assert _search_like(s, alice, ["10_%"], 50) == []  # wildcards are escaped
        assert _search_like(s, bob, ["dog"], 50) == []
        pages = _search_document_like(s, "ab" * 32, ["dog", "cat"], 2)
        assert pages == [(2, "dog and cat"), (1, "cats only")]
