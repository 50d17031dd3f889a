"""The UI's translations, from assets/i18n/<lang>.json."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable

import gradio as gr

from app.language import SUPPORTED


@cache
def translations() -> dict[str, dict[str, str]]:
    return _tables(resources.files("assets") / "i18n")


@cache
def gradio_translations() -> dict[str, dict[str, str]]:
    """Gradio's own words (its footer panel) for the languages Gradio ships none for."""
    return _tables(resources.files("assets") / "i18n" / "gradio")


def _tables(folder: Traversable) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for lang in SUPPORTED:
        file = folder / f"{lang}.json"
        if file.is_file():
            found[lang] = json.loads(file.read_text(encoding="utf-8"))
    return found


@cache
def i18n() -> gr.I18n:
    extra = gradio_translations()
    return gr.I18n(**{lang: {**extra.get(lang, {}), **table} for lang, table in translations().items()})


def t(key: str) -> gr.i18n.I18nData:
    """A label translated in the browser, by its locale."""
    return i18n()(key)


def text(key: str, lang: str = "en", **values: object) -> str:
    """A string rendered on the server, for messages built at run time."""
    table = translations().get(lang) or translations()["en"]
    template = table.get(key) or translations()["en"].get(key, key)
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template
