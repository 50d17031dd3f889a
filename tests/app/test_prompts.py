"""Prompt texts: one module, written in their language, and part of every summary cache key."""

from __future__ import annotations

import pytest

from app import prompts
from app.language import SUPPORTED, detect
from app.prompts import reply_instruction, summary_instruction, title_prompt
from app.summarize import citations


@pytest.mark.parametrize("lang", SUPPORTED)
def test_prompt_texts_are_written_in_their_language(lang: str) -> None:
    for text in (reply_instruction(lang), title_prompt(lang), summary_instruction(lang)):
        assert text.strip() == text and text
        assert detect(text) == lang, text


def test_prompt_texts_differ_per_language() -> None:
    for build in (reply_instruction, title_prompt, summary_instruction):
        assert len({build(lang) for lang in SUPPORTED}) == len(SUPPORTED)


def test_prompt_texts_fall_back_to_english() -> None:
    assert reply_instruction("ja") == reply_instruction("en")
    assert title_prompt("pt-BR") == title_prompt("pt")


def test_no_prompt_carries_a_page_number_a_model_could_copy() -> None:
    """The old prompts said "cite … in the form (pp. 12–15)", and models cited pages 12–15."""
    texts = [value for name, value in vars(prompts).items() if name.isupper() and isinstance(value, str)]
    assert len(texts) > 10
    for text in texts:
        assert citations(text, 10**6) == [], text


def test_editing_a_prompt_changes_the_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    before = prompts.fingerprint()
    assert prompts.fingerprint() == before, "stable between calls"
    monkeypatch.setattr(prompts, "MAP_TASK", prompts.MAP_TASK + " Be brief.")
    assert prompts.fingerprint() != before
    monkeypatch.undo()
    monkeypatch.setitem(prompts._SUMMARY, "de", "Fasse kurz zusammen.")
    assert prompts.fingerprint() != before, "the per-language tables count too"
