"""The UI in German, Thai and Hindi from Chromium's locale, with Thai and Devanagari really drawn.

Three independent checks that glyphs are not tofu boxes: the font Chromium reports for the
text (over CDP) must be one fontconfig lists as covering the script; the text must not be as
wide as the same number of missing-glyph boxes; and OCR of a screenshot must read the text back.
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pytest
from PIL import Image  # Pillow comes with gradio
from playwright.sync_api import Browser, Locator, Page, Route, expect

from backends.scripted import ScriptedBackend, replying
from tests.conftest import make_app
from tests.e2e.conftest import DEFAULT_TIMEOUT_MS, EXTERNAL
from tests.e2e.test_browser import (
    CHATBOT_IDLE,
    LAST_BOT_TEXT,
    open_app,
    open_settings,
    screenshot,
    send,
    user_texts,
)
from tests.ui.conftest import Served, serving

pytestmark = pytest.mark.browser

I18N_DIR = Path(__file__).resolve().parents[2] / "assets" / "i18n"
LOCALES = {"de-DE": "de", "th-TH": "th", "hi-IN": "hi"}
TESSERACT_LANG = {"de": "deu", "th": "tha", "hi": "hin"}
# Debian package per tesseract language, for the skip message.
TESSERACT_PKG = {"deu": "tesseract-ocr-deu", "tha": "tesseract-ocr-tha", "hin": "tesseract-ocr-hin"}
# OCR of Thai is imperfect (stacked marks); a tofu screenshot reads back as next to nothing.
OCR_MIN_SIMILARITY = 0.6
# A code point no font maps (unassigned in the Thai block), so Chromium draws its missing-glyph box.
TOFU = "\u0e7f"
CROP_MARGIN_PX = 6
SCRIPT_SAMPLE = {"thai": "\u0e01", "devanagari": "\u0915"}  # ก, क: fontconfig's coverage probes

THAI_MESSAGE = "สวัสดีครับ ช่วยเล่าเรื่องภาษาไทยหน่อย"
THAI_REPLY = "ภาษาไทยเป็นภาษาที่สวยงาม ขอบคุณที่ถามครับ"
HINDI_REPLY = "हिन्दी एक सुंदर भाषा है। पूछने के लिए धन्यवाद।"
REPLY = f"{THAI_REPLY}\n\n{HINDI_REPLY}"

# Every label, placeholder and tab the chat tab, its settings, the sidebar and the Summarize tab show.
LABEL_KEYS = (
    "sidebar.new_chat",
    "sidebar.search_placeholder",
    "sidebar.conversations",
    "sidebar.rename",
    "sidebar.rename_placeholder",
    "sidebar.delete",
    "chat.placeholder",
    "chat.stop",
    "chat.regenerate",
    "chat.edit_last",
    "settings.title",
    "settings.system_prompt",
    "settings.temperature",
    "settings.max_tokens",
    "settings.reply_language",
    "settings.backend",
    "summarize.title",
    "summarize.upload",
    "summarize.language",
    "summarize.password",
    "summarize.run",
    "summarize.cancel",
    "summarize.download",
)

# Lines of rendered text plus the placeholders of visible fields.
SHOWN_TEXT = """() => {
  const lines = document.body.innerText.split('\\n').map((s) => s.trim()).filter(Boolean);
  const fields = [...document.querySelectorAll('input, textarea')].filter((e) => e.checkVisibility());
  return lines.concat(fields.map((e) => (e.placeholder || '').trim()).filter(Boolean));
}"""

# Text a sighted user sees in the app itself: not the footer (Gradio's), not chat messages,
# not screen-reader-only labels (1 px boxes); plus placeholders and text-field values.
VISIBLE_STRINGS = """() => {
  const root = document.querySelector('.gradio-container');
  const skip = 'footer, #chatbot [data-testid="bot"], #chatbot [data-testid="user"]';
  const seen = new Set();
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim();
    const el = node.parentElement;
    if (!text || !el || el.closest(skip)) continue;
    if (!el.checkVisibility({visibilityProperty: true, opacityProperty: true})) continue;
    const box = el.getBoundingClientRect();
    if (box.width > 2 && box.height > 2) seen.add(text);
  }
  for (const field of root.querySelectorAll('input, textarea')) {
    if (!field.checkVisibility() || field.closest(skip)) continue;
    if (field.placeholder) seen.add(field.placeholder.trim());
    const textual = field.tagName === 'TEXTAREA' || field.type === 'text';
    if (textual && field.value.trim()) seen.add(field.value.trim());
  }
  return [...seen];
}"""

# Where the element's text lies inside it (the union of its text nodes' boxes), in CSS pixels:
# OCR reads a tight crop; a button's rounded border reads as a line of noise.
TEXT_BOX = """(el) => {
  const origin = el.getBoundingClientRect();
  let left = Infinity, top = Infinity, right = -Infinity, bottom = -Infinity;
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.textContent.trim()) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const r of range.getClientRects()) {
      if (!r.width || !r.height) continue;
      left = Math.min(left, r.left); top = Math.min(top, r.top);
      right = Math.max(right, r.right); bottom = Math.max(bottom, r.bottom);
    }
  }
  return [left - origin.left, top - origin.top, right - origin.left, bottom - origin.top];
}"""

MARK_TEXT_PARENTS = """(el) => {
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.textContent.trim()) node.parentElement.setAttribute('data-font-probe', '');
  }
}"""
UNMARK_TEXT_PARENTS = """() => {
  for (const el of document.querySelectorAll('[data-font-probe]')) el.removeAttribute('data-font-probe');
}"""

# Widths of the text and of as many missing-glyph boxes, in the element's own font.
TEXT_AND_TOFU_WIDTHS = """(el, [text, tofu]) => {
  const measure = (s) => {
    const span = document.createElement('span');
    span.style.whiteSpace = 'pre';
    span.textContent = s;
    el.appendChild(span);
    const width = span.getBoundingClientRect().width;
    span.remove();
    return width;
  };
  return [measure(text), measure(tofu.repeat([...text].length)), measure(tofu)];
}"""

LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
# Names, not words: they stay as they are in every language.
NEUTRAL_WORDS = {"llamadesk", "PDF", "API", "Markdown"}


@cache
def translations(lang: str) -> dict[str, str]:
    table = json.loads((I18N_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    assert isinstance(table, dict)
    return {str(k): str(v) for k, v in table.items()}


@pytest.fixture(scope="module")
def served_i18n(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("i18n") / "llamadesk.db"
    app = make_app(f"sqlite:///{db}", ScriptedBackend(handler=replying(REPLY, delay_s=0.01)))
    try:
        with serving(app) as served:
            yield served
    finally:
        app.close()


def _refuse(route: Route) -> None:
    route.abort()


@contextmanager
def localized_page(browser: Browser, locale: str) -> Iterator[Page]:
    # Twice the pixels: OCR reads 13 px UI text far better at 26 px.
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale=locale, device_scale_factor=2
    )
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    context.route(EXTERNAL, _refuse)
    try:
        yield context.new_page()
    finally:
        context.close()


def open_panels(page: Page, tr: dict[str, str]) -> None:
    """Open the closed accordions so that their labels are rendered."""
    open_settings(page, tr["settings.title"])
    expect(page.locator("#settings")).to_contain_text(tr["settings.system_prompt"])
    page.locator("#sidebar").get_by_text(tr["sidebar.rename"], exact=True).first.click()
    expect(page.locator("#sidebar").get_by_placeholder(tr["sidebar.rename_placeholder"])).to_be_visible()


def show_summarize_tab(page: Page, tr: dict[str, str]) -> None:
    page.get_by_role("tab", name=tr["summarize.title"]).click()
    expect(page.locator("#summarize")).to_be_visible()


def shown_text(page: Page) -> set[str]:
    return set(page.evaluate(SHOWN_TEXT))


def png(locator: Locator, path: Path) -> Path:
    locator.screenshot(path=str(path))
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 200, f"{path} is not a real PNG"
    return path


def wait_for_reply(page: Page) -> None:
    last_word = HINDI_REPLY.split()[-1]
    page.wait_for_function(f"(w) => ({LAST_BOT_TEXT})().includes(w)", arg=last_word)
    page.wait_for_function(CHATBOT_IDLE)


def bot_paragraphs(page: Page) -> Locator:
    """The reply's own paragraphs: the stats line after the reply's closing rule is left out."""
    return page.locator('#chatbot [data-testid="bot"]').last.locator("p:not(hr ~ p)")


# -- labels ---------------------------------------------------------------------


@pytest.mark.parametrize("locale", list(LOCALES))
def test_labels_follow_the_browser_locale(
    chromium: Browser, served_i18n: Served, locale: str, tmp_path: Path
) -> None:
    lang = LOCALES[locale]
    tr, en = translations(lang), translations("en")
    with localized_page(chromium, locale) as page:
        open_app(page, served_i18n.url)
        assert page.evaluate("navigator.language") == locale

        expect(page.locator("#new-chat")).to_have_text(tr["sidebar.new_chat"])
        expect(page.locator("#message textarea")).to_have_attribute("placeholder", tr["chat.placeholder"])
        expect(page.locator("#search textarea")).to_have_attribute(
            "placeholder", tr["sidebar.search_placeholder"]
        )
        expect(page.locator("#stop")).to_have_text(tr["chat.stop"])
        expect(page.locator("#settings")).to_contain_text(tr["settings.title"])
        expect(page.get_by_role("tab", name=tr["summarize.title"])).to_be_visible()

        open_panels(page, tr)
        # The label Gradio links to the slider's number box, so a screen reader says it too.
        expect(page.get_by_label(f"number input for {tr['settings.max_tokens']}")).to_be_visible()
        shown = shown_text(page)
        screenshot(page, tmp_path / f"chat-{locale}.png")
        show_summarize_tab(page, tr)
        expect(page.locator("#summarize")).to_have_text(tr["summarize.run"])
        shown |= shown_text(page)
        screenshot(page, tmp_path / f"summarize-{locale}.png")

    missing = {key: tr[key] for key in LABEL_KEYS if tr[key] not in shown}
    assert not missing, f"{locale}: translations not shown: {missing}"
    english = {key: en[key] for key in LABEL_KEYS if en[key] != tr[key] and en[key] in shown}
    assert not english, f"{locale}: English labels left: {english}"


@pytest.mark.parametrize("locale", ["th-TH", "hi-IN"])
def test_no_english_is_left_in_the_page(chromium: Browser, served_i18n: Served, locale: str) -> None:
    # Thai and Hindi pages should hold no Latin words at all, apart from names, so any English
    # the app shows (labels it forgot, server-built Markdown) stands out.
    tr = translations(LOCALES[locale])
    info = served_i18n.app.backends.get().info()
    names = sorted({info.model, info.kind, served_i18n.app.backends.default_name}, key=len, reverse=True)
    with localized_page(chromium, locale) as page:
        open_app(page, served_i18n.url)
        open_panels(page, tr)
        strings = set(page.evaluate(VISIBLE_STRINGS))
        show_summarize_tab(page, tr)
        strings |= set(page.evaluate(VISIBLE_STRINGS))

    allowed = set(tr.values())

    def english_in(text: str) -> bool:
        for name in names:
            text = text.replace(name, " ")
        return any(word not in NEUTRAL_WORDS for word in LATIN_WORD.findall(text))

    left = sorted(s for s in strings if s not in allowed and english_in(s))
    assert not left, f"{locale}: untranslated text in the page: {left}"


# -- glyphs -----------------------------------------------------------------------


@cache
def families_covering(script: str) -> frozenset[str]:
    """Font families that fontconfig says carry the script's glyphs."""
    codepoint = f"{ord(SCRIPT_SAMPLE[script]):04x}"
    listing = subprocess.run(
        ["fc-list", f":charset={codepoint}", "family"], capture_output=True, text=True, check=True
    ).stdout
    return frozenset(name.strip() for line in listing.splitlines() for name in line.split(","))


def rendering_fonts(page: Page, locator: Locator) -> dict[str, int]:
    """Glyphs per platform font that Chromium drew the element's text with."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        # CDP reports fonts for an element's own text only, so mark every element holding some.
        locator.evaluate(MARK_TEXT_PARENTS)
        try:
            root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
            nodes = cdp.send("DOM.querySelectorAll", {"nodeId": root, "selector": "[data-font-probe]"})
            glyphs: dict[str, int] = {}
            for node in nodes["nodeIds"]:
                for font in cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]:
                    family = str(font["familyName"])
                    glyphs[family] = glyphs.get(family, 0) + int(font["glyphCount"])
        finally:
            page.evaluate(UNMARK_TEXT_PARENTS)
        return glyphs
    finally:
        cdp.detach()


def assert_real_glyphs(page: Page, locator: Locator, script: str) -> None:
    text = locator.inner_text().strip()
    glyphs = rendering_fonts(page, locator)
    assert glyphs, f"Chromium reports no font for {text!r}"
    main = max(glyphs, key=lambda family: glyphs[family])
    if shutil.which("fc-list"):
        covering = families_covering(script)
        assert main in covering, (
            f"{text!r} is drawn mostly with {main!r}, which has no {script} glyphs; "
            f"fonts with them: {sorted(covering)}"
        )
    else:
        assert script in main.lower(), f"{text!r} is drawn with {glyphs}"

    width, tofu_width, one_box = locator.evaluate(TEXT_AND_TOFU_WIDTHS, [text, TOFU])
    assert one_box > 0
    # Boxes all share one advance; real Thai and Devanagari have zero-width marks and conjuncts.
    assert abs(width - tofu_width) > 0.1 * tofu_width, (
        f"{text!r} is {width:.1f} px wide, like {len(text)} missing-glyph boxes ({tofu_width:.1f} px)"
    )


def test_a_thai_message_and_its_reply_render_with_real_glyphs(
    chromium: Browser, served_i18n: Served, tmp_path: Path
) -> None:
    with localized_page(chromium, "th-TH") as page:
        open_app(page, served_i18n.url)
        send(page, THAI_MESSAGE)
        wait_for_reply(page)

        assert user_texts(page) == [THAI_MESSAGE]
        paragraphs = bot_paragraphs(page)
        assert paragraphs.all_inner_texts() == [THAI_REPLY, HINDI_REPLY]
        user = page.locator('#chatbot [data-testid="user"]').last

        assert_real_glyphs(page, user, "thai")
        assert_real_glyphs(page, paragraphs.nth(0), "thai")
        assert_real_glyphs(page, paragraphs.nth(1), "devanagari")
        assert_real_glyphs(page, page.locator("#new-chat"), "thai")
        png(user, tmp_path / "thai-message.png")
        png(paragraphs.nth(0), tmp_path / "thai-reply.png")
        png(paragraphs.nth(1), tmp_path / "hindi-reply.png")
        screenshot(page, tmp_path / "thai-chat.png")


# -- OCR ------------------------------------------------------------------------------


def tesseract(image: Path, lang: str) -> str:
    if shutil.which("tesseract") is None:
        pytest.fail("tesseract is missing: apt-get install tesseract-ocr " + " ".join(TESSERACT_PKG.values()))
    langs = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True).stdout.split()
    if lang not in langs:
        pytest.fail(f"tesseract has no {lang} data: apt-get install {TESSERACT_PKG[lang]}")
    result = subprocess.run(
        ["tesseract", str(image), "stdout", "-l", lang, "--psm", "6"],
        capture_output=True,
        text=True,
        check=True,
        env={"OMP_THREAD_LIMIT": "1", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    return result.stdout


def similarity(read: str, expected: str) -> float:
    """Character-level likeness, blind to spacing and to how ำ is composed."""

    def norm(s: str) -> str:
        return "".join(unicodedata.normalize("NFKC", s).split())

    return difflib.SequenceMatcher(None, norm(read), norm(expected), autojunk=False).ratio()


def text_crop(locator: Locator, image: Path) -> Path:
    """The element's screenshot cut down to its text, with a margin of background."""
    left, top, right, bottom = locator.evaluate(TEXT_BOX)
    assert right > left and bottom > top, "the element has no visible text"
    with Image.open(png(locator, image)) as shot:
        scale = shot.width / locator.evaluate("(el) => el.getBoundingClientRect().width")
        box = (
            max(0, int((left - CROP_MARGIN_PX) * scale)),
            max(0, int((top - CROP_MARGIN_PX) * scale)),
            min(shot.width, int((right + CROP_MARGIN_PX) * scale) + 1),
            min(shot.height, int((bottom + CROP_MARGIN_PX) * scale) + 1),
        )
        cropped = image.with_name(f"{image.stem}-text.png")
        shot.crop(box).save(cropped)
    return cropped


def assert_ocr_reads(locator: Locator, image: Path, lang: str) -> None:
    expected = locator.inner_text()
    read = tesseract(text_crop(locator, image), lang)
    score = similarity(read, expected)
    assert score >= OCR_MIN_SIMILARITY, f"OCR ({lang}) read {read!r} for {expected!r}: similarity {score:.2f}"


@pytest.mark.parametrize("locale", list(LOCALES))
def test_ocr_reads_the_translated_labels_back(
    chromium: Browser, served_i18n: Served, locale: str, tmp_path: Path
) -> None:
    lang = LOCALES[locale]
    with localized_page(chromium, locale) as page:
        open_app(page, served_i18n.url)
        buttons = page.locator("#stop").locator("xpath=..")  # stop, regenerate, edit: one row
        expect(buttons).to_contain_text(translations(lang)["chat.edit_last"])
        assert_ocr_reads(buttons, tmp_path / f"buttons-{locale}.png", TESSERACT_LANG[lang])
        assert_ocr_reads(page.locator("#new-chat"), tmp_path / f"new-chat-{locale}.png", TESSERACT_LANG[lang])


def test_ocr_reads_thai_and_hindi_chat_text_back(
    chromium: Browser, served_i18n: Served, tmp_path: Path
) -> None:
    with localized_page(chromium, "th-TH") as page:
        open_app(page, served_i18n.url)
        send(page, THAI_MESSAGE)
        wait_for_reply(page)
        paragraphs = bot_paragraphs(page)
        assert_ocr_reads(page.locator('#chatbot [data-testid="user"]').last, tmp_path / "message.png", "tha")
        assert_ocr_reads(paragraphs.nth(0), tmp_path / "reply-thai.png", "tha")
        assert_ocr_reads(paragraphs.nth(1), tmp_path / "reply-hindi.png", "hin")

        # The control: the same paragraph drawn as missing-glyph boxes must fail the threshold.
        thai = paragraphs.nth(0)
        thai.evaluate("(el, text) => { el.textContent = text; }", TOFU * len(THAI_REPLY))
        read = tesseract(text_crop(thai, tmp_path / "reply-tofu.png"), "tha")
        assert similarity(read, THAI_REPLY) < OCR_MIN_SIMILARITY, f"OCR read tofu as {read!r}"
