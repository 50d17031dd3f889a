"""One headless Debian Chromium for the whole test run, driven by Playwright's sync API.

A pytest plugin (``pytest_plugins`` in tests/conftest.py). Playwright's sync API runs its own event
loop in the main thread, so two ``sync_playwright()`` open at once fail with "Sync API inside the
asyncio loop": every module that needs a browser takes this session's ``chromium`` fixture.
A missing Chromium fails the tests that need it; ``make test`` installs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Playwright]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing; `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def chromium(playwright_session: Playwright) -> Iterator[Browser]:
    browser = playwright_session.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()
