"""Language-detection benchmark on the hand-written test set in tests/app/language_cases.py.

Short turns are scored with no history and with the conversation's language as `previous` (the realistic
case). Raw langdetect (seeded, unrestricted) is reported beside it for comparison.

    python -m tests.benchmarks.bench_language
"""

from __future__ import annotations

import time
from collections.abc import Callable

from app.language import SUPPORTED, detect, raw_langdetect
from tests.app.language_cases import SENTENCES, SHORT_TURNS, SHORT_TURNS_HOLDOUT
from tests.benchmarks.common import Row, markdown_table

SENTENCE_TARGET = 0.98
SHORT_TARGET = 0.90
RAW_NOTE = "seeded, unrestricted (all 55 profiles)"

Guess = Callable[[str, str], str | None]  # (text, true language) → guessed language


def _no_history(text: str, lang: str) -> str | None:
    return detect(text)


def _with_previous(text: str, lang: str) -> str | None:
    return detect(text, lang)


def _raw(text: str, lang: str) -> str | None:
    return raw_langdetect(text)


def _hits(cases: dict[str, list[str]], guess: Guess) -> dict[str, tuple[int, int]]:
    return {lang: (sum(guess(t, lang) == lang for t in texts), len(texts)) for lang, texts in cases.items()}


def _overall(hits: dict[str, tuple[int, int]]) -> float:
    return sum(h for h, _ in hits.values()) / sum(n for _, n in hits.values())


def _target_row(metric: str, value: float, target: float, note: str = "") -> Row:
    return Row("language", metric, value, "ratio", f">= {target:.2f}", value >= target, note)


def _per_language_rows(label: str, hits: dict[str, tuple[int, int]], target: float | None) -> list[Row]:
    rows = []
    for lang in SUPPORTED:
        hit, total = hits[lang]
        value = hit / total
        note = f"{hit}/{total}"
        if target is None:
            rows.append(Row("language", f"{label}, {lang}", value, "ratio", note=note))
        else:
            rows.append(_target_row(f"{label}, {lang}", value, target, note))
    return rows


def _latency_row() -> Row:
    texts = [t for lang in SUPPORTED for t in SENTENCES[lang] + SHORT_TURNS[lang]]
    detect(texts[0])  # profiles load once; not part of the per-call cost
    started = time.perf_counter()
    for text in texts:
        detect(text)
    per_call_ms = (time.perf_counter() - started) * 1000 / len(texts)
    return Row("language", "detect() mean latency", per_call_ms, "ms", note=f"{len(texts)} texts")


def run() -> list[Row]:
    sentences = _hits(SENTENCES, _no_history)
    short_alone = _hits(SHORT_TURNS, _no_history)
    short_previous = _hits(SHORT_TURNS, _with_previous)
    holdout_alone = _hits(SHORT_TURNS_HOLDOUT, _no_history)
    holdout_previous = _hits(SHORT_TURNS_HOLDOUT, _with_previous)
    raw_short = _hits(SHORT_TURNS, _raw)
    raw_sentences = _hits(SENTENCES, _raw)
    return [
        *_per_language_rows("sentences", sentences, SENTENCE_TARGET),
        *_per_language_rows("short turns, no history", short_alone, None),
        *_per_language_rows("short turns, previous set", short_previous, None),
        _target_row("sentences, overall", _overall(sentences), SENTENCE_TARGET),
        _target_row("short turns, no history, overall", _overall(short_alone), SHORT_TARGET),
        _target_row("short turns, previous set, overall", _overall(short_previous), SHORT_TARGET),
        Row(
            "language",
            "holdout short turns, no history",
            _overall(holdout_alone),
            "ratio",
            note="written after the lexicon was frozen; misses are abstentions (None)",
        ),
        Row("language", "holdout short turns, previous set", _overall(holdout_previous), "ratio"),
        Row("language", "raw langdetect, short turns", _overall(raw_short), "ratio", note=RAW_NOTE),
        Row("language", "raw langdetect, sentences", _overall(raw_sentences), "ratio", note=RAW_NOTE),
        _latency_row(),
    ]


if __name__ == "__main__":
    print(markdown_table(run()))
