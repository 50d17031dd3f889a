"""The CLI on scanned PDFs: a German scan summarized with page citations offline, and no Tesseract."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests import pdfs
from tests.ocr_scans import SAMPLES, cer
from tests.ui.test_cli import cli, one_line_error


def test_summarize_a_scanned_german_pdf(db_url: str, tmp_path: Path) -> None:
    path = pdfs.scanned_text_pdf(tmp_path / "scan.pdf", pdfs.GERMAN_PAGES * 2 + pdfs.GERMAN_PAGES[:1])
    result = cli("summarize", "--json", str(path), db=db_url)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["summary"].strip() and data["language"] == "de"
    assert data["document"]["pages"] == 5 and data["document"]["language"] == "de"
    assert set(data["document"]["ocr_confidence"]) == {"1", "2", "3", "4", "5"}
    assert all(first >= 1 and last <= 5 for first, last in (c["pages"] for c in data["citations"]))
    assert data["citations"]
    assert "[5/5] scanned pages read by OCR (Tesseract)" in result.stderr
    assert "pages 1–5 read by OCR (Tesseract, " in result.stderr


def test_extract_json_carries_the_confidence(db_url: str, tmp_path: Path) -> None:
    path = pdfs.scanned_text_pdf(tmp_path / "en.pdf", [SAMPLES["en"].text], SAMPLES["en"].font)
    result = cli("extract", "--json", str(path), db=db_url)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert cer(data["text"], SAMPLES["en"].text) <= SAMPLES["en"].max_cer
    assert 80 <= data["ocr_confidence"]["1"] <= 100


def test_without_tesseract_on_path_the_error_says_how_to_install(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tesseract = shutil.which("tesseract")
    assert tesseract, "the OCR tests need Debian's tesseract-ocr (make ocr)"
    path = pdfs.image_only_pdf(tmp_path / "scan.pdf")
    bare_path = os.pathsep.join(
        d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "tesseract").exists()
    )
    monkeypatch.setenv("PATH", bare_path)  # cli() hands this environment to the command
    monkeypatch.delenv("LLAMADESK_TESSERACT", raising=False)
    result = cli("extract", "--json", str(path), db=db_url)
    assert result.returncode == 2, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "ocr_unavailable"
    assert "apt-get install tesseract-ocr" in error["message"] and "not installed" in error["message"]
    one_line_error(result)
