"""Continue extends a stopped reply: no restart, no repeated words, no glued words."""

from __future__ import annotations

from app.continuation import ContinuationJoiner

STOPPED = "In a medieval kingdom, a dragon guarded the mountain pass. This dragon was"


def joined(prefix: str, pieces: list[str]) -> str:
    joiner = ContinuationJoiner(prefix)
    return prefix + "".join(joiner.feed(p) for p in pieces) + joiner.flush()


def test_a_missing_space_is_added_between_the_old_and_the_new_text() -> None:
    assert joined(STOPPED, ["old", " and", " wise."]) == STOPPED + " old and wise."
    assert joined("It ended", [".", " Then"]) == "It ended. Then"


def test_a_restart_from_the_opening_is_dropped() -> None:
    restart = ["In a medieval", " kingdom, a dragon guarded", " the mountain pass. This dragon was", " old."]
    assert joined(STOPPED, restart) == STOPPED + " old."


def test_repeated_last_words_are_dropped() -> None:
    assert joined(STOPPED, ["This dragon was", " very old."]) == STOPPED + " very old."


def test_a_new_text_that_only_starts_like_the_opening_is_kept() -> None:
    assert joined(STOPPED, ["In", " the end it slept."]) == STOPPED + " In the end it slept."
