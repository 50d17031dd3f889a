"""A scanned PDF uploaded in Chromium: the status says OCR is running, then the plan comes."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from backends.scripted import ScriptedBackend
from tests.e2e.test_summarize_browser import open_summarize_tab, status_text, summary_app
from tests.pdfs import GERMAN_PAGES, scanned_text_pdf
from tests.ui.conftest import Served

pytestmark = pytest.mark.browser
__all__ = ["summary_app"]  # the fixture, shared with the other Summarize tab tests

OCR_WITHIN_S = 180.0  # about 2-5 s a page on the shared 2-core machine


def test_a_scan_shows_ocr_progress_then_the_plan(
    page: Page, summary_app: tuple[Served, ScriptedBackend], tmp_path: Path
) -> None:
    served, backend = summary_app
    pdf = scanned_text_pdf(tmp_path / "scan.pdf", GERMAN_PAGES * 2)
    open_summarize_tab(page, served.url)
    page.locator("#pdf input[type=file]").set_input_files(str(pdf))
    page.locator("#summary-status").get_by_text("Running OCR on scanned pages: page").wait_for(
        timeout=OCR_WITHIN_S * 1000
    )
    page.locator("#summary-status").get_by_text("tokens,").wait_for(timeout=OCR_WITHIN_S * 1000)
    assert "4 scanned pages read by OCR: mean word confidence" in status_text(page), status_text(page)
    assert backend.requests == []
