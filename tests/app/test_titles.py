"""Conversation titles: clean excerpts, no echoed instruction, rebuilt after an edit, never two alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from app.chat import ChatSettings
from app.core import App
from app.prompts import title_prompt
from app.titles import clean_model_title, distinct_title, echoes, excerpt_title
from backends.scripted import ScriptedBackend, ScriptedRequest, replying
from tests.conftest import make_app

NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_excerpt_ends_at_a_word_with_an_ellipsis() -> None:
    text = "Please explain how the medieval dragons of northern Europe were depicted in manuscripts"
    title = excerpt_title(text)
    assert title.endswith("…") and len(title) <= 60
    assert text.startswith(title[:-1]) and text[len(title) - 1] == " "
    assert excerpt_title("Short question?") == "Short question?"
    assert excerpt_title("**Bold** `code` # heading\nsecond line") == "Bold code heading"
    assert excerpt_title("   \n ") == "New chat"


def test_a_model_title_that_echoes_the_instruction_is_refused() -> None:
    german = title_prompt("de")
    assert clean_model_title("Gib diesem Gespräch einen kurzen Titel auf Deutsch:", german) == ""
    assert echoes("Titel auf Deutsch: Wandern", german)
    assert clean_model_title('"Titel: Wanderpläne"\nmore', german) == "Wanderpläne"
    assert clean_model_title("1. The sea is vast", title_prompt("en")) == "The sea is vast"
    assert clean_model_title("  ", title_prompt("en")) == ""
    long = clean_model_title("word " * 30, title_prompt("en"))
    assert len(long) <= 60 and long.endswith("word…")


def test_duplicates_are_told_apart_by_time_then_by_number() -> None:
    assert distinct_title("school.pdf", ["other"], NOON) == "school.pdf"
    second = distinct_title("school.pdf", ["school.pdf"], NOON)
    assert second == "school.pdf · 01 Dec 12:00"
    third = distinct_title("school.pdf", ["School.pdf", second], NOON)
    assert third == "school.pdf · 01 Dec 12:00 (2)"


def _titled(app: App, text: str, conversation_id: str | None = None) -> str:
    user = app.local_user_id()
    updates = list(app.chat.send(user, conversation_id, text, ChatSettings(auto_title=False)))
    cid = updates[-1].conversation_id
    app.chat.title_conversation(user, cid, ChatSettings())
    return app.repo.get_conversation(user, cid).title


def test_an_echoing_model_falls_back_to_a_clean_excerpt_and_titles_stay_distinct(db_url: str) -> None:
    echo = "Give this conversation a short title in English: at most six words"
    backend = ScriptedBackend(handler=replying(echo))
    app = make_app(db_url, backend)
    question = "How do I keep basil alive on a windowsill during a long dark winter season?"
    first = _titled(app, question)
    assert first == excerpt_title(question) and "title" not in first.lower()
    second = _titled(app, question)
    assert second != first and second.startswith(first + " · ")
    app.close()


def test_an_edited_first_message_gets_a_new_title(db_url: str) -> None:
    backend = ScriptedBackend(handler=replying("Title: Basil Care"))
    app = make_app(db_url, backend)
    user = app.local_user_id()
    cid = list(app.chat.send(user, None, "How do I keep basil alive?", ChatSettings()))[-1].conversation_id
    assert app.repo.get_conversation(user, cid).title == "Basil Care"
    backend.handler = replying("Title: Tomato Seedlings")
    list(app.chat.edit_last(user, cid, "When should I plant tomatoes?", ChatSettings()))
    assert app.repo.get_conversation(user, cid).title == "Tomato Seedlings"
    app.close()


def test_the_title_waits_for_its_own_call_when_asked_to(db_url: str) -> None:
    app = make_app(db_url, ScriptedBackend(handler=replying("Title: Basil Care")))
    user = app.local_user_id()
    updates = list(app.chat.send(user, None, "How do I keep basil alive?", ChatSettings(auto_title=False)))
    assert updates[-1].done and updates[-1].title is None
    cid = updates[-1].conversation_id
    assert app.repo.get_conversation(user, cid).title == "How do I keep basil alive?"
    assert app.chat.title_conversation(user, cid, ChatSettings()) == "Basil Care"
    app.close()


def test_a_rename_made_while_the_title_is_being_made_is_kept(db_url: str) -> None:
    backend = ScriptedBackend()
    app = make_app(db_url, backend)
    user = app.local_user_id()
    updates = app.chat.send(user, None, "How do I keep basil alive?", ChatSettings(auto_title=False))
    cid = list(updates)[-1].conversation_id

    def renamed_meanwhile(request: ScriptedRequest) -> Iterator[str]:
        app.repo.rename_conversation(user, cid, "My herbs")  # the user, while the model writes
        yield "Title: Basil Care"

    backend.handler = renamed_meanwhile
    assert app.chat.title_conversation(user, cid, ChatSettings()) is None
    assert app.repo.get_conversation(user, cid).title == "My herbs"
    app.close()
