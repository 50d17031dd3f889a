"""A throwaway PostgreSQL server for the test run, from Debian's postgresql binaries.

Use it as a pytest plugin (``pytest_plugins = ["tests.pg"]`` in tests/conftest.py, or
``pytest -p tests.pg``): once collection has selected a test parametrized with "postgresql", it
starts a private server on a free loopback port in a temporary directory and exports
LLAMADESK_TEST_PG_URL, which the storage and load tests read when they run; the server and its
directory are removed when the run ends. When LLAMADESK_TEST_PG_URL
is already set, that server is used as is. When no server can be started, the run says why in
its header and summary, and the PostgreSQL variants of the tests skip.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import pytest

PG_ENV = "LLAMADESK_TEST_PG_URL"
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
PG_USER = "postgres"  # Debian's service account; initdb refuses to run as root
START_TIMEOUT_S = 60


@dataclass
class _State:
    url: str | None = None
    reason: str = ""
    data_dir: Path | None = None
    bin_dir: Path | None = None
    run_as: list[str] = field(default_factory=list)


_state = _State()


def find_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian keeps one per major version)."""
    candidates = [p for p in Path("/").glob(PG_BIN_GLOB.lstrip("/")) if (p / "initdb").is_file()]
    return max(candidates, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, default=None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as_prefix() -> list[str] | None:
    """Root must hand the server to an unprivileged account; None when there is none."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return None
    runuser = shutil.which("runuser")
    return [runuser, "-u", PG_USER, "--"] if runuser else None


def _run(cmd: list[str]) -> None:
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False, cwd=tempfile.gettempdir()
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{Path(cmd[len(_state.run_as)]).name} failed: {' | '.join(tail)}")


def _init_and_start(bin_dir: Path, run_as: list[str]) -> str:
    data_dir = Path(tempfile.mkdtemp(prefix="llamadesk-pg-"))
    _state.data_dir = data_dir
    if run_as:
        account = pwd.getpwnam(PG_USER)
        os.chown(data_dir, account.pw_uid, account.pw_gid)
    pgdata = data_dir / "data"
    _run([*run_as, str(bin_dir / "initdb"), "-D", str(pgdata), "-U", PG_USER, "-A", "trust", "-E", "UTF8"])
    port = _free_port()
    # A scratch server: durability is irrelevant, speed and isolation are not.
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data_dir} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    log = data_dir / "server.log"
    _run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-o", options, "-l", str(log), "-w", "start"])
    return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}/postgres"


def start_if_available() -> str | None:
    """Start a private server once and export its URL; None (with ``skip_reason()``) when impossible."""
    if _state.url or _state.reason:
        return _state.url
    preset = os.environ.get(PG_ENV, "").strip()
    if preset:
        _state.url = preset
        return preset
    bin_dir = find_bin_dir()
    run_as = _run_as_prefix()
    if bin_dir is None:
        _state.reason = "PostgreSQL is not installed (apt-get install postgresql; `make test` does it)"
        return None
    if run_as is None:
        _state.reason = f"running as root, but there is no {PG_USER!r} account or runuser to start PostgreSQL"
        return None
    _state.bin_dir, _state.run_as = bin_dir, run_as
    try:
        url = _init_and_start(bin_dir, run_as)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        _state.reason = f"could not start PostgreSQL from {bin_dir}: {exc}"
        stop()
        return None
    atexit.register(stop)
    _state.url = url
    os.environ[PG_ENV] = url
    return url


def stop() -> None:
    """Stop the server this module started, and remove its directory (idempotent)."""
    data_dir, _state.data_dir = _state.data_dir, None
    if data_dir is None:
        return
    if _state.bin_dir is not None and (data_dir / "data" / "postmaster.pid").exists():
        pg_ctl = str(_state.bin_dir / "pg_ctl")
        cmd = [*_state.run_as, pg_ctl, "-D", str(data_dir / "data"), "-m", "immediate", "-w", "stop"]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(cmd, capture_output=True, timeout=START_TIMEOUT_S, check=False)
    shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def scratch_database(base_url: str) -> Iterator[str]:
    """A fresh, empty database on the server of ``base_url``, dropped afterwards."""
    from sqlalchemy import create_engine, make_url, text

    url = make_url(base_url)
    name = f"llamadesk_rel_{uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def skip_reason() -> str:
    return _state.reason


def status_line() -> str:
    if _state.url:
        where = "a private server" if _state.data_dir else f"{PG_ENV}"
        return f"PostgreSQL: storage and load tests also run on PostgreSQL ({where})"
    if _state.reason:
        return f"PostgreSQL: SKIPPED, {_state.reason}"
    return "PostgreSQL: not needed by the selected tests"


# -- pytest plugin hooks --------------------------------------------------------------------


def wants_postgres(item: pytest.Item) -> bool:
    """A test parametrized with "postgresql" (the storage and load tests' database fixtures)."""
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "postgresql" in callspec.params.values()


def pytest_collection_finish(session: pytest.Session) -> None:
    # After deselection: started only when a selected test needs it, so other runs pay nothing.
    # Only the controlling process starts a server; xdist workers inherit the exported URL.
    if not hasattr(session.config, "workerinput") and any(wants_postgres(item) for item in session.items):
        start_if_available()


def pytest_unconfigure(config: pytest.Config) -> None:
    stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(status_line(), yellow=not _state.url, green=bool(_state.url))
