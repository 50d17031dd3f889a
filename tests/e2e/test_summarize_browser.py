"""The Summarize tab in Chromium: the plan on upload, signs of life while it runs, Cancel, clean output."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from backends.scripted import ScriptedBackend, replying
from tests.conftest import make_app
from tests.e2e.test_browser import screenshot
from tests.pdfs import long_pdf
from tests.ui.conftest import (
    Served,
    last_reply_settled,
    only_conversation,
    serving,
    stored_messages,
    wait_until,
)

pytestmark = pytest.mark.browser

# Words with markers a small model copies from its prompt; none may reach the page.
ECHOING_REPLY = " ".join(
    ["<<<DOCUMENT 0123456789abcdef>>>", "[page 2]"] + [f"Point{i:03d} of the report." for i in range(150)]
)
PLAN_WITHIN_S = 20.0  # the bash manual (87 pages) extracts in about 2 s here; the machine is shared


@pytest.fixture
def summary_app(db_url: str) -> Iterator[tuple[Served, ScriptedBackend]]:
    backend = ScriptedBackend(handler=replying(ECHOING_REPLY, delay_s=0.05), context_window=8192)
    app = make_app(db_url, backend)
    try:
        with serving(app) as served:
            yield served, backend
    finally:
        app.close()


def open_summarize_tab(page: Page, url: str) -> None:
    page.goto(url)
    page.locator("#message textarea").wait_for(state="visible")
    page.get_by_role("tab", name="Summarize a PDF").click()
    page.locator("#pdf").wait_for(state="visible")


def status_text(page: Page) -> str:
    return page.locator("#summary-status").inner_text()


def test_the_plan_shows_on_upload_and_the_run_streams_then_cancels(
    page: Page, summary_app: tuple[Served, ScriptedBackend], tmp_path: Path
) -> None:
    served, backend = summary_app
    pdf = long_pdf(tmp_path / "manual.pdf", 87)
    open_summarize_tab(page, served.url)

    started = time.monotonic()
    page.locator("#pdf input[type=file]").set_input_files(str(pdf))
    # A sign of life at once: pages being read, or already the plan when reading beat the first tick.
    page.locator("#summary-status").get_by_text(re.compile("Reading the document|tokens,")).wait_for()
    reading_after_s = time.monotonic() - started
    page.locator("#summary-status").get_by_text("tokens,").wait_for(timeout=PLAN_WITHIN_S * 1000)
    plan_after_s = time.monotonic() - started
    assert "chunks" in status_text(page) or "one pass" in status_text(page)
    assert backend.requests == [], "the plan is made before anything runs"

    page.locator("#summarize").click()
    page.locator("#summary-status").get_by_text("left").wait_for()  # tokens done of the plan, and an ETA
    page.wait_for_function("() => document.querySelector('#summary').innerText.includes('Point005')")
    first = page.locator("#summary").inner_text()
    page.wait_for_function(
        "(n) => document.querySelector('#summary').innerText.length > n", arg=len(first) + 20
    )
    shown = page.locator("#summary").inner_text()
    assert "<<<" not in shown and "DOCUMENT" not in shown and "[page" not in shown, shown
    # Progress belongs to the pane that runs the work: no overlay over the sidebar's conversations.
    assert page.locator("#conversations .eta-bar, #conversations .progress-text").count() == 0
    screenshot(page, tmp_path / "summary-running.png")

    page.locator("#cancel-summary").click()
    page.locator("#summary-status").get_by_text("Cancelled").wait_for()
    page.wait_for_timeout(1000)
    assert "Cancelled" in status_text(page), "no late update covers it"
    cid = only_conversation(served.app)
    wait_until(lambda: last_reply_settled(served.app, cid), 30, "the cancelled summary to be saved")
    assert stored_messages(served.app, cid)[-1].status == "interrupted"
    print(f"87-page PDF: pages counting {reading_after_s:.1f} s, plan {plan_after_s:.1f} s after the upload")


def test_closing_the_tab_cancels_the_run(
    chromium: Browser, summary_app: tuple[Served, ScriptedBackend], tmp_path: Path
) -> None:
    served, backend = summary_app
    pdf = long_pdf(tmp_path / "short.pdf", 3)
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    open_summarize_tab(page, served.url)
    page.locator("#pdf input[type=file]").set_input_files(str(pdf))
    page.locator("#summary-status").get_by_text("tokens,").wait_for()
    page.locator("#summarize").click()
    page.wait_for_function("() => document.querySelector('#summary').innerText.includes('Point003')")
    context.close()  # the user closes the tab

    cid = only_conversation(served.app)
    wait_until(lambda: last_reply_settled(served.app, cid), 60, "the run to stop after the tab closed")
    reply = stored_messages(served.app, cid)[-1]
    assert reply.status == "interrupted"
    sent = len(backend.requests)
    time.sleep(1.0)
    assert len(backend.requests) == sent, "nothing runs for a closed tab"
