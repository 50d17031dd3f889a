"""A new user's whole path through llamadesk in Chromium, with the real embedded SmolLM2.

First screen, chat, stop, continue, edit, search, rename, delete while the selection changes,
a PDF dropped in the chat box with its plan and streamed summary, a follow-up question, export
and a reload: once with an English browser and once with a German one. Screenshots of every
step are kept under the test's tmp folder (printed at the end).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from app.core import App
from backends.llamacpp import LlamaCppBackend
from storage.repo import MessageRow
from tests.conftest import make_app
from tests.e2e.conftest import EXTERNAL
from tests.e2e.test_browser import CHATBOT_IDLE, LAST_BOT_TEXT, open_settings, user_texts
from tests.pdfs import text_pdf
from tests.ui.conftest import Served, last_reply_settled, serving, wait_until

pytestmark = pytest.mark.browser

I18N = Path(__file__).resolve().parents[2] / "assets" / "i18n"
MODEL_TIMEOUT_MS = 300_000
SHORT_TOKENS = 32  # a story never fits: the max-tokens marker must show
STOP_TOKENS = 1008  # long enough for a stop to land mid-reply
LIGHTHOUSE = [
    "Lighthouses guided ships along dangerous coasts for centuries. The first famous one stood at "
    "Alexandria in Egypt and was counted among the wonders of the ancient world. Keepers lived in "
    "small houses beside the tower and climbed its stairs every evening to light the lamp.",
    "In the nineteenth century the Fresnel lens made the light visible from far out at sea. Later, "
    "electric lamps and automatic timers replaced the keepers. Today most lighthouses are run from "
    "a distance, and many of the old towers have become museums that visitors can climb.",
]
LOCALES = {"en-US": "en", "de-DE": "de"}
# The newest reply with its stats line.
WHOLE_BOT_TEXT = """() => {
  const bots = document.querySelectorAll('#chatbot [data-testid="bot"]');
  return bots.length ? bots[bots.length - 1].innerText : '';
}"""


def tr(lang: str) -> dict[str, str]:
    return dict(json.loads((I18N / f"{lang}.json").read_text(encoding="utf-8")))


class Journey:
    """The page, its translations and a numbered screenshot per step."""

    def __init__(self, page: Page, app: App, words: dict[str, str], folder: Path) -> None:
        self.page, self.app, self.tr, self.folder = page, app, words, folder
        self.step = 0

    def shot(self, name: str) -> Path:
        self.step += 1
        path = self.folder / f"{self.step:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        assert path.read_bytes().startswith(b"\x89PNG")
        return path

    def idle(self) -> None:
        self.page.wait_for_function(CHATBOT_IDLE, timeout=MODEL_TIMEOUT_MS)

    def bot(self) -> str:
        return str(self.page.evaluate(LAST_BOT_TEXT))

    def send(self, text: str) -> None:
        box = self.page.locator("#message textarea")
        box.fill(text)
        box.press("Enter")

    def entry(self, cid: str) -> object:
        return self.page.locator(f'#conversations label:has(input[value="{cid}"])')

    def conversations(self) -> list[str]:
        return [row.id for row in self.app.repo.list_conversations(self.app.local_user_id())]

    def set_max_tokens(self, tokens: int) -> None:
        label = self.tr["settings.max_tokens"]
        field = self.page.get_by_label(f"number input for {label}")
        if not field.is_visible():
            open_settings(self.page, self.tr["settings.title"])
        slider = self.page.get_by_label(f"range slider for {label}")
        field.fill(str(tokens))
        field.press("Enter")
        expect(slider).to_have_value(str(tokens))
        effect = self.tr["settings.effect_max_tokens"].format(n=tokens)
        expect(self.page.locator("#settings-effect")).to_contain_text(effect)  # saved and in force


@pytest.fixture
def served_model(tmp_path: Path, local_backend: LlamaCppBackend) -> Iterator[Served]:
    """A new user in each language: an empty database of its own (the model stays loaded)."""
    db = tmp_path / "llamadesk.db"
    app = make_app(f"sqlite:///{db}", local_backend)
    try:
        with serving(app) as served:
            yield served
    finally:
        app.db.close()  # the session-wide model stays loaded


@pytest.mark.parametrize("locale", list(LOCALES))
def test_a_new_users_whole_journey(
    chromium: Browser, served_model: Served, locale: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    lang = LOCALES[locale]
    folder = tmp_path_factory.mktemp(f"journey-{lang}")
    pdf = text_pdf(folder / "lighthouse.pdf", LIGHTHOUSE)
    context = browser_context(chromium, locale)
    try:
        journey = Journey(context.new_page(), served_model.app, tr(lang), folder)
        first_screen(journey, served_model.url)
        chat_stop_continue_edit(journey)
        search_rename_delete(journey)
        summarize_follow_up(journey, pdf)
        export_and_reload(journey)
    finally:
        context.close()
    print(f"journey screenshots: {folder}")


def browser_context(chromium: Browser, locale: str):  # type: ignore[no-untyped-def]
    context = chromium.new_context(
        viewport={"width": 1400, "height": 900}, locale=locale, accept_downloads=True
    )
    context.set_default_timeout(60_000)
    context.route(EXTERNAL, lambda route: route.abort())
    return context


def first_screen(j: Journey, url: str) -> None:
    page = j.page
    page.goto(url)
    box = page.locator("#message textarea")
    box.wait_for(state="visible")
    expect(page.locator("#new-chat")).to_have_text(j.tr["sidebar.new_chat"])
    geometry = box.bounding_box()
    assert geometry and geometry["y"] + geometry["height"] <= 900, f"message box below the fold: {geometry}"
    note = j.tr["model.demo_note"]
    expect(page.locator("#demo-note")).to_contain_text(note[:30])
    assert page.evaluate("(n) => document.body.innerText.split(n).length - 1", note[:30]) == 1
    expect(page.locator("#sidebar-empty")).to_be_visible()
    j.shot("first-screen")

    page.locator("#keep-demo").click()
    expect(page.locator("#keep-demo")).to_be_hidden()
    page.reload()
    box.wait_for(state="visible")
    expect(page.locator("#first-run")).to_be_hidden()
    expect(page.locator("#keep-demo")).to_be_hidden()


def chat_stop_continue_edit(j: Journey) -> None:
    page = j.page
    # Settings are kept in the browser: set once, still there after a reload.
    j.set_max_tokens(SHORT_TOKENS)
    page.reload()
    page.locator("#message textarea").wait_for(state="visible")
    open_settings(page, j.tr["settings.title"])
    expect(page.get_by_label(f"range slider for {j.tr['settings.max_tokens']}")).to_have_value(
        str(SHORT_TOKENS)
    )

    page.evaluate(
        """(thinking) => {
        window.__firstBot = null;
        new MutationObserver(() => {
          const bots = document.querySelectorAll('#chatbot [data-testid="bot"]');
          const text = bots.length ? bots[bots.length - 1].innerText.trim() : '';
          if (text && window.__firstBot === null) window.__firstBot = text;
        }).observe(document.querySelector('#chatbot'), {subtree: true, childList: true, characterData: true});
        }""",
        j.tr["chat.thinking"],
    )
    j.send("Tell me a long story about a dragon.")
    page.wait_for_function("() => window.__firstBot !== null", timeout=MODEL_TIMEOUT_MS)
    assert j.tr["chat.thinking"] in page.evaluate("() => window.__firstBot"), "no thinking sign first"
    j.idle()
    reply = str(page.evaluate(WHOLE_BOT_TEXT))
    assert "tok/s" in reply and "TTFT" in reply, f"no stats under the reply: {reply!r}"
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", reply), "no time with the reply"
    assert j.tr["chat.max_tokens_hit"] in " ".join(reply.split()), "no max-tokens marker"
    j.shot("reply-with-stats")

    # Stop mid-reply: the page says so and offers Continue, which extends the same reply.
    j.set_max_tokens(STOP_TOKENS)
    j.send("Write a very long story about a brave knight and a castle.")
    cid = j.conversations()[0]
    nothing_added = " ".join(j.tr["chat.nothing_added"].split())
    # The small model sometimes ends a cut-off story at once; the page says so, and it is made again.
    for _ in range(3):
        cut = stop_mid_reply(j, cid)
        expect(page.locator("#notice")).to_contain_text(j.tr["chat.stopped_offer"][:20])
        stopped = " ".join(j.bot().split())
        j.shot("stopped")
        j.set_max_tokens(SHORT_TOKENS)
        page.locator("#continue").click()
        page.wait_for_function(
            f"([n, nothing]) => ({LAST_BOT_TEXT})().length > n"
            " || document.querySelector('#notice').innerText.split(/\\s+/).join(' ').includes(nothing)",
            arg=[len(stopped) + 5, nothing_added],
            timeout=MODEL_TIMEOUT_MS,
        )
        j.idle()
        continued = j.app.repo.messages(j.app.local_user_id(), cid)[-1]
        if continued.content != cut.content:
            break
        expect(page.locator("#notice")).to_contain_text(nothing_added)
        j.set_max_tokens(STOP_TOKENS)
        page.locator("#regenerate").click()
    kept = " ".join(cut.content.split())
    assert continued.status == "complete" and len(continued.content) > len(cut.content)
    assert " ".join(continued.content.split()).startswith(kept), "Continue did not extend the reply"
    glued = continued.content[len(cut.content) : len(cut.content) + 1]
    assert not (cut.content[-1:].isalnum() and glued.isupper()), "continued text glued on"
    j.shot("continued")

    page.locator("#edit-last").click()
    expect(page.locator("#message textarea")).to_have_value(
        "Write a very long story about a brave knight and a castle."
    )
    j.send("Write a short poem about a dragon.")
    page.wait_for_function(
        "(t) => [...document.querySelectorAll('#chatbot [data-testid=user]')].pop()?.innerText.includes(t)",
        arg="short poem",
    )
    j.idle()
    assert user_texts(page)[-1] == "Write a short poem about a dragon."
    assert all("knight" not in t for t in user_texts(page))
    j.shot("edited")


def stop_mid_reply(j: Journey, cid: str) -> MessageRow:
    """Press Escape while the reply being made streams; the stopped reply, as stored.

    The small model sometimes ends a story within a second; then the reply is made again.
    """
    page = j.page

    def streaming() -> bool:
        last = j.app.repo.messages(j.app.local_user_id(), cid)[-1]
        return last.role == "assistant" and last.status == "streaming"

    for _ in range(3):
        wait_until(streaming, MODEL_TIMEOUT_MS / 1000, "the reply to start")
        # Counted once the reply streams: the new message is stored by then, so the page must show it.
        users = sum(r.role == "user" for r in j.app.repo.messages(j.app.local_user_id(), cid))
        # Words of the new reply, not of the one before it: on a busy server the page can still
        # show the previous exchange alone, whose reply has words too.
        page.wait_for_function(
            "(users) => { const r = document.querySelectorAll('#chatbot [data-testid=bot]');"
            " const u = document.querySelectorAll('#chatbot [data-testid=user]');"
            " return u.length === users && r.length >= u.length"
            " && r[r.length - 1].innerText.split(/\\s+/).length >= 3; }",
            arg=users,
            timeout=MODEL_TIMEOUT_MS,
        )
        page.keyboard.press("Escape")
        j.idle()
        wait_until(lambda: last_reply_settled(j.app, cid), MODEL_TIMEOUT_MS / 1000, "the reply to settle")
        last = j.app.repo.messages(j.app.local_user_id(), cid)[-1]
        if last.status == "interrupted":
            return last
        page.locator("#regenerate").click()
    raise AssertionError(f"the reply was never stopped mid-way: {last.content!r}")


def search_rename_delete(j: Journey) -> None:
    page = j.page
    dragon = j.conversations()[0]
    search = page.locator("#search textarea, #search input").first
    search.fill("drag")  # a prefix of "dragon"
    search.press("Enter")
    expect(j.entry(dragon)).to_contain_text(" — ")  # a search hit: the title, then its snippet
    expect(j.entry(dragon)).not_to_contain_text("**")
    search.fill("zzqxv")
    search.press("Enter")
    expect(page.locator("#search-status")).to_have_text(j.tr["sidebar.no_results"])
    j.shot("search-no-results")
    search.fill("")
    search.press("Enter")
    expect(page.locator("#search-status")).to_be_hidden()

    j.entry(dragon).click()  # type: ignore[attr-defined]
    page.locator("#rename-panel").get_by_text(j.tr["sidebar.rename"], exact=True).first.click()
    page.locator("#title-box textarea, #title-box input").first.fill("Dragon notes")
    page.locator("#rename").click()
    expect(j.entry(dragon)).to_have_text("Dragon notes")

    page.keyboard.press("Control+Shift+O")
    expect(page.locator('#chatbot [data-testid="user"]')).to_have_count(0)
    before = set(j.conversations())
    j.set_max_tokens(16)
    j.send("Hello there!")
    page.wait_for_function("() => document.querySelectorAll('#chatbot [data-testid=\"bot\"]').length > 0")
    j.idle()
    (other,) = set(j.conversations()) - before

    j.entry(dragon).click()  # type: ignore[attr-defined]
    expect(page.locator("#title-box textarea, #title-box input").first).to_have_value("Dragon notes")
    page.locator("#delete").click()
    expect(page.locator("#delete-target")).to_have_text("Dragon notes", timeout=30_000)
    j.shot("delete-confirm")
    j.entry(other).click()  # type: ignore[attr-defined]
    expect(page.locator("#delete-confirm")).to_be_hidden()
    page.locator("#delete").click()
    expect(page.locator("#delete-target")).not_to_have_text("Dragon notes")
    page.locator("#delete-yes").click()
    expect(j.entry(other)).to_have_count(0)  # type: ignore[attr-defined]
    expect(j.entry(dragon)).to_be_visible()
    assert dragon in j.conversations() and other not in j.conversations()


def summarize_follow_up(j: Journey, pdf: Path) -> None:
    page = j.page
    page.keyboard.press("Control+Shift+O")
    before = set(j.conversations())
    j.set_max_tokens(64)
    page.locator("#message input[type=file]").set_input_files(str(pdf))
    expect(page.locator("#message")).to_contain_text("lighthouse")
    j.shot("attached")
    page.locator("#message textarea").press("Enter")
    expect(page.locator('#chatbot [data-testid="user"]').last).to_contain_text("lighthouse.pdf")
    expect(page.locator('#chatbot [data-testid="bot"]').last).to_contain_text(
        j.tr["summarize.plan"], timeout=MODEL_TIMEOUT_MS
    )
    # The new conversation is listed while the summary is still being written.
    page.wait_for_function(
        "(n) => document.querySelectorAll('#conversations input').length > n",
        arg=len(before),
        timeout=MODEL_TIMEOUT_MS,
    )
    j.shot("summary-running")
    j.idle()
    summary = j.bot()
    assert re.search(r"\bpp?\. ?\d", summary), f"no page citation in {summary!r}"
    assert not re.search(r"<<<|DOCUMENT [0-9a-f]{16}|\[page \d+\]", summary), f"markers shown: {summary!r}"
    j.shot("summary")

    j.send("What is this document about?")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#chatbot [data-testid=\"user\"]')].length >= 2",
        timeout=MODEL_TIMEOUT_MS,
    )
    j.idle()
    assert j.bot(), "no answer to the follow-up"
    j.shot("follow-up")


def export_and_reload(j: Journey) -> None:
    page = j.page
    cid = j.conversations()[0]
    page.locator("#export-panel").get_by_text(j.tr["sidebar.export"], exact=True).first.click()
    page.locator("#export-format").get_by_text("JSON", exact=True).click()
    page.locator("#export").click()
    link = page.locator("#export-file a").first
    expect(link).to_be_visible()
    with page.expect_download() as download:
        link.click()
    exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert exported["id"] == cid and len(exported["messages"]) >= 4
    j.shot("exported")

    page.reload()
    page.locator("#message textarea").wait_for(state="visible")
    j.entry(cid).click()  # type: ignore[attr-defined]
    expect(page.locator('#chatbot [data-testid="user"]').first).to_contain_text("lighthouse.pdf")
    expect(page.locator('#chatbot [data-testid="bot"]').first).to_contain_text("tokens")
    j.shot("reloaded")
