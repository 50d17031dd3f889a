"""Two accounts on a `serve --auth` server in its own process, and signed-in HTTP clients for them."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from app.users import add_user
from storage.db import Database
from storage.repo import Repository
from tests.reliability.conftest import ServeProcess, free_port, launch, stop_process

PASSWORD = {"alice": "alice-password-1", "bob": "bob-password-22"}


def add_accounts(db_url: str) -> dict[str, int]:
    with Database(db_url) as db:
        db.upgrade()
        repo = Repository(db)
        return {name: add_user(repo, name, password) for name, password in PASSWORD.items()}


@contextmanager
def security_server(tmp_path: Path, **config: Any) -> Iterator[ServeProcess]:
    """The server on a fresh SQLite file holding alice and bob (unless ``db_url`` is given)."""
    db_url = config.pop("db_url", None) or f"sqlite:///{tmp_path / 'llamadesk.db'}"
    if "skip_accounts" not in config:
        add_accounts(db_url)
    config.pop("skip_accounts", None)
    port = free_port()
    config_file = tmp_path / f"server-{port}.json"
    config_file.write_text(json.dumps({"db_url": db_url, "port": port, **config}), encoding="utf-8")
    command = [sys.executable, "-m", "tests.reliability.security_server", str(config_file)]
    server = launch(command, port, tmp_path / f"server-{port}.log", "the security test server")
    try:
        yield server
    finally:
        stop_process(server.proc)


def login(url: str, user: str, password: str | None = None, **client: Any) -> httpx.Client:
    """An HTTP client signed in as ``user`` (the sign-in must succeed)."""
    session = httpx.Client(base_url=url, timeout=30, **client)
    answer = session.post("login", data={"username": user, "password": password or PASSWORD[user]})
    assert answer.status_code == 200, f"sign-in as {user} failed: {answer.status_code} {answer.text}"
    return session


def signed_in(session: httpx.Client) -> bool:
    """Whether the server takes this client's cookie as a live sign-in."""
    return session.get("gradio_api/login_check").status_code == 200


def upload(session: httpx.Client, path: Path) -> str:
    """Upload through Gradio's upload route; the server-side path."""
    with path.open("rb") as fh:
        answer = session.post("gradio_api/upload", files={"files": (path.name, fh, "application/pdf")})
    assert answer.status_code == 200, f"upload failed: {answer.status_code} {answer.text}"
    (server_path,) = answer.json()
    return str(server_path)


def call(session: httpx.Client, endpoint: str, data: list[Any]) -> tuple[str, str]:
    """A named endpoint over Gradio's HTTP API: (last event name, its data), or ("refused", status)."""
    answer = session.post(f"gradio_api/call/{endpoint}", json={"data": data})
    if answer.status_code != 200:
        return "refused", str(answer.status_code)
    event_id = answer.json()["event_id"]
    event, payload = "", ""
    with session.stream("GET", f"gradio_api/call/{endpoint}/{event_id}", timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                payload = line.split(":", 1)[1].strip()
    return event, payload


def file_data(path: str) -> dict[str, Any]:
    return {"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": Path(path).name}
