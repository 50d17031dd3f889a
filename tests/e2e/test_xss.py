"""XSS in real Chromium: model output, user messages and conversation titles full of script payloads.

A trap on ``window.__pwned`` in every frame reports any write, so a payload that runs anywhere
(the page, an iframe, a popup) is caught even if it cleans up after itself. The test sends a
message, opens the conversation from the sidebar, reloads, clicks every link it rendered, and
then requires that no payload ran and no dialog opened. Self-contained: its own server and browser.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Route

from app.core import App
from backends.scripted import ScriptedBackend, replying
from tests.conftest import make_app
from ui.server import ServeOptions, launch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000
LOCAL = re.compile(r"^https?://(127\.0\.0\.1|localhost)[:/]", re.IGNORECASE)

PAYLOADS = [
    '<img src=x onerror="window.__pwned=2">',
    "<script>window.__pwned=1</script>",
    "[click me](javascript:window.__pwned=3)",
    '<a href="javascript:window.__pwned=4">anchor</a>',
    '<iframe srcdoc="<script>parent.__pwned=5</script>"></iframe>',
    '<svg onload="window.__pwned=6"><circle r="4"/></svg>',
    '[title trick](https://example.invalid/ "t\\" onmouseover=\\"window.__pwned=7")',
    '[quote break](https://example.invalid/"onmouseover="window.__pwned=7b)',
    "[spaced scheme](  JaVaScRiPt:window.__pwned=3b)",
    "[ref link][r]\n\n[r]: javascript:window.__pwned=3c",
    '<a href="jav&#x09;ascript:window.__pwned=11">entity tab</a>',
    "[data url](data:text/html,<script>parent.__pwned=9</script>)",
    '![broken image](x" onerror="window.__pwned=10)',
    '<details open ontoggle="window.__pwned=8">details</details>',
    '<form action="javascript:window.__pwned=13"><button>send</button></form>',
]
# Mutation XSS: the sanitizer drops everything after it, so it comes after the end marker.
MXSS = '<math><mtext><table><mglyph><style><img src=x onerror="window.__pwned=12">'
# The first line leads, so the title made from the first exchange carries a payload too.
REPLY = "\n\n".join([*PAYLOADS, "XSS-END", MXSS])
USER_MESSAGE = "XSS-USER " + " ".join(PAYLOADS[:6])
TITLE = '<img src=x onerror="window.__pwned=20"> TITLE-MARK <script>window.__pwned=21</script>'

TRAP = """
(() => {
  const report = (v) => { try { window.__xssReport(String(v)); } catch (e) {} };
  try {
    Object.defineProperty(window, "__pwned", {
      configurable: false, get() { return undefined; }, set(v) { report(v); },
    });
  } catch (e) {}
  window.alert = (v) => { report("alert:" + v); };
})();
"""


@pytest.fixture
def xss_browser(chromium: Browser) -> Browser:
    """The session's Chromium: one Playwright driver per process (a second one refuses to start)."""
    return chromium


@pytest.fixture
def xss_app(db_url: str) -> Iterator[tuple[App, str]]:
    app = make_app(db_url, ScriptedBackend(handler=replying(REPLY)))
    user = app.local_user_id()
    seeded = app.repo.create_conversation(user, title=TITLE)
    app.repo.add_message(user, seeded, "user", USER_MESSAGE)
    app.repo.add_message(user, seeded, "assistant", REPLY)
    demo, url = launch(app, ServeOptions(port=_free_port()), block=False)
    try:
        yield app, url
    finally:
        demo.close()
        app.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def click_every_link(page: Page, url: str) -> int:
    """Hover and click each link and summary in the chat, then each form button; popups close at once."""
    clicked = 0
    for selector in ("#chatbot a, #chatbot details summary", "#chatbot form button"):
        items = page.locator(selector)
        for index in range(items.count()):
            with contextlib.suppress(Exception):  # hidden, detached or navigating: the trap still watches
                items.nth(index).hover(timeout=2000)
                items.nth(index).click(timeout=2000, no_wait_after=True)
                clicked += 1
    page.wait_for_timeout(300)
    # A sanitized form still submits to the page itself; start again from a settled page.
    if page.url.rstrip("/?") != url.rstrip("/"):
        page.goto(url)
        page.locator("#conversations label").first.wait_for()
    page.wait_for_load_state("load")
    return clicked


def wait_for_text(page: Page, selector: str, text: str, times: int = 1) -> None:
    page.wait_for_function(
        "([sel, text, n]) => { const el = document.querySelector(sel);"
        " return !!el && el.innerText.split(text).length - 1 >= n; }",
        arg=[selector, text, times],
        timeout=TIMEOUT_MS,
    )


def test_no_payload_runs_anywhere(xss_browser: Browser, xss_app: tuple[App, str]) -> None:
    app, url = xss_app
    hits: list[str] = []
    context = xss_browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)

    def refuse(route: Route) -> None:
        route.abort()

    context.route(lambda u: not LOCAL.match(u), refuse)  # offline: nothing outside the app
    context.expose_binding("__xssReport", lambda _source, value: hits.append(str(value)))
    context.add_init_script(TRAP)
    page = context.new_page()
    page.on("popup", lambda popup: popup.close())
    page.on("dialog", lambda dialog: (hits.append("dialog:" + dialog.message), dialog.dismiss()))
    try:
        page.goto(url)
        page.locator("#message textarea").first.wait_for()

        # 1. A live exchange: the user's payloads, then the model's, streamed in.
        box = page.locator("#message textarea").first
        box.fill(USER_MESSAGE)
        box.press("Enter")
        wait_for_text(page, "#chatbot", "XSS-END")
        links = click_every_link(page, url)

        # 2. The seeded conversation (payload title) opened from the sidebar.
        page.locator("#conversations label", has_text="TITLE-MARK").first.click()
        wait_for_text(page, "#chatbot", "XSS-USER")
        links += click_every_link(page, url)

        # 3. After a reload, the conversation made live (its title is a payload line) and the seeded one.
        page.goto(url)  # a fresh load, as a reload is (reload() races the form's own navigation)
        page.locator("#conversations label").first.wait_for()
        for label in page.locator("#conversations label").all():
            label.click()
            wait_for_text(page, "#chatbot", "XSS-END")
            links += click_every_link(page, url)
        page.wait_for_timeout(500)  # let any late onload/onerror fire

        assert links > 0, "no links were rendered to click"
        # Raw HTML is shown as text: no form, input or iframe a model could use to phish.
        assert page.locator("#chatbot form, #chatbot input, #chatbot iframe").count() == 0
        assert (
            "&lt;form" not in page.locator("#chatbot").inner_text()
            and "<form" in page.locator("#chatbot").inner_text()
        )
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert not hits, f"payloads ran: {hits}"

        # The trap itself works: the same kind of payload, inserted unsanitized, is caught.
        page.evaluate(
            """document.body.insertAdjacentHTML('beforeend', '<img src=x onerror="window.__pwned=0">')"""
        )
        for _ in range(100):
            if hits:
                break
            page.wait_for_timeout(100)
        assert hits == ["0"]
    finally:
        context.close()
    titles = [row.title for row in app.repo.list_conversations(app.local_user_id())]
    assert TITLE in titles
