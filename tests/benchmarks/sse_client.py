"""The app as the benchmarks see it: `llamadesk serve` in its own process, read over HTTP.

The client is Gradio's documented HTTP API: `POST /gradio_api/call/<api>`, then read its SSE.

gradio_client's stream iterator polls its job every millisecond, so on a 2-core machine the
client itself takes CPU from the model it is timing. This client blocks on the socket, as a
browser does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class StreamTiming:
    started: float
    first: float  # first non-empty output (0.0 when none came)
    last: float  # last output that changed
    ended: float  # the stream's `complete` event
    updates: int
    output: str


def call_streaming(
    client: httpx.Client, api: str, data: list[Any], session_hash: str | None = None
) -> StreamTiming:
    """Run one event of a streaming endpoint; raise on an `error` event.

    `session_hash` names the caller's session, as a browser tab and gradio_client do; without it
    every call is a session of its own, which Gradio sets up anew.
    """
    started = time.perf_counter()
    body: dict[str, Any] = {"data": data}
    if session_hash is not None:
        body["session_hash"] = session_hash
    response = client.post(f"/gradio_api/call/{api}", json=body)
    response.raise_for_status()
    event_id = response.json()["event_id"]
    first = last = 0.0
    updates = 0
    output = ""
    event = ""
    with client.stream("GET", f"/gradio_api/call/{api}/{event_id}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line[len("event:") :].strip()
            elif line.startswith("data:") and event in ("generating", "complete"):
                payload = json.loads(line[len("data:") :])
                value = payload[0] if payload else ""
                if value and value != output:
                    last = time.perf_counter()
                    first = first or last
                    updates += 1
                    output = value
            elif line.startswith("data:") and event == "error":
                raise RuntimeError(f"{api} failed: {line[len('data:') :].strip()}")
    return StreamTiming(started, first, last, time.perf_counter(), updates, output)


@contextmanager
def served_app(db_url: str, *args: str) -> Iterator[str]:
    """`llamadesk serve --db db_url *args` in its own process; yields its URL once it answers."""
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "LLAMADESK_CONFIG": "/nonexistent.toml"}
    cmd = ["serve", "--port", str(port), "--db", db_url, *args]
    server = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", *cmd], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/gradio_api/info", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("llamadesk serve did not start")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
