"""Tesseract OCR for PDF pages without a text layer: render the page, find its script, read it.

Tesseract runs as a local program, one process per page, so OCR works offline and pages are read in
parallel. Each process gets one OpenMP thread: on a busy machine Tesseract's default threads spin
against each other (measured here: 1.6 s for a page with one thread, 42 s with two).

The language packs are chosen per page from the script Tesseract's orientation-and-script detection
sees, narrowed to the user's language when they chose a Latin-script one: one pack reads Devanagari
or Thai far better than a mix of all eight, and every extra pack costs time.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image

DPI = 300  # Tesseract is trained on body text at about 300 dpi
MAX_PIXELS = 40_000_000  # a poster-sized page is rendered at a lower resolution instead of exhausting memory
LOW_CONFIDENCE = 60.0  # mean word confidence (0-100) under which a page's text deserves a warning

# Llama 3.1's languages → Tesseract's packs (Debian: tesseract-ocr-<pack>).
PACKS = {
    "en": "eng",
    "de": "deu",
    "fr": "fra",
    "it": "ita",
    "pt": "por",
    "hi": "hin",
    "es": "spa",
    "th": "tha",
}
_LATIN = ("eng", "deu", "fra", "ita", "por", "spa")
_BY_SCRIPT = {"Devanagari": ("hin",), "Thai": ("tha",)}
_SCRIPT_LINE = re.compile(r"^Script:\s*(\S+)", re.MULTILINE)


class OcrUnavailable(RuntimeError):
    """Tesseract or a language pack it needs is not installed (app.documents makes it a DocumentError)."""


class OcrFailed(RuntimeError):
    """Tesseract ran but could not read this page."""


@dataclass(frozen=True)
class OcrPage:
    text: str
    confidence: float | None  # Tesseract's mean word confidence, 0-100; None when it found no words
    languages: str  # the packs it used, e.g. "deu+eng"
    script: str | None  # as detected (e.g. "Latin", "Thai") or hinted; None when too little text to tell


@dataclass(frozen=True)
class Tesseract:
    command: str
    packs: frozenset[str]  # installed language packs


def confidence_summary(scores: Mapping[int, float]) -> tuple[float, int]:
    """The mean of pages' confidences (page → 0-100, not empty) and the page with the lowest one."""
    return sum(scores.values()) / len(scores), min(scores, key=scores.__getitem__)


def tesseract_command() -> str | None:
    """The Tesseract binary: LLAMADESK_TESSERACT when set, else `tesseract` on PATH."""
    configured = os.environ.get("LLAMADESK_TESSERACT")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("tesseract")


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, check=False)


@functools.cache
def _installed_packs(command: str) -> frozenset[str]:
    try:
        listing = _run([command, "--list-langs"], timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise OcrUnavailable(f"{command} does not run: {exc}") from exc
    # The first line names the tessdata folder; each further line is a pack.
    return frozenset(line.strip() for line in listing.stdout.splitlines()[1:] if line.strip())


def find_tesseract() -> Tesseract:
    """The Tesseract to use; OcrUnavailable when it is missing or has none of the Llama languages' packs."""
    command = tesseract_command()
    if command is None:
        raise OcrUnavailable("Tesseract is not installed")
    packs = _installed_packs(command)
    if not packs & set(PACKS.values()):
        raise OcrUnavailable("Tesseract has none of the language packs")
    return Tesseract(command, packs)


def packs_for(script: str | None, language: str | None, installed: frozenset[str]) -> str:
    """The `-l` argument for a page in `script`, preferring the user's `language` within Latin script."""
    if script in _BY_SCRIPT:
        wanted: tuple[str, ...] = _BY_SCRIPT[script]
    elif PACKS.get(language or "") in _LATIN:
        wanted = tuple(dict.fromkeys((PACKS[language or ""], "eng")))
    else:
        wanted = _LATIN
    usable = [pack for pack in wanted if pack in installed]
    if not usable:
        names = ", ".join(f"tesseract-ocr-{pack}" for pack in wanted)
        raise OcrUnavailable(f"the language pack for {script or 'Latin'} script is missing ({names})")
    return "+".join(usable)


def render_page(pdf: pdfium.PdfDocument, index: int) -> Image.Image:
    """The page as a greyscale picture at DPI, or less when that would exceed MAX_PIXELS."""
    page = pdf[index]
    width, height = page.get_size()  # in points
    scale = min(DPI / 72, (MAX_PIXELS / max(1.0, width * height)) ** 0.5)
    return page.render(scale=scale, grayscale=True).to_pil()


def _script(tesseract: Tesseract, image_path: Path, timeout: float) -> str | None:
    """Tesseract's script detection (--psm 0); None when the page has too little text to tell."""
    if "osd" not in tesseract.packs:
        return None
    found = _SCRIPT_LINE.search(_run([tesseract.command, str(image_path), "-", "--psm", "0"], timeout).stdout)
    return found.group(1) if found else None  # "Too few characters": the Latin set is the safe guess


def _mean_confidence(tsv: str) -> float | None:
    """Mean confidence of the recognised words in Tesseract's TSV output (-1 marks non-word rows)."""
    scores = []
    for row in tsv.splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) != 12 or not cells[11].strip():
            continue
        try:
            confidence = float(cells[10])
        except ValueError:
            continue
        if confidence >= 0:
            scores.append(confidence)
    return sum(scores) / len(scores) if scores else None


def read_image(
    tesseract: Tesseract,
    image: Image.Image,
    language: str | None,
    timeout: float,
    script_hint: str | None = None,
) -> OcrPage:
    """OCR one page picture. Each Tesseract run is bounded by `timeout` s (subprocess.TimeoutExpired).

    `script_hint` (the script of the document's earlier pages) skips script detection, which costs
    about as much as reading the page, unless the page then reads with low confidence.
    """
    with tempfile.TemporaryDirectory(prefix="llamadesk-ocr-") as folder:
        image_path = Path(folder) / "page.png"
        image.save(image_path)
        hinted = None
        if script_hint is not None:
            hinted = _recognise(tesseract, image_path, script_hint, language, timeout)
            if hinted.confidence is not None and hinted.confidence >= LOW_CONFIDENCE:
                return hinted
        script = _script(tesseract, image_path, timeout)
        if hinted is not None and script in (None, script_hint):
            return hinted
        return _recognise(tesseract, image_path, script, language, timeout)


def _recognise(
    tesseract: Tesseract, image_path: Path, script: str | None, language: str | None, timeout: float
) -> OcrPage:
    languages = packs_for(script, language, tesseract.packs)
    out = image_path.with_name("page")
    done = _run([tesseract.command, str(image_path), str(out), "-l", languages, "txt", "tsv"], timeout)
    if done.returncode != 0:
        raise OcrFailed(" ".join(done.stderr.split())[-200:])
    text = out.with_suffix(".txt").read_text(encoding="utf-8", errors="replace")
    tsv = out.with_suffix(".tsv").read_text(encoding="utf-8", errors="replace")
    return OcrPage(text=text, confidence=_mean_confidence(tsv), languages=languages, script=script)
