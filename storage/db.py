"""Engine and session handling for SQLite (the default) and PostgreSQL (shared by app replicas)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import platformdirs
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

ENV_DB_URL = "LLAMADESK_DB"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Applied on every new SQLite connection: the pool opens connections lazily and per thread.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",  # readers never block the streaming writer
    "PRAGMA foreign_keys=ON",  # SQLite ships with FK enforcement (and so ON DELETE CASCADE) off
    "PRAGMA busy_timeout=10000",  # wait for a concurrent writer instead of failing at once
    "PRAGMA synchronous=NORMAL",  # durable across app crashes in WAL mode; fsync only at checkpoints
)
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
# Any constant works; it only has to be the same in every replica.
_PG_MIGRATION_LOCK = 7_316_512_001


def default_url() -> str:
    """LLAMADESK_DB if set, else the SQLite file in the per-user data directory (created here)."""
    override = os.environ.get(ENV_DB_URL, "").strip()
    if override:
        return override
    data_dir = Path(platformdirs.user_data_dir("llamadesk"))
    data_dir.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    data_dir.chmod(PRIVATE_DIR)  # also one made before llamadesk kept it private
    return f"sqlite:///{data_dir / 'llamadesk.db'}"


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic config built in code, so that no alembic.ini has to be shipped or found."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation treats % specially; percent-encoded passwords need doubling.
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _ensure_private_sqlite_file(url: str) -> None:
    """The database's folder (when made here) 0700, and the file with its WAL and index 0600.

    Under the usual umask SQLite would create a 0644 file: password hashes and every chat readable
    by each local account. SQLite gives its -wal and -shm files the mode of the main file.
    """
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE))
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if part.stat().st_mode & 0o077:
                part.chmod(PRIVATE_FILE)


def _create_engine(url: str) -> Engine:
    if make_url(url).get_backend_name() == "sqlite":
        _ensure_private_sqlite_file(url)
        engine = create_engine(url)
        event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    # Replicas outlive database restarts and idle timeouts; test a pooled connection before use.
    return create_engine(url, pool_pre_ping=True)


class Database:
    """One engine per process; call upgrade() once at startup before using a Repository."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = _create_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session inside one transaction: committed on normal exit, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A bare connection inside one transaction, for the prebuilt statements of a chat turn.

        It skips the session's own bookkeeping, which a few fixed statements do not need.
        """
        with self.engine.begin() as connection:
            yield connection

    def upgrade(self, revision: str = "head") -> None:
        """Apply the Alembic migrations up to ``revision`` (idempotent)."""
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Serialises replicas that start together; released when this transaction ends.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            command.upgrade(alembic_config(connection=conn), revision)

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({make_url(self.url).render_as_string(hide_password=True)!r})"
