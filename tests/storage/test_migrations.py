"""Migrations: old databases upgrade in place, and the models agree with the migrated schema."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from storage.db import Database, alembic_config
from storage.models import Base, include_name
from storage.repo import Repository

HEAD = "0005_api_keys"
DOCUMENT_TABLES = {"documents", "document_pages", "conversation_documents", "summaries", "chunk_results"}


def _at_revision(db_url: str, revision: str) -> Database:
    db = Database(db_url)
    with db.engine.begin() as conn:
        command.upgrade(alembic_config(connection=conn), revision)
    return db


OLD_CID = "c0123456789abcdef0123456789abcde"
OLD_TIME = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _insert_0001_conversation(db: Database) -> None:
    """Raw SQL, as a 0001-era app would have written it (today's models may differ)."""
    statements = [
        "INSERT INTO users (id, username, created_at) VALUES (1, 'old', :now)",
        "INSERT INTO conversations (id, user_id, title, language, backend, model, created_at, updated_at) "
        "VALUES (:cid, 1, 'Old chat', 'de', 'local', 'smol', :now, :now)",
        "INSERT INTO messages (conversation_id, role, content, status, created_at, updated_at) "
        "VALUES (:cid, 'user', 'ancient pterodactyl', 'complete', :now, :now)",
    ]
    now = OLD_TIME.replace(tzinfo=None) if db.dialect == "sqlite" else OLD_TIME
    with db.engine.begin() as conn:
        for sql in statements:
            conn.execute(text(sql), {"now": now, "cid": OLD_CID})
    if db.dialect == "postgresql":  # explicit ids leave the sequence behind
        with db.engine.begin() as conn:
            conn.execute(text("SELECT setval('users_id_seq', (SELECT max(id) FROM users))"))


def test_upgrade_from_0001_keeps_data(db_url: str) -> None:
    old = _at_revision(db_url, "0001")
    assert old.current_revision() == "0001"
    assert not DOCUMENT_TABLES & set(inspect(old.engine).get_table_names())
    _insert_0001_conversation(old)
    old.close()

    db = Database(db_url)
    db.upgrade()
    assert db.current_revision() == HEAD
    repo = Repository(db)
    uid = repo.user_id("old")
    assert uid is not None
    cid = OLD_CID
    row = repo.get_conversation(uid, cid)
    assert (row.title, row.language, row.created_at) == ("Old chat", "de", OLD_TIME)
    assert row.reply_language == "auto", "0003 gives old conversations the auto policy"
    assert [m.content for m in repo.messages(uid, cid)] == ["ancient pterodactyl"]
    assert [h.conversation_id for h in repo.search(uid, "pterodactyl")] == [cid]
    # The new tables work alongside the old data.
    repo.store_document("ab" * 32, "x.pdf", "en", ["first page", "second page"])
    repo.attach_document(uid, cid, "ab" * 32)
    repo.put_summary("key", "ab" * 32, "summary", {"strategy": "single"})
    assert repo.conversation_documents(uid, cid) == ["ab" * 32]
    assert repo.search_document("ab" * 32, "second") == [(2, "second page")]
    assert repo.cached_summary("key") == "summary"
    db.close()


def test_upgrade_is_idempotent(db: Database) -> None:
    db.upgrade()
    db.upgrade()
    assert db.current_revision() == HEAD


def test_downgrade_to_base_and_back(db: Database) -> None:
    with db.engine.begin() as conn:
        command.downgrade(alembic_config(connection=conn), "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    db.upgrade()
    repo = Repository(db)
    uid = repo.ensure_user("again")
    repo.add_message(uid, repo.create_conversation(uid), "user", "phoenix")
    assert len(repo.search(uid, "phoenix")) == 1


def test_models_match_migrations(db: Database) -> None:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name, "compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
