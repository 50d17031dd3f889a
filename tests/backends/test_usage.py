"""Usage: the backend's own token counts, or, for a stream cut before they arrive, what it wrote."""

from __future__ import annotations

from backends.base import Delta, Usage


def gathered(*deltas: Delta) -> Usage:
    usage = Usage()
    for delta in deltas:
        usage.add(delta)
    return usage


def never_counted() -> int:
    raise AssertionError("the prompt was counted although the backend reported it")


def test_a_reported_usage_is_taken_as_it_is() -> None:
    usage = gathered(Delta("a"), Delta("b"), Delta("", "stop", prompt_tokens=40, completion_tokens=7))
    assert usage.known and usage.settled(never_counted) == (40, 7)


def test_a_stream_cut_before_its_usage_counts_the_prompt_and_the_text_it_wrote() -> None:
    usage = gathered(Delta("a"), Delta(""), Delta("b"), Delta("c"))
    assert usage.known and usage.settled(lambda: 12) == (12, 3)


def test_a_stream_that_wrote_nothing_and_reported_nothing_has_nothing_to_count() -> None:
    assert not gathered(Delta(""), Delta("")).known
