"""OCR of scanned PDF pages with the real Tesseract: accuracy per language, mixed files, limits, absence."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PIL import ImageFilter

from app.documents import DocumentError, ExtractionCancelled, Limits, extract_pdf
from tests import pdfs
from tests.ocr_scans import SAMPLES, cer, scan


@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_scanned_page_is_read_within_the_error_bound(tmp_path: Path, lang: str) -> None:
    doc = extract_pdf(scan(tmp_path / f"{lang}.pdf", lang))
    rate = cer(doc.pages[0], SAMPLES[lang].text)
    assert rate <= SAMPLES[lang].max_cer, (rate, doc.pages[0])
    assert doc.language == lang
    assert 80 <= doc.ocr_confidence[1] <= 100
    assert doc.warnings[0].startswith("page 1 read by OCR (Tesseract, ")


def test_chosen_latin_language_narrows_the_packs(tmp_path: Path) -> None:
    doc = extract_pdf(scan(tmp_path / "de.pdf", "de"), ocr_language="de")
    assert "(Tesseract, deu+eng)" in doc.warnings[0]
    assert cer(doc.pages[0], SAMPLES["de"].text) <= 0.05


def test_script_detection_overrides_a_latin_choice(tmp_path: Path) -> None:
    """A Thai scan summarized into English is still read with the Thai pack."""
    doc = extract_pdf(scan(tmp_path / "th.pdf", "th"), ocr_language="en")
    assert "(Tesseract, tha)" in doc.warnings[0]


def test_a_page_in_another_script_is_detected_again(tmp_path: Path) -> None:
    """Later pages first assume the script of earlier ones; a Thai page after Latin ones is still Thai."""
    de, th = SAMPLES["de"], SAMPLES["th"]
    path = pdfs.scanned_text_pdf(
        tmp_path / "two.pdf", [de.text, de.text, de.text, th.text], [de.font] * 3 + [th.font]
    )
    doc = extract_pdf(path)
    assert cer(doc.pages[3], th.text) <= th.max_cer, doc.pages[3]
    assert all(cer(page, de.text) <= de.max_cer for page in doc.pages[:3])
    assert "tha" in doc.warnings[0] and "eng+deu" in doc.warnings[0]


def test_mixed_pdf_keeps_its_text_pages(tmp_path: Path) -> None:
    path = pdfs.mixed_scanned_pdf(tmp_path / "mixed.pdf", n_pages=4, scanned=(2, 3))
    heard: list[tuple[int, int]] = []
    with_ocr = extract_pdf(path, ocr_progress=lambda done, total: heard.append((done, total)))
    text_layer_only = extract_pdf(path, run_ocr=False)
    assert [with_ocr.pages[i] for i in (0, 3)] == [text_layer_only.pages[i] for i in (0, 3)]
    assert text_layer_only.pages[1:3] == ["", ""]
    assert with_ocr.pages[1].startswith("Scanned page 2") and with_ocr.pages[2].startswith("Scanned page 3")
    assert set(with_ocr.ocr_confidence) == {2, 3}
    assert sorted(heard) == [(1, 2), (2, 2)]


def test_a_blurred_page_is_flagged_for_low_confidence(tmp_path: Path) -> None:
    sharp = pdfs.scanned_text_image(SAMPLES["de"].text)
    path = pdfs.image_pages_pdf(tmp_path / "blur.pdf", [sharp, sharp.filter(ImageFilter.GaussianBlur(7))])
    doc = extract_pdf(path)
    assert doc.ocr_confidence[1] >= 80 > 60 > doc.ocr_confidence[2]
    assert "page 2: OCR confidence under 60%, check the text" in doc.warnings


def test_blank_page_still_has_no_text(tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as info:
        extract_pdf(pdfs.blank_pdf(tmp_path / "blank.pdf"))
    assert info.value.code == "no_text"


def test_missing_tesseract_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMADESK_TESSERACT", str(tmp_path / "no-such-tesseract"))
    with pytest.raises(DocumentError) as info:
        extract_pdf(scan(tmp_path / "en.pdf", "en"))
    assert info.value.code == "ocr_unavailable"
    assert "apt-get install tesseract-ocr" in str(info.value) and "not installed" in str(info.value)


def test_missing_tesseract_keeps_the_text_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMADESK_TESSERACT", str(tmp_path / "no-such-tesseract"))
    doc = extract_pdf(pdfs.mixed_scanned_pdf(tmp_path / "mixed.pdf", n_pages=3, scanned=(2,)))
    assert doc.pages[1] == "" and doc.pages[0] and doc.ocr_confidence == {}
    assert doc.warnings == ["page 2 has no text (scanned? no OCR: Tesseract is not installed)"]


def test_time_budget_stops_a_long_scan(tmp_path: Path) -> None:
    path = scan(tmp_path / "long.pdf", "de", copies=6)
    with pytest.raises(DocumentError) as info:
        extract_pdf(path, limits=Limits(time_budget_s=1.0))
    assert info.value.code == "limit"


def test_cancel_stops_ocr(tmp_path: Path) -> None:
    cancel = threading.Event()
    path = scan(tmp_path / "long.pdf", "en", copies=6)
    with pytest.raises(ExtractionCancelled):
        extract_pdf(path, cancel=cancel, ocr_progress=lambda done, total: cancel.set())
