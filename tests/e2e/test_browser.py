"""Real-browser checks: type, watch the reply stream, stop, reload, reopen from the sidebar."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from app.core import App
from tests.ui.conftest import (
    SLOW_REPLY,
    Served,
    last_reply_settled,
    only_conversation,
    stored_messages,
    wait_until,
)

pytestmark = pytest.mark.browser

MODEL_TIMEOUT_MS = 300_000
# SmolLM2 sometimes rambles to the 1024-token default; the browser and the model share two cores.
REPLY_TOKENS = 64

# The reply itself: a finished reply ends with a rule, then its stats line, which is left out.
LAST_BOT_TEXT = """() => {
  const bots = document.querySelectorAll('#chatbot [data-testid="bot"]');
  if (!bots.length) return '';
  const bot = bots[bots.length - 1];
  const rules = bot.querySelectorAll('hr');
  if (!rules.length) return bot.innerText.trim();
  const range = document.createRange();
  range.setStart(bot, 0);
  range.setEndBefore(rules[rules.length - 1]);
  return range.toString().trim();
}"""

# Every distinct, non-empty text of the newest bot message, as the page renders it (read the same
# way as LAST_BOT_TEXT, so that the last one recorded compares with the finished reply).
RECORD_BOT_TEXTS = f"""() => {{
  window.__botTexts = [];
  const root = document.querySelector('#chatbot');
  const record = () => {{
    const text = ({LAST_BOT_TEXT})();
    const seen = window.__botTexts;
    if (text && seen[seen.length - 1] !== text) seen.push(text);
  }};
  new MutationObserver(record).observe(root, {{subtree: true, childList: true, characterData: true}});
}}"""

# The chatbot's status tracker is hidden once no event is writing to it.
CHATBOT_IDLE = """() => {
  const tracker = document.querySelector('#chatbot [data-testid="status-tracker"]');
  return !tracker || tracker.classList.contains('hide');
}"""


SETTINGS_RESTORED = "() => document.body.dataset.llamadeskSettings === 'restored'"


def open_app(page: Page, url: str) -> None:
    page.goto(url)
    page.locator("#message textarea").wait_for(state="visible")


def send(page: Page, text: str) -> None:
    box = page.locator("#message textarea")
    box.fill(text)
    box.press("Enter")


def open_settings(page: Page, title: str = "Settings") -> None:
    """Opens the Settings panel once the page has restored the saved settings into its fields."""
    page.wait_for_function(SETTINGS_RESTORED)
    page.locator("#settings").get_by_text(title, exact=True).first.click()


def set_max_tokens(page: Page, tokens: int) -> None:
    open_settings(page)
    field = page.get_by_label("number input for Max tokens")
    field.fill(str(tokens))
    field.press("Enter")
    expect(page.get_by_label("range slider for Max tokens")).to_have_value(str(tokens))


def bot_text(page: Page) -> str:
    return str(page.evaluate(LAST_BOT_TEXT))


def user_texts(page: Page) -> list[str]:
    return [t.strip() for t in page.locator('#chatbot [data-testid="user"]').all_inner_texts()]


def reopen_from_sidebar(page: Page, conversation_id: str) -> None:
    """Reload the page, find the conversation in the sidebar (loaded from the DB) and open it."""
    page.reload()
    page.locator("#message textarea").wait_for(state="visible")
    entry = page.locator(f'#conversations label:has(input[value="{conversation_id}"])')
    entry.wait_for(state="visible")
    assert page.locator('#chatbot [data-testid="bot"]').count() == 0, "a fresh page should start empty"
    entry.click()
    page.locator('#chatbot [data-testid="bot"]').first.wait_for(state="visible")


def screenshot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_real_model_reply_streams_and_survives_a_reload(
    page: Page, browser_local: Served, tmp_path: Path
) -> None:
    app: App = browser_local.app
    question = "Write a short poem about the sea."
    open_app(page, browser_local.url)
    set_max_tokens(page, REPLY_TOKENS)
    page.evaluate(RECORD_BOT_TEXTS)

    send(page, question)
    page.wait_for_function(f"() => ({LAST_BOT_TEXT})().length > 0", timeout=MODEL_TIMEOUT_MS)

    conversation_id = only_conversation(app)
    wait_until(lambda: last_reply_settled(app, conversation_id), MODEL_TIMEOUT_MS / 1000, "the reply to end")
    reply = stored_messages(app, conversation_id)[-1]
    assert reply.status == "complete"
    assert reply.completion_tokens is not None and 0 < reply.completion_tokens <= REPLY_TOKENS
    # The event also titles the conversation after the reply; wait for all of it.
    page.wait_for_function(CHATBOT_IDLE, timeout=MODEL_TIMEOUT_MS)
    final = bot_text(page)
    assert final, "no reply is shown"
    assert user_texts(page) == [question]
    grown = page.evaluate("() => window.__botTexts")
    assert len(grown) >= 2 and len(grown[0]) < len(final), f"the reply did not stream: {grown!r}"
    assert grown[-1] == final

    reopen_from_sidebar(page, conversation_id)
    page.wait_for_function(f"() => ({LAST_BOT_TEXT})().length > 0")
    assert user_texts(page) == [question]
    assert " ".join(bot_text(page).split()) == " ".join(final.split())
    screenshot(page, tmp_path / "real-model.png")


def test_stop_pressed_at_any_moment_of_a_reply_leaves_the_chat_idle_and_the_reply_kept(
    page: Page, browser_scripted: Served
) -> None:
    # Gradio's own cancel raced the stream's last messages in the page: the chat showed "Error"
    # and stayed busy, about once in three Stops pressed within a second of the reply's start.
    app: App = browser_scripted.app
    open_app(page, browser_scripted.url)
    for round_, delay_ms in enumerate([0, 10, 50, 200, 0, 500, 30, 100, 0, 1000, 5, 300]):
        if round_ % 3 == 2:
            page.locator("#regenerate").click()
        else:
            send(page, f"Tell me everything, part {round_}.")
        wait_until(lambda: _last_reply_streaming(app), 60, "the reply to start")
        page.wait_for_timeout(delay_ms)
        page.locator("#stop").click()
        page.wait_for_function(CHATBOT_IDLE)
        tracker = page.locator('#chatbot [data-testid="status-tracker"]')
        assert tracker.count() == 0 or "Error" not in tracker.inner_text(), f"Error shown after stop {round_}"
        wait_until(lambda: last_reply_settled(app, only_conversation(app)), 60, "the reply to be saved")
        reply = stored_messages(app, only_conversation(app))[-1]
        assert reply.status == "interrupted", f"stop {round_} did not land mid-reply"
        assert SLOW_REPLY.startswith(reply.content)
    expect(page.locator("#notice")).to_contain_text("stopped")


def _last_reply_streaming(app: App) -> bool:
    rows = app.repo.list_conversations(app.local_user_id())
    if not rows:
        return False
    messages = stored_messages(app, rows[0].id)
    return bool(messages) and (messages[-1].role, messages[-1].status) == ("assistant", "streaming")


def test_stop_keeps_the_partial_reply_in_the_page_and_the_sidebar(
    page: Page, browser_scripted: Served, tmp_path: Path
) -> None:
    app: App = browser_scripted.app
    open_app(page, browser_scripted.url)

    send(page, "Tell me everything.")
    # A few words in, well before the 200-word reply could finish.
    page.wait_for_function(f"() => ({LAST_BOT_TEXT})().split(' ').length >= 5")
    page.locator("#stop").click()

    conversation_id = only_conversation(app)
    wait_until(lambda: last_reply_settled(app, conversation_id), 60, "the stopped reply to be saved")
    assert stored_messages(app, conversation_id)[-1].status == "interrupted"
    page.wait_for_function(CHATBOT_IDLE)
    shown = bot_text(page)
    assert shown and SLOW_REPLY.startswith(shown)
    assert len(shown) < len(SLOW_REPLY), "the stop did not land mid-reply"
    # A live stream would add about 20 words a second; nothing may change after a stop.
    page.wait_for_timeout(1000)
    assert bot_text(page) == shown

    stored = stored_messages(app, conversation_id)[-1].content
    # The server can have produced a token or two the page never received.
    assert stored.startswith(shown) and SLOW_REPLY.startswith(stored)

    reopen_from_sidebar(page, conversation_id)
    page.wait_for_function(f"(expected) => ({LAST_BOT_TEXT})() === expected", arg=stored)
    assert user_texts(page) == ["Tell me everything."]
    page.locator("#notice").get_by_text("interrupted").wait_for(state="visible")
    screenshot(page, tmp_path / "stopped.png")
