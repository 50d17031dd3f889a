"""Conversation titles: a clean excerpt at once, a model-written title later, never two alike.

A title is what a user scans the sidebar by, so it must read as a name: no instruction text the
model echoed, no word cut in half, and no two conversations with the same one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime

from app.text import strip_control_chars
from storage.repo import Repository

TITLE_MAX_CHARS = 60
UNTITLED = "New chat"
ELLIPSIS = "…"
# A model title sharing this many consecutive words with the instruction is an echo of it.
ECHO_WORDS = 3

_LIST_MARK = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_LABEL = re.compile(r"^(title|titel|titre|titolo|título|शीर्षक|ชื่อเรื่อง)\s*[:：]\s*", re.IGNORECASE)
_MARKUP = re.compile(r"[*_`#>\[\]]+")
_JUNK = " \"'“”«»*#`.:;,-–—"


def excerpt_title(text: str, limit: int = TITLE_MAX_CHARS) -> str:
    """The first line of `text` as a title: markup dropped, cut at a word with an ellipsis."""
    line = next((ln for ln in strip_control_chars(text or "").splitlines() if ln.strip()), "")
    line = " ".join(_MARKUP.sub(" ", _LIST_MARK.sub("", line)).split()).strip(_JUNK)
    return shorten(line, limit) or UNTITLED


def shorten(line: str, limit: int = TITLE_MAX_CHARS) -> str:
    """`line` within `limit` characters, ending at a whole word and marked as cut when it was."""
    if len(line) <= limit:
        return line
    head = line[: limit - 1]
    if not line[limit - 1].isspace() and " " in head:  # the cut falls inside a word: drop that word
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(_JUNK) + ELLIPSIS


def clean_model_title(raw: str, instruction: str) -> str:
    """The model's title as a plain name, or "" when it echoes the instruction or says nothing."""
    line = next((ln for ln in strip_control_chars(raw or "").splitlines() if ln.strip()), "")
    line = _LIST_MARK.sub("", line).strip(_JUNK)
    line = _LABEL.sub("", line).strip(_JUNK)
    line = " ".join(_MARKUP.sub(" ", line).split())
    if not line or echoes(line, instruction):
        return ""
    return shorten(line)


def echoes(title: str, instruction: str) -> bool:
    """True when `title` repeats a run of ECHO_WORDS words of `instruction` (or all of a shorter one)."""
    said, asked = _words(title), _words(instruction)
    if not said or not asked:
        return False
    size = min(ECHO_WORDS, len(said))
    runs = {tuple(asked[i : i + size]) for i in range(len(asked) - size + 1)}
    return any(tuple(said[i : i + size]) in runs for i in range(len(said) - size + 1))


def distinct_title(title: str, taken: Iterable[str], created: datetime) -> str:
    """`title`, told apart from the user's other titles by its time (and a number if still taken)."""
    used = {t.casefold() for t in taken}
    if title.casefold() not in used:
        return title
    dated = f"{title} · {created:%d %b %H:%M}"
    candidate, n = dated, 2
    while candidate.casefold() in used:
        candidate, n = f"{dated} ({n})", n + 1
    return candidate


def unique_title(
    repo: Repository, user_id: int, title: str, created: datetime, conversation_id: str | None = None
) -> str:
    """`title` told apart from the titles of the user's other conversations."""
    others = [c.title for c in repo.list_conversations(user_id) if c.id != conversation_id]
    return distinct_title(title, others, created)


def _words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return re.findall(r"\w+", folded)
