"""The browser experience of a new user, one check per defect found in a two-hour session.

One server with a deterministic scripted backend serves the whole module; each test opens its
own page and makes its own conversations, so the tests do not depend on each other's order.
The real model runs the full path in test_journey.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect

from app.core import App
from app.prompts import title_prompt
from backends.scripted import ScriptedBackend, ScriptedRequest, replying
from tests.conftest import make_app
from tests.e2e.conftest import DEFAULT_TIMEOUT_MS, EXTERNAL
from tests.e2e.test_browser import (
    CHATBOT_IDLE,
    LAST_BOT_TEXT,
    SETTINGS_RESTORED,
    open_app,
    open_settings,
    send,
    user_texts,
)
from tests.ui.conftest import Served, serving, wait_until
from ui.layout import restore_preferences_js

pytestmark = pytest.mark.browser

I18N = Path(__file__).resolve().parents[2] / "assets" / "i18n"
# 120 words at 40 ms: a reply lasts about 5 s, long enough to act while it streams.
WORDS = " ".join(f"word{i:03d}" for i in range(120))
DELAY_S = 0.04
SIDEBAR_ENTRY = '#conversations label:has(input[value="{}"])'


def tr(lang: str) -> dict[str, str]:
    return dict(json.loads((I18N / f"{lang}.json").read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def backend() -> ScriptedBackend:
    return ScriptedBackend(handler=replying(WORDS, delay_s=DELAY_S))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, backend: ScriptedBackend) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("experience") / "llamadesk.db"
    app = make_app(f"sqlite:///{db}", backend)
    try:
        with serving(app) as running:
            yield running
    finally:
        app.close()


@pytest.fixture(autouse=True)
def fresh_reply(backend: ScriptedBackend) -> None:
    backend.handler = replying(WORDS, delay_s=DELAY_S)


@pytest.fixture
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def new_page(browser: Browser, locale: str = "en-US", width: int = 1400, height: int = 900) -> Page:
    context = browser.new_context(viewport={"width": width, "height": height}, locale=locale)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    context.route(EXTERNAL, lambda route: route.abort())
    return context.new_page()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    page = new_page(chromium)
    yield page
    page.context.close()


def seed(app: App, title: str, words: str = "hello there") -> str:
    user = app.local_user_id()
    cid = app.repo.create_conversation(user, title=title, backend="scripted", language="en")
    app.repo.add_message(user, cid, "user", words)
    app.repo.add_message(user, cid, "assistant", f"About {words}.")
    return cid


def entry(page: Page, cid: str) -> Locator:
    return page.locator(SIDEBAR_ENTRY.format(cid))


def pick(page: Page, cid: str) -> None:
    entry(page, cid).click()
    expect(page.locator('#chatbot [data-testid="bot"]').first).to_be_visible()


def idle(page: Page) -> None:
    page.wait_for_function(CHATBOT_IDLE)


def conversation_ids(app: App) -> set[str]:
    return {row.id for row in app.repo.list_conversations(app.local_user_id())}


def inside(inner: dict[str, float] | None, outer: dict[str, float] | None) -> bool:
    assert inner and outer
    return (
        inner["x"] >= outer["x"] - 1
        and inner["y"] >= outer["y"] - 1
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 1
    )


# -- 1. Delete ------------------------------------------------------------------------------


def test_delete_names_its_conversation_and_is_bound_to_it(page: Page, served: Served, shots: Path) -> None:
    app = served.app
    alpha, beta = seed(app, "Alpha trip plans"), seed(app, "Beta bread recipes")
    open_app(page, served.url)
    confirm = page.locator("#delete-confirm")

    # Delete sits in the sidebar itself, not inside the closed Rename panel.
    expect(page.locator("#delete")).to_be_visible()
    assert page.locator("#rename-panel #delete").count() == 0

    pick(page, alpha)
    page.locator("#delete").click()
    expect(confirm).to_be_visible()
    expect(page.locator("#delete-target")).to_have_text("Alpha trip plans")
    expect(confirm).to_contain_text(tr("en")["sidebar.delete_confirm"])
    expect(confirm.locator("#delete-no")).to_be_visible()
    page.screenshot(path=str(shots / "delete-confirm.png"))
    assert inside(confirm.bounding_box(), page.locator("#sidebar").bounding_box())

    # Picking another conversation withdraws the question instead of retargeting it.
    pick(page, beta)
    expect(confirm).to_be_hidden()

    # Cancel deletes nothing.
    page.locator("#delete").click()
    expect(page.locator("#delete-target")).to_have_text("Beta bread recipes")
    page.locator("#delete-no").click()
    expect(confirm).to_be_hidden()
    assert {alpha, beta} <= conversation_ids(app)

    # Confirming deletes the named conversation, and only it.
    page.locator("#delete").click()
    page.locator("#delete-yes").click()
    expect(entry(page, beta)).to_have_count(0)
    expect(confirm).to_be_hidden()
    ids = conversation_ids(app)
    assert beta not in ids and alpha in ids


def test_new_chat_also_withdraws_a_pending_delete(page: Page, served: Served) -> None:
    cid = seed(served.app, "Gamma garden notes")
    open_app(page, served.url)
    pick(page, cid)
    page.locator("#delete").click()
    expect(page.locator("#delete-confirm")).to_be_visible()
    page.keyboard.press("Control+Shift+O")
    expect(page.locator("#delete-confirm")).to_be_hidden()
    assert cid in conversation_ids(served.app)


def test_new_chat_empties_the_rename_box(page: Page, served: Served) -> None:
    cid = seed(served.app, "Delta dog walks")
    open_app(page, served.url)
    pick(page, cid)
    page.locator("#rename-panel").get_by_text(tr("en")["sidebar.rename"], exact=True).first.click()
    box = page.locator("#title-box textarea, #title-box input").first
    expect(box).to_have_value("Delta dog walks")
    page.locator("#new-chat").click()
    expect(box).to_have_value("")  # else Rename would give this title to the next conversation


# -- 2. Titles ---------------------------------------------------------------------------------


def test_titles_never_echo_the_instruction_and_are_told_apart(
    page: Page, served: Served, backend: ScriptedBackend
) -> None:
    # A model that answers the title question by repeating it, as SmolLM2 did in German.
    backend.handler = replying("Gib diesem Gespräch einen kurzen Titel auf Deutsch: höchstens")
    question = "Wie pflege ich Basilikum auf der Fensterbank während eines langen dunklen Winters?"
    open_app(page, served.url)
    created = []
    for _ in range(2):
        before = conversation_ids(served.app)
        send(page, question)
        wait_until(lambda b=before: len(conversation_ids(served.app) - b) == 1, 60, "a new conversation")
        created += list(conversation_ids(served.app) - before)
        expect(entry(page, created[-1])).to_contain_text("…")
        idle(page)
        page.locator("#new-chat").click()
        expect(page.locator('#chatbot [data-testid="user"]')).to_have_count(0)

    # The second conversation is told apart by its time once its title is made.
    expect(entry(page, created[1])).to_contain_text(" · ")
    titles = [entry(page, cid).inner_text().strip() for cid in created]
    for title in titles:
        assert "Titel" not in title and "Gespräch" not in title, title
        assert title.startswith("Wie pflege ich Basilikum") and "…" in title
        assert " Winte…" not in title  # never cut inside a word
    assert titles[0] != titles[1], titles


def test_a_title_made_after_the_user_moved_on_leaves_their_selection_alone(
    page: Page, served: Served, backend: ScriptedBackend
) -> None:
    """The title is made after the reply, by the model: by then the user may have opened another
    conversation and asked to delete it. The late title must not move the sidebar's selection
    back, or the delete prompt stays on one conversation while the sidebar shows another."""
    archive = seed(served.app, "Quiet archive")
    asked, release = threading.Event(), threading.Event()
    reply = replying("Otters hold hands while they sleep.")

    def held_title(request: ScriptedRequest) -> Iterator[str]:
        if request.messages[-1]["content"] != title_prompt("en"):
            yield from reply(request)
            return
        asked.set()
        release.wait(DEFAULT_TIMEOUT_MS / 1000)
        yield "Sleeping otters"

    backend.handler = held_title
    open_app(page, served.url)
    before = conversation_ids(served.app)
    send(page, "Tell me about otters.")
    wait_until(asked.is_set, DEFAULT_TIMEOUT_MS / 1000, "the title to be asked for")
    (otters,) = conversation_ids(served.app) - before
    idle(page)

    pick(page, archive)
    page.locator("#delete").click()
    expect(page.locator("#delete-target")).to_have_text("Quiet archive")
    release.set()
    expect(entry(page, otters)).to_have_text("Sleeping otters")
    expect(entry(page, archive).locator("input")).to_be_checked()

    entry(page, otters).click()
    expect(page.locator("#delete-confirm")).to_be_hidden()
    expect(page.locator('#chatbot [data-testid="bot"]').last).to_contain_text("Otters hold hands")


def test_a_continue_the_model_ends_at_once_says_so(
    page: Page, served: Served, backend: ScriptedBackend
) -> None:
    """A small model can end a cut-off reply at once: Continue then changed nothing on the page."""
    user = served.app.local_user_id()
    cid = served.app.repo.create_conversation(user, title="Cut short", backend="scripted", language="en")
    served.app.repo.add_message(user, cid, "user", "Tell me a story.")
    served.app.repo.add_message(user, cid, "assistant", "In a land of magic,", status="interrupted")
    backend.handler = replying("")  # the model's first token ends the reply
    open_app(page, served.url)
    pick(page, cid)
    expect(page.locator("#notice")).to_contain_text(tr("en")["chat.interrupted_offer"])
    page.locator("#continue").click()
    expect(page.locator("#notice")).to_have_text(tr("en")["chat.nothing_added"])
    expect(page.locator('#chatbot [data-testid="bot"]').last).to_contain_text("In a land of magic,")
    assert served.app.repo.messages(user, cid)[-1].content == "In a land of magic,"


# -- 5. Progress and errors -----------------------------------------------------------------------


def test_progress_stays_off_the_sidebar_while_a_reply_streams(
    page: Page, served: Served, shots: Path
) -> None:
    seed(served.app, "Delta sidebar check")
    open_app(page, served.url)
    # Any moment the sidebar shows a progress overlay, a timer or a badge is recorded.
    page.evaluate(
        """() => {
        window.__sidebarBusy = [];
        const sidebar = document.querySelector('#sidebar');
        const check = () => {
          for (const t of sidebar.querySelectorAll('[data-testid="status-tracker"]')) {
            const shown = t.checkVisibility() && t.getBoundingClientRect().height > 4;
            if (shown) window.__sidebarBusy.push(t.innerText);
          }
        };
        new MutationObserver(check).observe(sidebar, {subtree: true, childList: true, attributes: true});
        }"""
    )
    send(page, "Stream something long.")
    page.wait_for_function(f"() => ({LAST_BOT_TEXT})().split(' ').length >= 5")
    sidebar_busy = page.evaluate("() => window.__sidebarBusy")
    page.screenshot(path=str(shots / "streaming-sidebar.png"))
    assert not sidebar_busy, f"a progress overlay covers the conversation list: {sidebar_busy}"
    expect(page.locator("#conversations label").first).to_be_visible()
    page.locator("#stop").click()
    idle(page)


def test_a_bad_upload_is_reported_once_and_the_sidebar_stays(
    page: Page, served: Served, shots: Path, tmp_path: Path
) -> None:
    seed(served.app, "Epsilon error check")
    not_pdf = tmp_path / "notes.pdf"
    not_pdf.write_text("just some text, not a PDF at all")
    open_app(page, served.url)
    page.get_by_role("tab", name="Summarize a PDF").click()
    page.locator("#pdf input[type=file]").set_input_files(str(not_pdf))
    page.locator("#summarize").click()
    message = tr("en")["errors.not_pdf"]
    expect(page.get_by_text(message).first).to_be_visible()
    page.screenshot(path=str(shots / "bad-upload.png"))
    shown = page.evaluate(
        "(m) => document.body.innerText.split(m).length - 1",
        message,
    )
    assert shown == 1, f"the error is shown {shown} times"
    expect(page.locator("#conversations label").first).to_be_visible()
    assert page.locator("#sidebar").get_by_text("Error", exact=True).count() == 0


# -- 6. The chatbot's trash icon ---------------------------------------------------------------------


def test_the_trash_icon_starts_a_new_chat(page: Page, served: Served, backend: ScriptedBackend) -> None:
    backend.handler = replying("Noted.")
    open_app(page, served.url)
    before = conversation_ids(served.app)
    send(page, "Remember the secret word: pelican.")
    expect(page.locator('#chatbot [data-testid="bot"]')).to_contain_text("Noted.")
    idle(page)
    page.locator("#chatbot").hover()
    page.locator("#chatbot").get_by_role("button", name="Clear").click()
    expect(page.locator('#chatbot [data-testid="user"]')).to_have_count(0)

    send(page, "What was the secret word?")
    expect(page.locator('#chatbot [data-testid="bot"]')).to_contain_text("Noted.")
    idle(page)
    created = conversation_ids(served.app) - before
    assert len(created) == 2, "the message after the trash icon went into the cleared conversation"
    assert all("pelican" not in m["content"] for m in backend.requests[-1])
    page.reload()
    page.locator("#message textarea").wait_for(state="visible")
    expect(page.locator('#chatbot [data-testid="user"]')).to_have_count(0)


# -- 7. Input while busy --------------------------------------------------------------------------


def test_a_message_sent_while_a_reply_streams_waits_visibly_and_goes_next(page: Page, served: Served) -> None:
    open_app(page, served.url)
    before = conversation_ids(served.app)
    send(page, "First question, please.")
    page.wait_for_function(f"() => ({LAST_BOT_TEXT})().split(' ').length >= 3")
    send(page, "Second question, please.")
    expect(page.locator("#queued-note")).to_be_visible()
    expect(page.locator("#message textarea")).to_have_value("Second question, please.")

    expect(page.locator('#chatbot [data-testid="user"]')).to_have_count(2, timeout=DEFAULT_TIMEOUT_MS)
    assert user_texts(page) == ["First question, please.", "Second question, please."]
    expect(page.locator("#queued-note")).to_be_hidden()
    idle(page)
    (cid,) = conversation_ids(served.app) - before
    stored = [
        m.content for m in served.app.repo.messages(served.app.local_user_id(), cid) if m.role == "user"
    ]
    assert stored == ["First question, please.", "Second question, please."]


# -- 8. Italian and the footer's settings panel ---------------------------------------------------------


def test_an_italian_browser_gets_the_italian_interface(
    chromium: Browser, served: Served, shots: Path
) -> None:
    it = tr("it")
    page = new_page(chromium, locale="it-IT")
    try:
        open_app(page, served.url)
        expect(page.locator("#new-chat")).to_have_text(it["sidebar.new_chat"])
        expect(page.locator("#message textarea")).to_have_attribute("placeholder", it["chat.placeholder"])
        expect(page.locator("#stop")).to_have_text(it["chat.stop"])
        expect(page.get_by_role("tab", name=it["summarize.title"])).to_be_visible()
        page.screenshot(path=str(shots / "italian.png"))

        page.locator("footer").get_by_text("Impostazioni").click()
        panel = page.get_by_role("dialog")
        expect(panel).to_be_visible()
        expect(panel.locator("input").first).to_have_value("Italiano")  # the picker offers Italian
        expect(panel.get_by_text("Lingua", exact=True)).to_be_visible()
        page.screenshot(path=str(shots / "italian-settings.png"))
        assert (
            page.get_by_text("Progressive Web App is not enabled", exact=False).filter(visible=True).count()
            == 0
        ), "developer text shows in the settings panel"
        assert page.get_by_text("Screen Studio", exact=False).filter(visible=True).count() == 0
        assert panel.get_by_text("Light", exact=False).filter(visible=True).count() == 0  # Gradio's English
    finally:
        page.context.close()


# -- Minor items that need no real model ----------------------------------------------------------


@pytest.mark.parametrize("size", [(1400, 900), (390, 844)])
def test_the_message_box_is_on_the_first_screen(
    chromium: Browser, served: Served, size: tuple[int, int]
) -> None:
    page = new_page(chromium, width=size[0], height=size[1])
    try:
        open_app(page, served.url)
        box = page.locator("#message textarea").bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= size[1], f"{size}: box at {box}"
    finally:
        page.context.close()


def test_settings_persist_and_visibly_shape_the_reply(
    page: Page, served: Served, backend: ScriptedBackend
) -> None:
    backend.handler = replying("Gern.")
    open_app(page, served.url)
    open_settings(page)
    page.locator("#system-prompt textarea").fill("Always answer like a pirate.")
    page.locator("#system-prompt textarea").blur()
    page.locator("#reply-language input").click()
    page.get_by_role("option", name="Deutsch (de)").click()
    expect(page.locator("#settings-effect")).to_contain_text("Replies in Deutsch")
    expect(page.locator("#settings-effect")).to_contain_text(tr("en")["settings.effect_system_prompt"])

    page.reload()
    page.locator("#message textarea").wait_for(state="visible")
    open_settings(page)
    expect(page.locator("#system-prompt textarea")).to_have_value("Always answer like a pirate.")
    expect(page.locator("#reply-language input")).to_have_value("Deutsch (de)")

    send(page, "Tell me about the weather.")
    expect(page.locator('#chatbot [data-testid="bot"]')).to_contain_text("Gern.")
    idle(page)
    system = next(m for m in backend.requests[-1] if m["role"] == "system")["content"]
    assert "Always answer like a pirate." in system and "Deutsch" in system


def test_saved_settings_are_back_before_the_server_answers_anything(page: Page, served: Served) -> None:
    # The settings were restored by a server event: on a busy server it could land after the user's
    # first change and put the old value back. Here the server answers no event at all after the reload.
    open_app(page, served.url)
    open_settings(page)
    page.locator("#system-prompt textarea").fill("Answer in haiku.")
    page.locator("#system-prompt textarea").blur()
    expect(page.locator("#settings-effect")).to_contain_text(tr("en")["settings.effect_system_prompt"])

    held: list[Route] = []
    page.route("**/queue/join*", lambda route: held.append(route))
    try:
        page.reload()
        page.locator("#message textarea").wait_for(state="visible")
        open_settings(page)
        expect(page.locator("#system-prompt textarea")).to_have_value("Answer in haiku.")
        assert held, "no server event was held back: the test proves nothing"
    finally:
        for route in held:
            route.continue_()
        page.unroute("**/queue/join*")


# Types into a field in the first animation frame after it appears, as Settings opens, and
# reads the field back six frames later.
TYPE_AS_IT_APPEARS = """([panel, field, text]) => new Promise((resolve) => {
  const observer = new MutationObserver(() => {
    if (!document.querySelector(field)) return;
    observer.disconnect();
    requestAnimationFrame(() => {
      const box = document.querySelector(field);
      box.value = text;
      box.dispatchEvent(new Event('input', {bubbles: true}));
      let frames = 6;
      const read = () => resolve(document.querySelector(field).value);
      const later = () => (--frames ? requestAnimationFrame(later) : read());
      requestAnimationFrame(later);
    });
  });
  observer.observe(document.body, {subtree: true, childList: true});
  document.querySelector(panel + ' .label-wrap').click();
})"""


def test_text_typed_as_settings_opens_is_kept(page: Page, served: Served) -> None:
    # Gradio built the closed panel's fields when it first opened and put their initial values
    # back a frame later: the system prompt typed in that frame was wiped (two tries in three).
    for _ in range(3):
        open_app(page, served.url)
        page.wait_for_function(SETTINGS_RESTORED)
        typed = page.evaluate(
            TYPE_AS_IT_APPEARS, ["#settings", "#system-prompt textarea", "Answer in haiku."]
        )
        assert typed == "Answer in haiku."


def test_the_restore_leaves_alone_the_fields_touched_before_it_ran(page: Page, served: Served) -> None:
    # Gradio runs the restore once every component's code has loaded: on a busy machine the user
    # had opened Settings and typed by then, and the saved values wiped the typing. Here the
    # restore runs late, handed the values from before the typing, as it could be.
    saved = {"system_prompt": "Be brief.", "temperature": 0.2, "max_tokens": 512, "reply_language": "de"}
    restore = f"(saved) => ({restore_preferences_js()})({{...saved, keep_demo: true}}, '', 0.7, 1024, 'auto')"
    open_app(page, served.url)
    untouched = page.evaluate(restore, saved)[:4]
    assert [field.get("value") for field in untouched] == list(saved.values())  # all restored

    open_settings(page)
    page.locator("#system-prompt textarea").fill("Answer in haiku.")
    tokens = page.get_by_label(f"number input for {tr('en')['settings.max_tokens']}")
    tokens.fill("256")
    tokens.press("Enter")
    late = page.evaluate(restore, saved)
    kept = {"__type__": "update", "visible": True}  # no value: Gradio leaves the field as it is
    assert late[:4] == [kept, {**kept, "value": 0.2}, kept, {**kept, "value": "de"}]
    assert late[4] == late[5] == {"__type__": "update", "visible": False}
    expect(page.locator("#system-prompt textarea")).to_have_value("Answer in haiku.")


def upload(page: Page, file: Path) -> None:
    # Gradio 6 leaves the UploadButton's elem_id off its button; its file input is the panel's only one.
    page.locator("#export-panel input[type=file]").set_input_files(str(file))


def test_a_json_export_imports_back_as_a_new_conversation(page: Page, served: Served, tmp_path: Path) -> None:
    exported = {
        "title": "Imported lighthouse chat",
        "language": "en",
        "messages": [
            {"role": "user", "content": "Who kept the lighthouse?", "status": "complete"},
            {"role": "assistant", "content": "A keeper who lived beside it.", "status": "complete"},
        ],
    }
    good = tmp_path / "chat.json"
    good.write_text(json.dumps(exported), encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    open_app(page, served.url)
    before = conversation_ids(served.app)
    page.locator("#export-panel").get_by_text("Export", exact=True).first.click()

    upload(page, bad)
    expect(page.locator("#notice")).to_contain_text(tr("en")["sidebar.import_failed"])
    assert conversation_ids(served.app) == before

    upload(page, good)
    expect(page.locator("#conversations")).to_contain_text("Imported lighthouse chat")
    expect(page.locator('#chatbot [data-testid="bot"]')).to_contain_text("A keeper who lived beside it.")
    (cid,) = conversation_ids(served.app) - before
    rows = served.app.repo.messages(served.app.local_user_id(), cid)
    assert [(r.role, r.content) for r in rows] == [(m["role"], m["content"]) for m in exported["messages"]]


# -- Search ---------------------------------------------------------------------------------


def test_a_search_submitted_while_another_runs_is_still_answered(
    page: Page, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sidebar ends on the last query the user sent, not on one sent before it."""
    cid = seed(served.app, "Harbour log", "lighthousekeeper duties")
    first_arrived, release = threading.Event(), threading.Event()
    search = served.app.repo.search

    def held_search(*args: object, **kwargs: object) -> object:
        if not first_arrived.is_set():  # the first query stays on the server until the second is sent
            first_arrived.set()
            release.wait(DEFAULT_TIMEOUT_MS / 1000)
        return search(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(served.app.repo, "search", held_search)
    open_app(page, served.url)
    box = page.locator("#search textarea, #search input").first
    box.fill("lighthousekeeper")
    box.press("Enter")
    wait_until(first_arrived.is_set, DEFAULT_TIMEOUT_MS / 1000, "the first search to reach the server")
    box.fill("zzqxv")
    box.press("Enter")
    release.set()
    expect(page.locator("#search-status")).to_have_text(tr("en")["sidebar.no_results"])
    expect(entry(page, cid)).to_have_count(0)
