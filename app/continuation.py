"""Joining a continued reply onto the text it continues.

Asked to continue, a chat model often starts over ("In a medieval…" again), repeats the last few
words, or starts without the space the cut-off text needs ("This dragon wasIn a…"). The joiner
holds back the new text until it can tell which, and passes on only what really continues.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Matching the reply's opening for this many characters means the model is starting over.
RESTART_CHARS = 24
# The longest tail of the old text that the new text may repeat and have dropped.
OVERLAP_CHARS = 200
MIN_OVERLAP_CHARS = 6
_NO_SPACE_BEFORE = ".,;:!?)]}’”…'\"-"


@dataclass
class ContinuationJoiner:
    prefix: str
    _held: str = ""
    _settled: bool = False
    _restart: bool = field(default=False, repr=False)

    def feed(self, text: str) -> str:
        """The part of `text` (and of what was held back) to append to the reply now."""
        if self._settled:
            return text
        self._held += text
        held = self._held.lstrip()
        start = self.prefix.lstrip()
        if not held:
            return ""
        if start.startswith(held) and len(held) < len(start):
            if len(held) >= RESTART_CHARS:
                self._restart = True
            return ""  # still retyping the opening, or too early to tell
        return self._settle(held, start)

    def flush(self) -> str:
        """At the end of the stream: whatever was held back that is not a retyped opening."""
        if self._settled:
            return ""
        held = self._held.lstrip()
        if not held or self.prefix.lstrip().startswith(held):
            return ""
        return self._settle(held, self.prefix.lstrip())

    def _settle(self, held: str, start: str) -> str:
        self._settled = True
        if self._restart or held.startswith(start):
            # The model retyped the opening: what follows the shared part is new.
            shared = _common_prefix(held, start)
            held = held[shared:] if shared >= RESTART_CHARS else held
            if held.startswith(start):
                held = held[len(start) :]
        held = held[_overlap(self.prefix, held) :]
        return _spaced(self.prefix, held)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _overlap(old: str, new: str) -> int:
    """Length of the longest tail of `old` that `new` begins with (0 below MIN_OVERLAP_CHARS)."""
    tail = old[-OVERLAP_CHARS:]
    for size in range(min(len(tail), len(new)), MIN_OVERLAP_CHARS - 1, -1):
        if new.startswith(tail[-size:]):
            return size
    return 0


def _spaced(old: str, new: str) -> str:
    if not old or not new or old[-1].isspace() or new[0].isspace() or new[0] in _NO_SPACE_BEFORE:
        return new
    return " " + new
