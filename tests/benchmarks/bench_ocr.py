"""OCR of scanned pages: character error rate per language on clean 300-dpi scans, and pages/s."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from app.documents import extract_pdf
from tests.benchmarks.common import Row, markdown_table
from tests.ocr_scans import SAMPLES, cer, scan

LATIN_TARGET = 0.05  # the target for Latin script
THROUGHPUT_PAGES = 6


def _language_rows(folder: Path) -> list[Row]:
    rows = []
    for lang in SAMPLES:
        doc = extract_pdf(scan(folder / f"{lang}.pdf", lang))
        rate = cer(doc.pages[0], SAMPLES[lang].text)
        latin = lang in ("en", "de")
        rows.append(
            Row(
                "ocr",
                f"character error rate, {lang}",
                rate,
                "ratio",
                target=f"<= {LATIN_TARGET}" if latin else "",
                met=rate <= LATIN_TARGET if latin else None,
                note=f"Tesseract's mean word confidence {doc.ocr_confidence[1]:.0f}%",
            )
        )
    return rows


def _throughput(folder: Path) -> Row:
    path = scan(folder / "pages.pdf", "de", copies=THROUGHPUT_PAGES)
    started = time.perf_counter()
    doc = extract_pdf(path)
    elapsed = time.perf_counter() - started
    if len(doc.ocr_confidence) != THROUGHPUT_PAGES:
        raise RuntimeError(f"OCR read {len(doc.ocr_confidence)} of {THROUGHPUT_PAGES} pages")
    return Row(
        "ocr",
        "scanned pages/s (German, no language chosen)",
        THROUGHPUT_PAGES / elapsed,
        "pages/s",
        note=f"{THROUGHPUT_PAGES} A4 pages, 300 dpi, 6 Latin packs, script found on first pages, all cores",
    )


def run() -> list[Row]:
    with tempfile.TemporaryDirectory() as folder:
        return [*_language_rows(Path(folder)), _throughput(Path(folder))]


if __name__ == "__main__":
    print(markdown_table(run()))
