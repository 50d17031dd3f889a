"""Scans of known text in four of Llama's languages, and the character error rate of what OCR read back."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from tests import pdfs


class Sample(NamedTuple):
    text: str
    font: Path
    max_cer: float  # the bound the tests hold OCR to on a clean 300-dpi scan


# Latin script: the target. Devanagari and Thai: measured 0.3% and 1.8% here; bound with margin.
SAMPLES = {
    "en": Sample(pdfs.ENGLISH_SCAN_PAGE, pdfs.NOTO_SANS, 0.05),
    "de": Sample(pdfs.GERMAN_PAGES[0], pdfs.NOTO_SANS, 0.05),
    "hi": Sample(" ".join(pdfs.HINDI_SENTENCES), pdfs.NOTO_DEVANAGARI, 0.05),
    "th": Sample("\n".join(pdfs.THAI_SENTENCES), pdfs.NOTO_THAI, 0.08),
}


def scan(path: Path, lang: str, copies: int = 1) -> Path:
    sample = SAMPLES[lang]
    return pdfs.scanned_text_pdf(path, [sample.text] * copies, sample.font)


def _normal(text: str) -> str:
    """Whitespace runs count as one space: line breaks differ between the page and its OCR, not the text."""
    return " ".join(text.split())


def _edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(read: str, truth: str) -> float:
    """Character error rate: edits from the truth to what was read, per character of the truth."""
    read, truth = _normal(read), _normal(truth)
    return _edit_distance(read, truth) / max(1, len(truth))
