"""Files the server keeps for its users: one private folder per process, and who owns what in it.

Gradio keeps uploads (and serves files) from GRADIO_TEMP_DIR, by default a shared, world-readable
/tmp/gradio. llamadesk points it at a folder made by ``tempfile.mkdtemp`` (mode 0700, a name
no one can plant in advance), removed when the process exits. Summary downloads are written
under ``downloads/<user id>/`` inside it, so Gradio serves them in place and the folder says
whose they are; uploads are recorded with their owner as the upload route answers.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

GRADIO_TEMP_ENV = "GRADIO_TEMP_DIR"
DOWNLOADS = "downloads"
# Owners of session hashes, events and uploads are kept for this many entries each: old enough
# ones are long finished, and a server running for months must not grow without bound.
MAX_TRACKED = 100_000

_root: Path | None = None
_root_lock = threading.Lock()


def private_root() -> Path:
    """This process's private folder (created once), also set as Gradio's upload and cache folder."""
    global _root
    with _root_lock:
        if _root is None:
            parent = os.environ.get(GRADIO_TEMP_ENV) or None  # an operator's choice of disk is kept
            if parent:
                Path(parent).mkdir(parents=True, exist_ok=True, mode=0o700)
            _root = Path(tempfile.mkdtemp(prefix="llamadesk-", dir=parent)).resolve()
            os.environ[GRADIO_TEMP_ENV] = str(_root)
            atexit.register(shutil.rmtree, _root, True)
        return _root


def _private_dir(path: Path) -> Path:
    """mkdir 0700, refusing a symlink or a folder someone else owns in its place."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path) or info.st_uid != os.getuid():
        raise PermissionError(f"{path} is not a private folder")
    return path


def user_download_dir(user_id: int) -> Path:
    return _private_dir(_private_dir(private_root() / DOWNLOADS) / str(int(user_id)))


def write_private(folder: Path, name: str, content: str) -> Path:
    """Write a new file 0600 in a fresh folder under ``folder``; never follows or replaces a link."""
    target_dir = _private_dir(folder / secrets.token_hex(8))
    target = target_dir / Path(name).name
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(content)
    return target


def download_owner(path: Path) -> int | None:
    """The user id whose download folder holds ``path`` (resolved), or None."""
    try:
        relative = path.relative_to(private_root() / DOWNLOADS)
    except ValueError:
        return None
    head = relative.parts[0] if relative.parts else ""
    return int(head) if head.isdigit() and len(relative.parts) > 1 else None


class Owners:
    """Who owns each key (a session hash, an event id, an uploaded file), most recent last."""

    def __init__(self, limit: int = MAX_TRACKED) -> None:
        self._owners: OrderedDict[str, int] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def claim(self, key: str, user_id: int) -> bool:
        """Record ``user_id`` as the owner unless someone else is; True when the user owns it."""
        with self._lock:
            owner = self._owners.setdefault(key, user_id)
            self._owners.move_to_end(key)
            while len(self._owners) > self._limit:
                self._owners.popitem(last=False)
            return owner == user_id

    def owner(self, key: str) -> int | None:
        with self._lock:
            return self._owners.get(key)

    def owned_by(self, user_id: int) -> list[str]:
        with self._lock:
            return [key for key, owner in self._owners.items() if owner == user_id]

    def forget(self, key: str) -> None:
        with self._lock:
            self._owners.pop(key, None)


def upload_key(real: Path, user_id: int) -> str:
    # One file can be two users' upload (Gradio names uploads by content): one key per owner.
    return f"{real}\x00{user_id}"


def upload_usage(uploads: Owners, user_id: int) -> int:
    """Bytes of the user's uploads still on disk; files removed meanwhile are forgotten."""
    total = 0
    for key in uploads.owned_by(user_id):
        try:
            total += os.stat(key.split("\x00", 1)[0]).st_size
        except OSError:
            uploads.forget(key)
    return total


def remove_upload(path: str | Path) -> None:
    """Delete an upload once its text is stored: only files in the private folder, never a link."""
    target = Path(path)
    try:
        target.resolve().relative_to(private_root())
    except (OSError, ValueError):
        return
    if target.is_symlink() or not target.is_file():
        return
    target.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # Gradio makes one folder per upload; kept if it holds more
        target.parent.rmdir()
