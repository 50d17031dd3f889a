"""Text from models, users and documents, made safe to show on the page.

Everything passes through ``safe_html``: Markdown is rendered on the server (raw HTML in it is
shown as text), then the HTML is cleaned by nh3 with a strict allow-list. Escaping before
Markdown is the wrong layer, since Markdown's own escapes can rebuild the markup; cleaning the
final HTML is not. Images are never fetched: each one becomes a link to click. ``harden``
makes every Chatbot and Markdown component of a page take this HTML as it is, with no second
Markdown pass, no LaTeX and Gradio's own sanitizer still on.
"""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Iterator
from typing import Any

import gradio as gr
import nh3
from gradio import component_meta
from gradio.components.chatbot import TextMessage
from markdown_it import MarkdownIt
from markdown_it.token import Token

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "li",
        "strong", "em", "s", "del", "code", "pre", "a", "table", "thead", "tbody", "tr", "th", "td",
    }
)  # fmt: skip
LINK_SCHEMES = ("http://", "https://", "mailto:")
I18N_MARKER = "__i18n__"  # how Gradio marks a value the browser translates
# Wraps every piece of rendered HTML, so that HTML coming back (the chat history the browser
# sends with an event) is cleaned again rather than rendered as Markdown a second time.
WRAPPER_OPEN = '<div class="llamadesk-md">'
WRAPPER_CLOSE = "</div>"
# Bidirectional overrides reorder what is shown ("Trojan Source"); no chat text needs them.
_BIDI_OVERRIDES = re.compile("[\u202a-\u202e]")
_CODE_CLASS = re.compile(r"^language-[A-Za-z0-9_+-]{1,32}$")
_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def _image_as_link(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    """An image is shown as a link to it: nothing is fetched until the user clicks."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    label = token.content or src
    return f'<a href="{html.escape(src)}">🖼 {html.escape(label)}</a>'


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _image_as_link)
    return md


_MD = _markdown()


def _attribute(tag: str, name: str, value: str) -> str | None:
    if name == "href":
        return value if value.strip().lower().startswith(LINK_SCHEMES) else None
    if tag == "code" and name == "class":
        return value if _CODE_CLASS.match(value) else None
    return value


_CLEANER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags={"script", "style"},
    attributes={"a": {"href", "title"}, "code": {"class"}, "th": {"align"}, "td": {"align"}},
    attribute_filter=_attribute,
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)


def sanitize(fragment: str) -> str:
    """Clean an HTML fragment with the allow-list; the one sanitizer every render site ends in."""
    return _CLEANER.clean(_BIDI_OVERRIDES.sub("", fragment))


def safe_html(text: str) -> str:
    """Markdown (or HTML this function made before) → allow-listed HTML, on one line.

    One line because gr.Markdown runs its own Markdown parser over the value: a single line that
    starts with a block tag is one HTML block to it, passed through untouched (then sanitized by
    Gradio again). Newlines become character references, which render the same.
    """
    if text.startswith(WRAPPER_OPEN) and text.endswith(WRAPPER_CLOSE):
        cleaned = sanitize(text[len(WRAPPER_OPEN) : -len(WRAPPER_CLOSE)])
    else:
        cleaned = sanitize(_MD.render(text))
    return WRAPPER_OPEN + cleaned.replace("\r", "").replace("\n", "&#10;") + WRAPPER_CLOSE


def literal(text: str) -> str:
    """Markdown that shows ``text`` exactly as written: a PDF's words, a file name, an error."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", " ".join(text.split()))


def text_html(text: str) -> str:
    """Plain text for a sink that takes HTML (Gradio's toasts): shown as written, never as markup.

    API clients read the same message, so it stays text, with only ``<``, ``>`` and ``&`` escaped.
    """
    return sanitize(html.escape(text, quote=False))


# -- the page's components --------------------------------------------------------------------------

# Gradio makes fresh component objects from a component's class and constructor arguments (each
# gr.update does), so harden() changes both. The classes keep their parents' __init__: Gradio
# reads its signature to describe the component to the browser.
_SAFE_SETTINGS: dict[str, Any] = {"sanitize_html": True, "latex_delimiters": []}  # no KaTeX markup


@contextlib.contextmanager
def _no_type_stub() -> Iterator[None]:
    """Gradio writes a .pyi stub beside the source of each component class defined; ui/markup.pyi
    would then hide this module from type checkers. The two classes below are made without it."""
    write_stub = component_meta.create_or_modify_pyi
    component_meta.create_or_modify_pyi = lambda *_args: None
    try:
        yield
    finally:
        component_meta.create_or_modify_pyi = write_stub


with _no_type_stub():

    class SafeChatbot(gr.Chatbot):
        """A Chatbot whose messages are final HTML from safe_html (no Markdown pass in the browser)."""

        is_template = True  # the browser still draws it as a Chatbot

        def postprocess(self, value: Any) -> Any:
            data = super().postprocess(value)
            for message in data.root:
                for part in message.content:
                    if isinstance(part, TextMessage):
                        part.text = safe_html(part.text)
                if message.metadata and message.metadata.get("title"):
                    message.metadata["title"] = text_html(str(message.metadata["title"]))
            return data

    class SafeMarkdown(gr.Markdown):
        """A Markdown component whose value is final HTML from safe_html."""

        is_template = True

        def postprocess(self, value: Any) -> Any:
            out = super().postprocess(value)
            # A translation marker (gr.Markdown(t("key"))) is replaced by the browser with text from
            # assets/i18n; rendering it here would break the marker and show it raw.
            if not isinstance(out, str) or not out or out.startswith(I18N_MARKER):
                return out
            return safe_html(out)


_SAFE_CLASSES: dict[type, type] = {gr.Chatbot: SafeChatbot, gr.Markdown: SafeMarkdown}


def harden(demo: gr.Blocks) -> int:
    """Route every Chatbot and Markdown of ``demo`` through safe_html; returns how many.

    Done once before launch, over all blocks, so a component added later is covered too.
    """
    count = 0
    for block in demo.blocks.values():
        safe = _SAFE_CLASSES.get(type(block))
        if safe is None:
            continue
        block.__class__ = safe
        settings = {**_SAFE_SETTINGS, **({"render_markdown": False} if safe is SafeChatbot else {})}
        for name, value in settings.items():
            setattr(block, name, value)
            block.constructor_args[name] = value
        value = getattr(block, "value", None)
        if isinstance(value, str) and value and not value.startswith(I18N_MARKER):
            block.value = safe_html(value)  # type: ignore[union-attr]
        count += 1
    return count
