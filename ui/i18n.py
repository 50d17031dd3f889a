"""The UI's translations in the browser (gr.I18n), from the app's one message table."""

from __future__ import annotations

from functools import cache

import gradio as gr

from app.errors import render
from app.messages import FALLBACK, translations
from app.messages import text as text

__all__ = ["error_text", "i18n", "request_language", "t", "text"]


@cache
def i18n() -> gr.I18n:
    return gr.I18n(**translations())


def t(key: str) -> gr.i18n.I18nData:
    """A label translated in the browser, by its locale."""
    return i18n()(key)


def request_language(request: gr.Request | None) -> str:
    """The browser's first language, for messages rendered on the server."""
    header = ""
    if request is not None:
        header = str((getattr(request, "headers", None) or {}).get("accept-language", ""))
    first = header.split(",")[0].split(";")[0].strip()
    return first or FALLBACK


def error_text(exc: BaseException, request: gr.Request | None) -> str:
    return render(exc, request_language(request))
