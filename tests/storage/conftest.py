"""Fixtures: every repository test runs on a real SQLite file, and on PostgreSQL when
LLAMADESK_TEST_PG_URL names a server (each test then gets its own scratch database there)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import create_engine, make_url, text

from storage.db import Database
from storage.repo import Repository

PG_ENV = "LLAMADESK_TEST_PG_URL"
PG_SKIP_REASON = (
    f"PostgreSQL run skipped: set {PG_ENV}=postgresql+psycopg://USER:PW@HOST/DB "
    "(a role allowed to CREATE DATABASE; each test uses a scratch database it drops afterwards)"
)


def scratch_postgres_url(base_url: str) -> Iterator[str]:
    """A fresh, empty database on the server of ``base_url``, dropped afterwards."""
    url = make_url(base_url)
    name = f"llamadesk_test_{uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "llamadesk.db")
        return
    base = os.environ.get(PG_ENV, "").strip()
    if not base:
        pytest.skip(PG_SKIP_REASON)
    yield from scratch_postgres_url(base)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.upgrade()
    yield database
    database.close()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    database = Database(sqlite_url(tmp_path / "llamadesk.db"))
    database.upgrade()
    yield database
    database.close()


@pytest.fixture
def repo(db: Database) -> Repository:
    return Repository(db)


@pytest.fixture
def alice(repo: Repository) -> int:
    return repo.ensure_user("alice")


@pytest.fixture
def bob(repo: Repository) -> int:
    return repo.ensure_user("bob")
