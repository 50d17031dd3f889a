"""A conversation's reply-language policy: "auto" (follow the user) or a pinned language code.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a table with constraints in place.
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("reply_language", sa.String(16), nullable=False, server_default="auto"))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("reply_language")
