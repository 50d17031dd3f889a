"""The UI translations in assets/i18n: same keys and placeholders as English, and really translated."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app.language import SUPPORTED, detect

I18N = Path(__file__).resolve().parents[2] / "assets" / "i18n"
TRANSLATED = [lang for lang in SUPPORTED if lang != "en"]
PLACEHOLDER = re.compile(r"\{(\w*)\}")
# Names, formats and command-line syntax stay as they are in every language.
PROTECTED = [
    "llamadesk",
    "PDF",
    "GGUF",
    "OCR",
    "ocrmypdf",
    "--model",
    "SmolLM2-135M",
    "Llama-3.1-8B-Instruct-Q4_K_M.gguf",
    "Llama 3.1 8B Instruct",
    "Hugging Face",
    "Markdown",
]
# A few short strings may legitimately equal the English ("llamadesk", "Backend", "Plan", fr "Conversations").
MAX_IDENTICAL = 4
MAX_IDENTICAL_LENGTH = 16


def _load(lang: str) -> dict[str, str]:
    data = json.loads((I18N / f"{lang}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


def test_every_supported_language_has_a_file() -> None:
    assert sorted(p.stem for p in I18N.glob("*.json")) == sorted(SUPPORTED)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_same_keys_as_english(lang: str) -> None:
    assert list(_load(lang)) == list(_load("en"))


@pytest.mark.parametrize("lang", TRANSLATED)
def test_values_are_non_empty_strings(lang: str) -> None:
    for key, value in _load(lang).items():
        assert isinstance(value, str) and value.strip() == value and value, key


@pytest.mark.parametrize("lang", TRANSLATED)
def test_placeholders_match_english(lang: str) -> None:
    english = _load("en")
    for key, value in _load(lang).items():
        assert _placeholders(value) == _placeholders(english[key]), key
        value.format(**dict.fromkeys(_placeholders(value), 1))  # well-formed braces


@pytest.mark.parametrize("lang", TRANSLATED)
def test_protected_terms_are_kept(lang: str) -> None:
    english = _load("en")
    for key, value in _load(lang).items():
        for term in PROTECTED:
            if term in english[key]:
                assert term in value, (key, term)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_is_not_a_copy_of_english(lang: str) -> None:
    english = _load("en")
    same = {key: value for key, value in _load(lang).items() if value == english[key]}
    assert len(same) <= MAX_IDENTICAL, same
    assert all(len(value) <= MAX_IDENTICAL_LENGTH for value in same.values()), same


@pytest.mark.parametrize("lang", TRANSLATED)
def test_file_is_written_in_its_language(lang: str) -> None:
    """Catches a file pasted into the wrong language: the longer strings must detect as the language."""
    long_values = [v for v in _load(lang).values() if len(v.split()) >= 8 or (lang == "th" and len(v) > 40)]
    found = [detect(value) for value in long_values]
    assert found.count(lang) / len(found) >= 0.9, list(zip(long_values, found, strict=True))
