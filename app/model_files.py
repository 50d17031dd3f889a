"""Getting a real model: a GGUF on disk, or one fetched from Hugging Face when online.

The app always starts on the embedded demo model, so nothing here is needed
to run; it is how a user moves to Llama 3.1 8B Instruct.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from app.config import BackendSpec
from app.registry import BackendRegistry
from backends.base import BackendError, Health

SUGGESTED_REPO = "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"
PREFERRED_QUANT = "Q4_K_M"
GGUF_MAGIC = b"GGUF"

Progress = Callable[[int, int, str], None]  # bytes done, bytes total, what


class ModelSourceError(ValueError):
    """A model file or repo cannot be used; the message says what to do instead."""


def check_gguf(path: str | Path) -> Path:
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelSourceError(f"no such file: {file}")
    with file.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise ModelSourceError(f"{file.name} is not a GGUF model file")
    return file.resolve()


def pick_gguf(files: list[str]) -> str:
    """The Q4_K_M file of a repo (a good laptop default), else its smallest-sounding GGUF."""
    ggufs = [f for f in files if f.lower().endswith(".gguf")]
    if not ggufs:
        raise ModelSourceError("the repository has no .gguf file")
    preferred = [f for f in ggufs if PREFERRED_QUANT.lower() in f.lower()]
    return sorted(preferred or ggufs)[0]


def download_gguf(repo_id: str, filename: str | None = None, progress: Progress | None = None) -> Path:
    """Fetch a GGUF with huggingface_hub, reporting bytes as they arrive."""
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id.strip()):
        raise ModelSourceError(f"not a Hugging Face repo id: {repo_id!r} (expected owner/name)")
    if not hub_reachable():
        raise ModelSourceError(f"Hugging Face is not reachable (offline?). {_KEEP_DEMO}")
    from huggingface_hub import HfApi, hf_hub_download

    try:
        name = filename or pick_gguf(HfApi().list_repo_files(repo_id.strip()))
        path = hf_hub_download(repo_id.strip(), name, tqdm_class=_progress_bar(progress, name))
    except ModelSourceError:
        raise
    except Exception as exc:  # hub, HTTP and disk errors come in many types; each means "not now"
        raise ModelSourceError(f"cannot download {repo_id}: {type(exc).__name__}. {_KEEP_DEMO}") from exc
    return Path(path)


_KEEP_DEMO = "You can keep using the demo model, or start llamadesk with --model PATH.gguf."


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """A quick connect to the hub, so that offline is said at once instead of after the client's retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname or "", url.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def _progress_bar(progress: Progress | None, name: str) -> Any:
    from tqdm.auto import tqdm

    class Reporter(tqdm):
        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            if progress is not None:
                progress(int(self.n), int(self.total or 0), name)
            return shown

    return Reporter


def register_local_model(backends: BackendRegistry, path: Path, progress: Progress | None = None) -> str:
    """Add a GGUF as a local backend, load it now (so the user sees the wait here), and return its name."""
    file = check_gguf(path)
    name = re.sub(r"[^a-z0-9]+", "-", file.stem.lower()).strip("-")[:40] or "local-model"
    size = file.stat().st_size
    if progress:
        progress(0, size, f"loading {file.name} ({size / 1024**3:.1f} GiB)")
    started = time.monotonic()
    backends.register(BackendSpec(name, "llamacpp", model=str(file)))
    try:
        health = backends.get(name).health()  # loads the weights
    except BackendError as exc:
        health = Health(False, str(exc))
    if not health.ok:
        raise ModelSourceError(health.detail)
    if progress:
        progress(size, size, f"loaded in {time.monotonic() - started:.1f} s")
    return name
