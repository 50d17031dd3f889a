"""The loop guard on a streamed reply: the cut a check of the whole text makes, at one read per sentence."""

from __future__ import annotations

import pytest

from app import output_hygiene
from app.output_hygiene import LoopGuard, loop_start

SENTENCE = "The report covers the annual budget of the city council."
CIRCLING = " ".join(
    f"Section {i} again explains how the annual budget of the city council is spent on item {i}."
    for i in range(6)
)
VARIED = " ".join(f"Point {i} is about topic number {i * 7} and nothing else at all." for i in range(80))


def streamed_cut(text: str, piece: int = 3) -> int | None:
    """Where the guard cuts `text` streamed `piece` characters at a time."""
    guard = LoopGuard()
    for end in range(piece, len(text) + piece, piece):
        cut = guard.cut(text[:end])
        if cut is not None:
            return cut
    return None


@pytest.mark.parametrize(
    "text",
    [
        f"Sure. {' '.join([SENTENCE] * 6)} And more text follows here.",
        CIRCLING + " The end is near now.",
        VARIED,
    ],
    ids=["a sentence said again", "a phrase circled", "no loop"],
)
def test_the_stream_is_cut_where_a_check_of_the_whole_text_would_cut_it(text: str) -> None:
    assert streamed_cut(text) == loop_start(text)


def test_a_long_reply_reads_each_sentence_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every check once read the whole reply again: a 1,024-token reply cost about 170 full scans.
    reads = 0
    add = output_hygiene.PhraseCount.add

    def counted(self: output_hygiene.PhraseCount, sentence: str) -> bool:
        nonlocal reads
        reads += 1
        return add(self, sentence)

    monkeypatch.setattr(output_hygiene.PhraseCount, "add", counted)
    assert streamed_cut(VARIED) is None
    assert reads <= 80  # the sentences of VARIED; the last is read only once it is followed
