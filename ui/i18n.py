"""The UI's translations in the browser (gr.I18n), from the app's one message table."""

from __future__ import annotations

from functools import cache
from importlib import resources

import gradio as gr

from app.errors import render
from app.language import SUPPORTED, normalize_code
from app.messages import FALLBACK, tables, translations
from app.messages import text as text

__all__ = ["error_text", "i18n", "request_language", "t", "text"]


@cache
def gradio_translations() -> dict[str, dict[str, str]]:
    """Gradio's own words (its footer panel) for the languages Gradio ships none for."""
    return tables(resources.files("assets") / "i18n" / "gradio")


@cache
def i18n() -> gr.I18n:
    extra = gradio_translations()
    return gr.I18n(**{lang: {**extra.get(lang, {}), **table} for lang, table in translations().items()})


def t(key: str) -> gr.i18n.I18nData:
    """A label translated in the browser, by its locale."""
    return i18n()(key)


def request_language(request: gr.Request | None) -> str:
    """The first of the browser's languages that the app speaks, for text built on the server."""
    header = ""
    if request is not None:
        header = str((getattr(request, "headers", None) or {}).get("accept-language", ""))
    for part in header.split(","):
        code = normalize_code(part.split(";")[0].strip())
        if code in SUPPORTED:
            return code
    return FALLBACK


def error_text(exc: BaseException, request: gr.Request | None) -> str:
    return render(exc, request_language(request))
