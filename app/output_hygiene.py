"""What a model writes, made fit for a user: no internal markers, and no loops.

Prompts wrap documents in fence lines and mark pages as "[page N]"; a small model sometimes copies
them, or falls into repeating one paragraph until the token budget runs out. Both are caught here,
on the stream, so a loop is cut while it happens instead of after a thousand tokens.
"""

from __future__ import annotations

import re

# Fence lines ("<<<DOCUMENT 3f2a…>>>", "<<<END DOCUMENT …>>", also mangled), and the sentence that
# announces them in the prompt.
_FENCE_LINE = re.compile(r"[ \t]*<{2,}\s*(?:END\s+)?DOCUMENT\b[^\n>]*>*[ \t]*\n?", re.IGNORECASE)
_FENCE_PREAMBLE = re.compile(
    r"The text between the two DOCUMENT \w+ lines is the content of [^\n]*?(?:your task\.|\n|$)",
    re.IGNORECASE,
)
# The fence's id quoted on its own ('the text marked "DOCUMENT 3f2a…"'), with any quotes around it.
_FENCE_ID = re.compile(r"[\"'“”«»]?\b(?:END\s+)?DOCUMENT\s+[0-9a-f]{16}\b[\"'“”«»]?", re.IGNORECASE)
_PAGE_MARK = re.compile(r"[ \t]*\[page\s+\d+\][ \t]*\n?", re.IGNORECASE)
_FILE_NAME_LINE = re.compile(r"^[ \t]*File name:[^\n]*\n?", re.IGNORECASE | re.MULTILINE)
# Section labels "[pp. 3–5]" become ordinary citations "(pp. 3–5)", which are then checked.
_SECTION_LABEL = re.compile(r"\[((?:p|pp)\.\s*\d+(?:\s*[–—-]\s*\d+)?)\]")
_BLANK_RUNS = re.compile(r"\n{3,}")

MAX_MARKER_CHARS = 40  # "<<<END DOCUMENT 0123456789abcdef>>>" and a little more
LOOP_REPEATS = 3  # a sentence seen this often is a loop, not emphasis
LOOP_MIN_CHARS = 24  # shorter sentences ("Yes.", list bullets) repeat legitimately
PHRASE_WORDS = 7  # words; a phrase this long said a third time is circling, not emphasis
_WORD = re.compile(r"\w+")
_SENTENCE = re.compile(r"[^.!?。।\n]+[.!?。।]?")


def echoes_markers(text: str) -> bool:
    """Did the model copy the prompt's scaffolding (fence lines, their preamble, page marks)?"""
    return any(p.search(text) for p in (_FENCE_LINE, _FENCE_PREAMBLE, _FENCE_ID, _PAGE_MARK))


def strip_markers(text: str) -> str:
    for pattern in (_FENCE_PREAMBLE, _FENCE_LINE, _FENCE_ID, _PAGE_MARK, _FILE_NAME_LINE):
        text = pattern.sub("", text)
    text = _SECTION_LABEL.sub(r"(\1)", text)
    return _BLANK_RUNS.sub("\n\n", text).strip()


def visible_so_far(text: str) -> str:
    """`strip_markers` for text still being written: a marker not yet closed ("[pa", "<<<DOC") is held
    back until it can be recognised."""
    text = strip_markers(text)
    tail = text[-MAX_MARKER_CHARS:]
    opening = max(tail.rfind("["), tail.rfind("<"))
    if opening >= 0 and not any(close in tail[opening:] for close in "]>"):
        text = text[: len(text) - len(tail) + opening].rstrip()
    return text


def loop_start(text: str) -> int | None:
    """Where a repetition loop begins in `text`, or None: the second copy of a sentence said three
    times, or the sentence that says a long phrase for the third time (a model circling one title
    or claim in ever new sentences)."""
    return _LoopScan().feed(text, final=True)


class _LoopScan:
    """`loop_start` over a growing text: each sentence is read once, when it is complete."""

    def __init__(self) -> None:
        self._seen: dict[str, list[int]] = {}
        self._phrases = PhraseCount()
        self._done = 0  # the text before this offset has been read, up to a sentence's end

    def feed(self, text: str, final: bool = False) -> int | None:
        """The loop's start in `text`, which extends the text fed before; the last sentence is
        read only when something follows it (it may still grow), or when `final`."""
        for match in _SENTENCE.finditer(text, self._done):
            if match.end() == len(text) and not final:
                break
            self._done = match.end()
            if self._phrases.add(match.group(0)):
                return match.start()
            sentence = " ".join(match.group(0).lower().split())
            if len(sentence) < LOOP_MIN_CHARS:
                continue
            starts = self._seen.setdefault(sentence, [])
            starts.append(match.start())
            if len(starts) >= LOOP_REPEATS:
                return starts[1]
        return None


def without_repeats(texts: list[str]) -> list[str]:
    """The texts in order, less each sentence that would say a long phrase a third time: parts written
    apart (a summary's sections) can repeat one another though no single part loops."""
    phrases = PhraseCount()
    return ["".join(m.group(0) for m in _SENTENCE.finditer(t) if not phrases.add(m.group(0))) for t in texts]


class PhraseCount:
    """Counts the PHRASE_WORDS-word phrases of the sentences added; a sentence that would bring one of
    them to LOOP_REPEATS is refused (not counted) and `add` says so."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, ...], int] = {}

    def add(self, sentence: str) -> bool:
        words = _WORD.findall(sentence.lower())
        grams = {tuple(words[i : i + PHRASE_WORDS]) for i in range(len(words) - PHRASE_WORDS + 1)}
        if any(self._counts.get(g, 0) + 1 >= LOOP_REPEATS for g in grams):
            return True
        for gram in grams:
            self._counts[gram] = self._counts.get(gram, 0) + 1
        return False


class LoopGuard:
    """Feed it the growing text of one reply; it says where to cut once the reply loops.

    Checks run when the text has grown by a sentence's worth, and read only the sentences completed
    since the last one: a reply costs one pass over its text, not one per check.
    """

    def __init__(self, every_chars: int = LOOP_MIN_CHARS) -> None:
        self.every_chars = every_chars
        self._checked = 0
        self._scan = _LoopScan()

    def cut(self, text: str) -> int | None:
        if len(text) - self._checked < self.every_chars:
            return None
        self._checked = len(text)
        return self._scan.feed(text)
