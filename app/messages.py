"""The one table of user-facing texts (assets/i18n/<lang>.json) and how a text is filled in.

Every frontend renders from here: the Gradio app (server-side messages and browser labels) and the
command line. A value missing from a template shows as "?" rather than breaking the message.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable

from app.language import SUPPORTED, normalize_code

FALLBACK = "en"


@cache
def translations() -> dict[str, dict[str, str]]:
    return tables(resources.files("assets") / "i18n")


def tables(folder: Traversable) -> dict[str, dict[str, str]]:
    """The <lang>.json tables in `folder`, by language code."""
    found: dict[str, dict[str, str]] = {}
    for lang in SUPPORTED:
        file = folder / f"{lang}.json"
        if file.is_file():
            found[lang] = json.loads(file.read_text(encoding="utf-8"))
    return found


class _Missing(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "?"


def has(key: str) -> bool:
    return key in translations()[FALLBACK]


def template(key: str, lang: str | None = FALLBACK) -> str:
    """`key` in `lang`; regional and unknown codes fall back ("pt-BR" → pt, "ja" → en)."""
    table = translations().get(normalize_code(lang) or FALLBACK) or translations()[FALLBACK]
    return table.get(key) or translations()[FALLBACK].get(key, key)


def text(key: str, lang: str | None = FALLBACK, **values: object) -> str:
    """`key` in `lang`, filled in with `values`."""
    return template(key, lang).format_map(_Missing(values))
