"""Text hygiene shared by every path that takes text in: chat messages, model output, documents."""

from __future__ import annotations

import re

# C0 and C1 controls except tab, newline and carriage return; soft hyphens, the BOM and non-characters.
# They break storage, JSON and terminals, and render as nothing useful.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\u00ad\ufeff\ufffe\uffff]")


def strip_control_chars(text: str) -> str:
    return _CONTROL.sub("", text)
