"""Language detection: accuracy on the hand-written test set, robustness, reply-language policy."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import language
from app.language import (
    LANGUAGE_NAMES,
    SUPPORTED,
    detect,
    detect_with_confidence,
    normalize_code,
    resolve_reply_language,
)
from tests.app.language_cases import (
    AMBIGUOUS_TURNS,
    MARATHI_NEPALI,
    SENTENCES,
    SHORT_TURNS,
    SHORT_TURNS_HOLDOUT,
)

SENTENCE_TARGET = 0.98
SHORT_TARGET = 0.90


def _accuracy(cases: dict[str, list[str]], with_previous: bool) -> dict[str, float]:
    return {
        lang: sum(detect(text, lang if with_previous else None) == lang for text in texts) / len(texts)
        for lang, texts in cases.items()
    }


def _overall(cases: dict[str, list[str]], with_previous: bool) -> float:
    hits = sum(
        detect(text, lang if with_previous else None) == lang
        for lang, texts in cases.items()
        for text in texts
    )
    return hits / sum(len(texts) for texts in cases.values())


# -- the test set itself ------------------------------------------------------------------------------------


def test_test_set_covers_every_language_with_enough_cases() -> None:
    assert set(SENTENCES) == set(SUPPORTED) == set(SHORT_TURNS)
    for lang in SUPPORTED:
        assert len(SENTENCES[lang]) >= 12, lang
        assert len(SHORT_TURNS[lang]) >= 8, lang
        assert all(len(text.split()) >= 6 or lang == "th" for text in SENTENCES[lang]), lang
        assert all(1 <= len(text.split()) <= 4 for text in SHORT_TURNS[lang]), lang


# -- accuracy -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", SUPPORTED)
def test_sentence_accuracy_per_language(lang: str) -> None:
    assert _accuracy({lang: SENTENCES[lang]}, with_previous=False)[lang] >= SENTENCE_TARGET


def test_sentence_accuracy_overall() -> None:
    assert _overall(SENTENCES, with_previous=False) >= SENTENCE_TARGET


def test_short_turn_accuracy_without_history() -> None:
    per_language = _accuracy(SHORT_TURNS, with_previous=False)
    assert _overall(SHORT_TURNS, with_previous=False) >= SHORT_TARGET, per_language
    # Per language a little looser: one ambiguous reply is 1/12 of a language's short turns.
    assert min(per_language.values()) >= 0.75, per_language


def test_short_turn_accuracy_with_previous_language() -> None:
    per_language = _accuracy(SHORT_TURNS, with_previous=True)
    assert _overall(SHORT_TURNS, with_previous=True) >= SHORT_TARGET, per_language
    assert min(per_language.values()) >= SHORT_TARGET, per_language


def test_sentences_win_over_a_different_previous_language() -> None:
    for lang, texts in SENTENCES.items():
        other = "de" if lang == "en" else "en"
        assert [detect(text, other) for text in texts] == [lang] * len(texts)


# -- rules --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", MARATHI_NEPALI)
def test_marathi_and_nepali_count_as_hindi(text: str) -> None:
    assert detect(text) == "hi"
    assert detect(text, "en") == "hi"


def test_script_rules_override_previous_language() -> None:
    assert detect("धन्यवाद", "en") == "hi"
    assert detect("ขอบคุณครับ", "fr") == "th"
    assert detect("मेरा Python code काम नहीं कर रहा, error आ रहा है") == "hi"


@pytest.mark.parametrize("text", AMBIGUOUS_TURNS)
def test_ambiguous_short_turns_are_not_guessed(text: str) -> None:
    assert detect(text) is None
    assert detect(text, "de") == "de"
    assert detect(text, "pt") == "pt"


def test_short_turn_keeps_previous_language() -> None:
    assert detect("gracias", "en") == "en"  # one word is not enough to switch
    assert detect("no", "it") == "it"
    assert detect("super, merci", "fr") == "fr"


def test_short_turn_switches_on_clear_evidence() -> None:
    assert detect("danke schön", "en") == "de"
    assert detect("merci beaucoup", "en") == "fr"
    assert detect("muchas gracias", "pt") == "es"


def test_lexicon_handles_accents_and_shared_words() -> None:
    assert detect("sí, claro") == "es"
    assert detect("sim, claro") == "pt"
    assert detect("sì, certo") == "it"
    assert detect("por que nao?") == "pt"  # typed without the tilde
    assert detect("¿por que no?") == "es"
    assert detect("d'accordo") == "it"
    assert detect("d'accord") == "fr"


def test_strips_code_urls_numbers_and_emoji() -> None:
    german = "Kannst du mir erklären, warum dieser Code nicht funktioniert und was ich ändern muss?"
    noisy = (
        f"{german}\n```python\nfor item in items:\n    print(item)\n```\nhttps://example.com/docs 42 😀 `x=1`"
    )
    assert detect(noisy) == "de"
    assert detect("```\nthe quick brown fox jumps over the lazy dog\n```", "fr") == "fr"


# -- robustness ---------------------------------------------------------------------------------------------

EDGE_INPUTS = ["", "123", "```x=1```", "😀", "   ", "https://x.y", "!!! ???", "3.14 + 2", "`ls -la`", "\n\t"]


@pytest.mark.parametrize("text", EDGE_INPUTS)
def test_never_raises_and_returns_previous(text: str) -> None:
    assert detect(text) is None
    assert detect(text, "es") == "es"
    assert detect_with_confidence(text) == (None, 0.0)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60), previous=st.sampled_from([None, *SUPPORTED]))
def test_never_raises_on_any_text(text: str, previous: str | None) -> None:
    assert detect(text, previous) in {*SUPPORTED, previous}
    found, confidence = detect_with_confidence(text)
    assert found in {*SUPPORTED, None} and 0.0 <= confidence <= 1.0


def test_unsupported_script_returns_previous() -> None:
    assert detect("これは日本語の文章です。", "fr") == "fr"
    assert detect("Это предложение написано по-русски.") is None


def test_unknown_previous_is_ignored() -> None:
    assert detect("", "ja") is None
    assert detect("", "pt-BR") == "pt"


def test_the_supported_only_langdetect_gives_the_library_s_exact_numbers() -> None:
    # The fast loop leaves out the zero-prior languages; every probability must still be langdetect's own.
    texts = [
        text
        for cases in (SENTENCES, SHORT_TURNS, SHORT_TURNS_HOLDOUT)
        for group in cases.values()
        for text in group
    ]
    texts += [
        *AMBIGUOUS_TURNS,
        *MARATHI_NEPALI,
        "Summarize the design document.",
        "SHOUTED ENGLISH TEXT HERE",
    ]
    texts += ["x" * 3000, "12345 !!!", "", "Der Bericht est très intéressante, però no sé"]
    for text in texts:
        assert language._langdetect(text) == language.library_langdetect(text), text


def test_a_lexicon_lead_decides_exactly_as_langdetect_would(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [
        *(
            t
            for cases in (SENTENCES, SHORT_TURNS, SHORT_TURNS_HOLDOUT)
            for group in cases.values()
            for t in group
        ),
        "Summarize the design document.",
        "Can you explain this code",
        "Fasse das Dokument bitte zusammen",
        "Explain tensor parallelism to me please",
        "Je ne sais pas quoi faire",
        "the der le il o el la",
    ]
    mid_length = [t for t in texts if language.SHORT_WORDS <= len(t.split()) < language.LONG_WORDS]
    histories = [None, *SUPPORTED]
    shortcut = [detect(text, previous) for text in mid_length for previous in histories]
    decided = [language._analyse(text) for text in mid_length]
    monkeypatch.setattr(language, "_lexicon_decides", lambda _lexicon: None)
    assert [detect(text, previous) for text in mid_length for previous in histories] == shortcut
    with_langdetect = [language._analyse(text) for text in mid_length]
    # The shortcut's confidence is a floor of the full one, so MIN_CONFIDENCE decisions agree.
    for fast, full in zip(decided, with_langdetect, strict=True):
        assert fast.lang == full.lang and fast.confidence <= full.confidence + 1e-12
    assert sum(f.confidence != w.confidence for f, w in zip(decided, with_langdetect, strict=True)) >= 4


def test_deterministic_across_calls_and_threads() -> None:
    texts = [t for lang in SUPPORTED for t in (SENTENCES[lang][0], SHORT_TURNS[lang][0])]
    first = [detect_with_confidence(t) for t in texts]
    for _ in range(20):
        assert [detect_with_confidence(t) for t in texts] == first
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(detect_with_confidence, texts * 5)) == first * 5


def test_profiles_load_once_under_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(language, "_factory", None)
    text = SENTENCES["it"][1]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(lambda _: detect(text), range(16))) == {"it"}


def test_long_documents_are_bounded() -> None:
    text = " ".join(SENTENCES["fr"]) * 2_000  # about 2 MB
    started = time.monotonic()
    assert detect(text) == "fr"
    assert time.monotonic() - started < 5


def test_confidence_is_a_probability() -> None:
    for lang in SUPPORTED:
        found, confidence = detect_with_confidence(SENTENCES[lang][2])
        assert found == lang
        assert 0.5 <= confidence <= 1.0


# -- policy -------------------------------------------------------------------------------------------------


def test_policy_auto_follows_the_message() -> None:
    assert resolve_reply_language("auto", SENTENCES["es"][0], "en") == "es"
    assert resolve_reply_language("auto", SENTENCES["th"][0], None) == "th"


def test_policy_auto_keeps_previous_on_short_or_empty_turns() -> None:
    assert resolve_reply_language("auto", "ok", "de") == "de"
    assert resolve_reply_language("auto", "grazie", "en") == "en"
    assert resolve_reply_language("auto", "", "hi") == "hi"


def test_policy_auto_defaults_to_english() -> None:
    assert resolve_reply_language("auto", "ok", None) == "en"
    assert resolve_reply_language("auto", "", None) == "en"


def test_policy_pinned_language_wins() -> None:
    assert resolve_reply_language("fr", SENTENCES["de"][0], "de") == "fr"
    assert resolve_reply_language("pt-BR", "hello there", None) == "pt"
    assert resolve_reply_language("AUTO", SENTENCES["it"][0], None) == "it"


def test_policy_rejects_unsupported_setting() -> None:
    with pytest.raises(ValueError, match="unsupported language"):
        resolve_reply_language("ja", "hello", None)


def test_normalize_code() -> None:
    assert normalize_code("de") == "de"
    assert normalize_code("pt_BR") == "pt"
    assert normalize_code("EN-gb") == "en"
    assert normalize_code("German") == "de"
    assert normalize_code("español") == "es"
    assert normalize_code("हिन्दी") == "hi"
    assert normalize_code("ja") is None
    assert normalize_code("") is None
    assert normalize_code(None) is None


# -- texts --------------------------------------------------------------------------------------------------


def test_language_names() -> None:
    assert tuple(LANGUAGE_NAMES) == SUPPORTED
    assert LANGUAGE_NAMES["de"] == ("German", "Deutsch")
