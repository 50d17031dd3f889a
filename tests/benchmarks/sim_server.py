"""A load simulator that speaks the parts of vLLM's OpenAI API that llamadesk uses.

Every request streams its tokens at a fixed rate on its own schedule, with no limit
on parallel requests, so it measures the client side alone: whatever slows 32
streams below 32 × one stream is the app's doing, not the "model's".

Served: GET /health, GET /v1/models (with max_model_len), GET /metrics (frozen work
counters), POST /tokenize (vLLM shape), POST /v1/chat/completions (streaming or not,
usage with include_usage).
A word is a token. Test hooks in the last user message: SIM_503 answers HTTP 503;
after a few tokens, SIM_ERROR sends an SSE error event, SIM_DROP cuts the
connection and SIM_STALL goes quiet for a minute.

Run: python -m tests.benchmarks.sim_server --port 0 --rate 50 --tokens 200
It prints "LISTENING <port>" on stdout once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_ID = "sim/llama-3.1-405b-instruct-fp8"
FAIL_AFTER_TOKENS = 3
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SimConfig:
    rate: float = 50.0  # tokens per second, per stream
    tokens: int = 200  # reply length unless max_tokens is smaller
    max_model_len: int = 131072
    model: str = MODEL_ID


@dataclass
class Request:
    method: str
    path: str
    body: dict[str, Any]


def count_words(text: str) -> int:
    return len(text.split())


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    # Like a chat template: a little framing per message, plus the generation prompt.
    return sum(count_words(str(m.get("content", ""))) + 4 for m in messages) + 2


# ---- HTTP plumbing ------------------------------------------------------------


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    length = int(headers.get("content-length", "0"))
    raw = await reader.readexactly(length) if length else b""
    body = json.loads(raw) if raw else {}
    return Request(method, path.split("?", 1)[0], body if isinstance(body, dict) else {})


def response_bytes(status: int, payload: object) -> bytes:
    """A JSON response, or a plain-text one for a str payload (Prometheus metrics)."""
    body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    kind = "text/plain" if isinstance(payload, str) else "application/json"
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 503: "Service Unavailable"}.get(
        status, "Error"
    )
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


def chunk_bytes(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def sse(payload: object) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return chunk_bytes(f"data: {text}\n\n".encode())


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
)


# ---- the API ------------------------------------------------------------------


class Simulator:
    def __init__(self, config: SimConfig) -> None:
        self.config = config

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while (request := await read_request(reader)) is not None:
                if not await self.route(request, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def route(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must not be reused."""
        routes: dict[tuple[str, str], Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]] = {
            ("POST", "/v1/chat/completions"): self.chat,
        }
        handler = routes.get((request.method, request.path))
        if handler is not None:
            return await handler(request, writer)
        status, payload = self.simple(request)
        writer.write(response_bytes(status, payload))
        await writer.drain()
        return True

    def simple(self, request: Request) -> tuple[int, object]:
        cfg = self.config
        if (request.method, request.path) == ("GET", "/health"):
            return 200, {}
        if (request.method, request.path) == ("GET", "/v1/models"):
            entry = {
                "id": cfg.model,
                "object": "model",
                "owned_by": "sim",
                "max_model_len": cfg.max_model_len,
            }
            return 200, {"object": "list", "data": [entry]}
        if (request.method, request.path) == ("GET", "/metrics"):
            # vLLM's work counters, frozen: during SIM_STALL the "engine" makes no progress.
            counters = ("prompt", "generation")
            return 200, "".join(f'vllm:{kind}_tokens_total{{engine="0"}} 0.0\n' for kind in counters)
        if (request.method, request.path) == ("POST", "/tokenize"):
            body = request.body
            count = (
                prompt_tokens(body["messages"]) if "messages" in body else count_words(body.get("prompt", ""))
            )
            return 200, {"count": count, "max_model_len": cfg.max_model_len, "tokens": list(range(count))}
        return 404, {"detail": "Not Found"}

    def overflow(self, prompt: int, max_tokens: int) -> str | None:
        """vLLM's two refusals: the prompt alone, or prompt plus max_tokens, too long."""
        window = self.config.max_model_len
        if prompt >= window:
            return (
                f"This model's maximum context length is {window} tokens. However, you requested "
                f"{prompt} tokens in the messages, Please reduce the length of the messages."
            )
        if prompt + max_tokens > window:
            return (
                f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's maximum "
                f"context length is {window} tokens and your request has {prompt} input tokens "
                f"({max_tokens} > {window} - {prompt})."
            )
        return None

    async def chat(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        body = request.body
        messages = body.get("messages") or []
        prompt = prompt_tokens(messages)
        max_tokens = int(body.get("max_tokens") or self.config.tokens)
        refusal = self.overflow(prompt, max_tokens)
        if refusal:
            error = {"message": refusal, "type": "BadRequestError", "param": None, "code": 400}
            writer.write(response_bytes(400, {"error": error}))
            await writer.drain()
            return True
        n = min(max_tokens, self.config.tokens)
        last = str(messages[-1].get("content", "")) if messages else ""
        if "SIM_503" in last:
            writer.write(response_bytes(503, {"error": {"message": "engine is restarting", "code": 503}}))
            await writer.drain()
            return True
        if not body.get("stream"):
            writer.write(response_bytes(200, self.completion(n, prompt)))
            await writer.drain()
            return True
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await self.stream(writer, n, prompt, usage, last)

    def completion(self, n: int, prompt: int) -> dict[str, Any]:
        return {
            "id": "chatcmpl-sim",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.config.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.text(n)},
                    "finish_reason": "length" if n < self.config.tokens else "stop",
                }
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n},
        }

    @staticmethod
    def text(n: int) -> str:
        return "".join(f" tok{i}" for i in range(n))

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-sim",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.config.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    @staticmethod
    async def fail(writer: asyncio.StreamWriter, last: str) -> bool | None:
        """Act out the failure the message asks for; None when it asks for none."""
        if "SIM_DROP" in last:
            writer.transport.abort()
            return False
        if "SIM_ERROR" in last:
            error = {"message": "simulated engine failure", "type": "InternalServerError", "code": 500}
            writer.write(sse({"error": error}) + sse("[DONE]") + b"0\r\n\r\n")
            await writer.drain()
            return True
        if "SIM_STALL" in last:
            await asyncio.sleep(60)
            writer.transport.abort()
            return False
        return None

    async def stream(self, writer: asyncio.StreamWriter, n: int, prompt: int, usage: bool, last: str) -> bool:
        writer.write(STREAM_HEAD + sse(self.chunk({"role": "assistant", "content": ""})))
        start = time.monotonic()
        for i in range(n):
            # Absolute schedule, so per-token overheads do not add up into a slower rate.
            delay = start + (i + 1) / self.config.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if i == FAIL_AFTER_TOKENS and (keep := await self.fail(writer, last)) is not None:
                return keep
            writer.write(sse(self.chunk({"content": f" tok{i}"})))
            await writer.drain()
        finish = "length" if n < self.config.tokens else "stop"
        tail = sse(self.chunk({}, finish))
        if usage:
            tail += sse(
                {
                    **self.chunk({}),
                    "choices": [],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n},
                }
            )
        writer.write(tail + sse("[DONE]") + b"0\r\n\r\n")
        await writer.drain()
        return True


async def serve(config: SimConfig, host: str, port: int) -> None:
    server = await asyncio.start_server(Simulator(config).handle, host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"LISTENING {bound}", flush=True)
    async with server:
        await server.serve_forever()


# ---- process helpers for tests and benchmarks ------------------------------------


def start_simulator(
    rate: float, tokens: int, max_model_len: int = 131072, timeout_s: float = 30.0
) -> tuple[str, subprocess.Popen[str]]:
    """Start the simulator in a subprocess; returns its base URL and the process."""
    cmd = [
        sys.executable,
        "-m",
        "tests.benchmarks.sim_server",
        "--port",
        "0",
        "--rate",
        str(rate),
        "--tokens",
        str(tokens),
        "--max-model-len",
        str(max_model_len),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("LISTENING "):
            return f"http://127.0.0.1:{int(line.split()[1])}", proc
        if not line and proc.poll() is not None:
            break
    stop_simulator(proc)
    raise RuntimeError("the simulator did not start")


def stop_simulator(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=SimConfig.rate)
    parser.add_argument("--tokens", type=int, default=SimConfig.tokens)
    parser.add_argument("--max-model-len", type=int, default=SimConfig.max_model_len)
    args = parser.parse_args(argv)
    config = SimConfig(rate=args.rate, tokens=args.tokens, max_model_len=args.max_model_len)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, args.host, args.port))


if __name__ == "__main__":
    main()
