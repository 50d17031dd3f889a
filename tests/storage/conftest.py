"""Fixtures: every repository test runs on a real SQLite file, and on PostgreSQL when
LLAMADESK_TEST_PG_URL names a server (each test then gets its own scratch database there)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.db import Database
from storage.repo import Repository
from tests import pg

PG_ENV = pg.PG_ENV
PG_SKIP_REASON = (
    f"PostgreSQL run skipped: set {PG_ENV}=postgresql+psycopg://USER:PW@HOST/DB "
    "(a role allowed to CREATE DATABASE; each test uses a scratch database it drops afterwards)"
)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "llamadesk.db")
        return
    base = os.environ.get(PG_ENV, "").strip()
    if not base:
        pytest.fail(PG_SKIP_REASON)
    with pg.scratch_database(base) as url:
        yield url


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
