"""Documents stored once by sha256, their pages, attachments, and the summary caches.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

# A self-contained FTS5 table (it keeps its own copy of the text): document_pages has a composite
# key, and an external-content index keyed on its implicit rowid would break after VACUUM renumbers
# rows. sha256 is indexed so that "this document only" is a posting-list lookup, not a scan.
SQLITE_FTS = (
    """CREATE VIRTUAL TABLE document_pages_fts USING fts5(
        sha256, page_no UNINDEXED, body, tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER document_pages_fts_ai AFTER INSERT ON document_pages BEGIN
        INSERT INTO document_pages_fts(sha256, page_no, body) VALUES (new.sha256, new.page_no, new.text);
    END""",
    """CREATE TRIGGER document_pages_fts_ad AFTER DELETE ON document_pages BEGIN
        DELETE FROM document_pages_fts
        WHERE document_pages_fts MATCH 'sha256:"' || replace(old.sha256, '"', '""') || '"'
          AND page_no = old.page_no;
    END""",
    """CREATE TRIGGER document_pages_fts_au AFTER UPDATE ON document_pages BEGIN
        DELETE FROM document_pages_fts
        WHERE document_pages_fts MATCH 'sha256:"' || replace(old.sha256, '"', '""') || '"'
          AND page_no = old.page_no;
        INSERT INTO document_pages_fts(sha256, page_no, body) VALUES (new.sha256, new.page_no, new.text);
    END""",
)
SQLITE_FTS_DROP = (
    "DROP TRIGGER IF EXISTS document_pages_fts_au",
    "DROP TRIGGER IF EXISTS document_pages_fts_ad",
    "DROP TRIGGER IF EXISTS document_pages_fts_ai",
    "DROP TABLE IF EXISTS document_pages_fts",
)


def _document_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["sha256"], ["documents.sha256"], name=f"fk_{table}_sha256_documents", ondelete="CASCADE"
    )


def _create_documents() -> None:
    op.create_table(
        "documents",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("chars", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_documents"),
    )
    op.create_table(
        "document_pages",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("page_no", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", "page_no", name="pk_document_pages"),
        _document_fk("document_pages"),
    )


def _create_attachments() -> None:
    op.create_table(
        "conversation_documents",
        sa.Column("conversation_id", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "sha256", name="pk_conversation_documents"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_conversation_documents_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        _document_fk("conversation_documents"),
    )
    op.create_index("ix_conversation_documents_sha256", "conversation_documents", ["sha256"])


def _create_caches() -> None:
    op.create_table(
        "summaries",
        sa.Column("cache_key", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("meta_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cache_key", name="pk_summaries"),
        _document_fk("summaries"),
    )
    op.create_index("ix_summaries_sha256", "summaries", ["sha256"])
    op.create_table(
        "chunk_results",
        sa.Column("cache_key", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cache_key", name="pk_chunk_results"),
        _document_fk("chunk_results"),
    )
    op.create_index("ix_chunk_results_sha256", "chunk_results", ["sha256"])


def upgrade() -> None:
    _create_documents()
    _create_attachments()
    _create_caches()
    if op.get_context().dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        for statement in SQLITE_FTS_DROP:
            op.execute(statement)
    for table in ("chunk_results", "summaries", "conversation_documents", "document_pages", "documents"):
        op.drop_table(table)
