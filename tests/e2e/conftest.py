"""Headless Debian Chromium driven by Playwright against the live Gradio app."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Route

from app.core import App
from backends.scripted import ScriptedBackend, replying
from tests.conftest import make_app
from tests.ui.conftest import SLOW_REPLY, Served, serving

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# Generous: two cores may be shared with the model and other test runs.
DEFAULT_TIMEOUT_MS = 60_000
BROWSER_DELAY_S = 0.05  # the 200-word scripted reply then takes about 10 s
# Anything not served by the app (web fonts, CDNs) is refused at once instead of hanging offline.
EXTERNAL = re.compile(r"^(?!https?://(127\.0\.0\.1|localhost)[:/]).*", re.IGNORECASE)


def _refuse(route: Route) -> None:
    route.abort()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    context.route(EXTERNAL, _refuse)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def browser_local(local_app: App) -> Iterator[Served]:
    with serving(local_app) as served:
        yield served


@pytest.fixture
def browser_scripted(db_url: str) -> Iterator[Served]:
    # Slower than the API tests' backend: a browser click can take a while on a busy machine.
    app = make_app(db_url, ScriptedBackend(handler=replying(SLOW_REPLY, delay_s=BROWSER_DELAY_S)))
    try:
        with serving(app) as served:
            yield served
    finally:
        app.close()
