"""ChatService: storage before generation, checkpoints, stop, failures, context trimming."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing

import pytest

from app import chat as chat_module
from app import checkpoint
from app.chat import ChatSettings, InputRejected
from app.core import App
from backends.base import (
    BackendError,
    BackendUnavailable,
    ChatBackend,
    ChatMessage,
    Connection,
    ContextOverflow,
    DeltaStream,
    GenerationOptions,
)
from backends.scripted import ScriptedBackend, in_turn, replying, unavailable
from tests.conftest import make_app


def run(app: App, text: str, cid: str | None = None, **settings: object) -> list[chat_module.ChatUpdate]:
    user = app.local_user_id()
    return list(app.chat.send(user, cid, text, ChatSettings(**settings)))  # type: ignore[arg-type]


def test_real_model_reply_is_stored_complete(local_app: App) -> None:
    updates = run(local_app, "What is the capital of France?", max_tokens=48, temperature=0.0)
    final = next(u for u in updates if u.done)
    assert final.status == "complete" and final.reply.strip()
    assert final.prompt_tokens > 0 and 0 < final.completion_tokens <= 48
    assert final.ttft_s is not None and final.ttft_s < final.elapsed_s
    rows = local_app.repo.messages(local_app.local_user_id(), final.conversation_id)
    assert [(r.role, r.status) for r in rows] == [("user", "complete"), ("assistant", "complete")]
    assert rows[1].content == final.reply
    assert rows[1].model == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert final.language == "en"


def test_real_model_follows_the_conversation(local_app: App) -> None:
    first = run(local_app, "My name is Ada.", max_tokens=24, temperature=0.0)[-1]
    second = run(local_app, "What is my name?", first.conversation_id, max_tokens=24, temperature=0.0)[-1]
    rows = local_app.repo.messages(local_app.local_user_id(), second.conversation_id)
    assert len(rows) == 4
    assert second.prompt_tokens > first.prompt_tokens, "the second prompt carries the first exchange"


def test_user_message_is_stored_before_generation(scripted_app: App) -> None:
    user = scripted_app.local_user_id()
    stream = scripted_app.chat.send(user, None, "hello there", ChatSettings())
    first = next(stream)
    rows = scripted_app.repo.messages(user, first.conversation_id)
    assert rows[0].role == "user" and rows[0].content == "hello there"
    assert rows[1].status == "streaming"
    stream.close()


def test_stop_keeps_the_partial_reply_as_interrupted(db_url: str) -> None:
    backend = ScriptedBackend(handler=replying(" ".join(f"w{i}" for i in range(100)), delay_s=0.001))
    app = make_app(db_url, backend)
    user = app.local_user_id()
    with closing(app.chat.send(user, None, "go", ChatSettings())) as stream:
        for update in stream:
            if len(update.reply.split()) >= 10:
                break
    rows = app.repo.messages(user, update.conversation_id)
    assert rows[-1].status == "interrupted"
    assert rows[-1].content == update.reply
    app.close()


def test_checkpoints_at_least_every_second(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint, "CHECKPOINT_INTERVAL_S", 0.05)
    backend = ScriptedBackend(handler=replying(" ".join(f"w{i}" for i in range(40)), delay_s=0.01))
    app = make_app(db_url, backend)
    user = app.local_user_id()
    stream = app.chat.send(user, None, "go", ChatSettings())
    seen_in_db = []
    for update in stream:
        if update.reply_message_id and not update.done:
            stored = app.repo.messages(user, update.conversation_id)[-1]
            seen_in_db.append(len(stored.content))
    assert max(seen_in_db) > 0, "partial text reached the database while streaming"
    assert len(set(seen_in_db)) > 2
    app.close()


def only_conversation_id(app: App) -> str:
    rows = app.repo.list_conversations(app.local_user_id())
    assert len(rows) == 1
    return rows[0].id


def test_backend_failure_keeps_the_user_message_and_partial(db_url: str) -> None:
    """A failure is raised once, after the partial is saved; it is never also an update to render."""
    app = make_app(db_url, ScriptedBackend(handler=replying("one two three four five", fail_after=3)))
    updates: list[chat_module.ChatUpdate] = []
    with pytest.raises(BackendError, match="failed mid-reply") as info:
        updates.extend(app.chat.send(app.local_user_id(), None, "hello", ChatSettings()))
    assert info.value.code == "backend_error"
    assert updates and all(u.status == "streaming" for u in updates)
    assert updates[-1].reply == "one two three"
    rows = app.repo.messages(app.local_user_id(), only_conversation_id(app))
    assert rows[0].content == "hello"
    assert rows[1].status == "interrupted" and rows[1].content == "one two three"
    app.close()


def test_backend_down_keeps_the_user_message_and_retry_works(db_url: str) -> None:
    backend = ScriptedBackend(handler=in_turn(unavailable(), replying("back again")))
    app = make_app(db_url, backend)
    user = app.local_user_id()
    with pytest.raises(BackendUnavailable):
        run(app, "are you there?")
    cid = only_conversation_id(app)
    rows = app.repo.messages(user, cid)
    assert [(r.role, r.content) for r in rows] == [("user", "are you there?")]
    retry = list(app.chat.regenerate(user, cid, ChatSettings()))[-1]
    assert retry.status == "complete" and retry.reply == "back again"
    rows = app.repo.messages(user, cid)
    assert [r.role for r in rows] == ["user", "assistant"], "the retry does not duplicate the user message"
    app.close()


class Unreachable(ChatBackend):
    """A server whose host does not answer: each attempt would cost a whole connect timeout."""

    kind = "scripted"

    def __init__(self) -> None:
        super().__init__("remote")
        self.attempts = 0

    def _connect(self) -> Connection:
        self.attempts += 1
        raise BackendUnavailable("no answer from http://10.255.255.1:8000")

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream_chat(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> DeltaStream:
        raise AssertionError("never reached: the server did not answer")


def test_a_server_down_at_send_is_tried_once_and_the_message_kept(db_url: str) -> None:
    backend = Unreachable()
    app = make_app(db_url, backend)
    with pytest.raises(BackendUnavailable, match=r"10\.255\.255\.1"):
        run(app, "are you there?")
    assert backend.attempts == 1
    rows = app.repo.messages(app.local_user_id(), only_conversation_id(app))
    assert [(r.role, r.content) for r in rows] == [("user", "are you there?")]
    app.close()


def test_old_turns_are_dropped_to_fit_and_counted(db_url: str) -> None:
    backend = ScriptedBackend(handler=replying("ok " * 20), context_window=300)
    app = make_app(db_url, backend)
    cid = None
    for i in range(12):
        last = run(app, f"message {i} " + "filler " * 20, cid, max_tokens=40)[-1]
        cid = last.conversation_id
    assert last.dropped_turns > 0
    prompt = backend.requests[-1]
    assert prompt[0]["role"] == "system"
    assert prompt[1]["role"] == "user", "a trimmed history starts with a user turn"
    assert prompt[-1]["content"].startswith("message 11")
    assert backend.count_message_tokens(prompt) <= 300
    app.close()


class _WholePromptCounter(ScriptedBackend):
    """Counts how often the whole templated prompt is counted (a round trip on a remote server)."""

    def __init__(self, context_window: int) -> None:
        super().__init__(context_window=context_window)
        self.whole_prompt_counts = 0

    def count_message_tokens(self, messages: Sequence[ChatMessage]) -> int:
        self.whole_prompt_counts += 1
        return super().count_message_tokens(messages)


def test_the_whole_prompt_is_counted_only_when_the_reply_room_is_tight(db_url: str) -> None:
    app = make_app(db_url, ScriptedBackend())
    turns: list[ChatMessage] = [{"role": "user", "content": "word " * 150}]
    roomy = _WholePromptCounter(context_window=8192)
    prompt = app.chat.build_prompt(roomy, turns, "en", ChatSettings(max_tokens=300))
    assert prompt.max_tokens == 300 and roomy.whole_prompt_counts == 0

    tight = _WholePromptCounter(context_window=480)
    prompt = app.chat.build_prompt(tight, turns, "en", ChatSettings(max_tokens=300))
    assert tight.whole_prompt_counts == 1
    exact = ScriptedBackend().count_message_tokens(prompt.messages)
    assert prompt.max_tokens == 480 - exact < 300, "the reply is cut to what the window has left"
    app.close()


class _BrokenCounter(ScriptedBackend):
    def count_tokens(self, text: str) -> int:
        raise RuntimeError("tokenizer bug")


def test_an_unexpected_error_before_the_reply_leaves_the_message_alone(db_url: str) -> None:
    app = make_app(db_url, _BrokenCounter())
    with pytest.raises(RuntimeError, match="tokenizer bug"):
        run(app, "hello there")
    cid = app.repo.list_conversations(app.local_user_id())[0].id
    rows = app.repo.messages(app.local_user_id(), cid)
    assert [(r.role, r.content) for r in rows] == [("user", "hello there")], "no empty reply is left behind"
    app.close()


def test_a_message_larger_than_the_context_is_an_overflow_error(db_url: str) -> None:
    app = make_app(db_url, ScriptedBackend(context_window=200))
    with pytest.raises(ContextOverflow):
        run(app, "word " * 500)
    rows = app.repo.messages(app.local_user_id(), only_conversation_id(app))
    assert rows[0].role == "user" and len(rows) == 1
    app.close()


def test_regenerate_replaces_the_last_reply(scripted_app: App) -> None:
    first = run(scripted_app, "hi")[-1]
    user = scripted_app.local_user_id()
    again = list(scripted_app.chat.regenerate(user, first.conversation_id, ChatSettings()))
    rows = scripted_app.repo.messages(user, first.conversation_id)
    assert [r.role for r in rows] == ["user", "assistant"]
    assert rows[1].id != first.reply_message_id
    assert again[-1].status == "complete"


def test_edit_last_replaces_the_question(scripted_app: App) -> None:
    first = run(scripted_app, "first question")[-1]
    user = scripted_app.local_user_id()
    list(scripted_app.chat.edit_last(user, first.conversation_id, "better question", ChatSettings()))
    rows = scripted_app.repo.messages(user, first.conversation_id)
    assert (rows[0].role, rows[0].content) == ("user", "better question")
    assert len(rows) == 2


@pytest.mark.parametrize("text", ["", "   ", "\x00\x01"])
def test_empty_messages_are_rejected(scripted_app: App, text: str) -> None:
    with pytest.raises(InputRejected) as info:
        run(scripted_app, text)
    assert info.value.code == "empty_message"
    assert scripted_app.repo.list_conversations(scripted_app.local_user_id()) == []


def test_huge_messages_are_rejected_with_the_limit(scripted_app: App) -> None:
    with pytest.raises(InputRejected) as info:
        run(scripted_app, "x" * (2 * 1024 * 1024))
    assert info.value.code == "message_too_long"
    assert info.value.params == {"chars": 2 * 1024 * 1024, "limit": 100_000}
    assert scripted_app.repo.list_conversations(scripted_app.local_user_id()) == []


def test_control_characters_are_stripped(scripted_app: App) -> None:
    final = run(scripted_app, "hel\x00lo\x07 world\n\tok")[-1]
    rows = scripted_app.repo.messages(scripted_app.local_user_id(), final.conversation_id)
    assert rows[0].content == "hello world\n\tok"


def test_reply_language_follows_the_user_and_the_pin(scripted_app: App) -> None:
    german = run(scripted_app, "Kannst du mir bitte erklären, wie das Wetter morgen wird?")[-1]
    assert german.language == "de"
    backend = scripted_app.backends.get()
    assert isinstance(backend, ScriptedBackend)
    assert "Deutsch" in backend.requests[-1][0]["content"]
    short = run(scripted_app, "ok", german.conversation_id)[-1]
    assert short.language == "de", "a short turn keeps the conversation's language"
    pinned = run(
        scripted_app,
        "Tell me about the weather tomorrow, please.",
        german.conversation_id,
        reply_language="es",
    )[-1]
    assert pinned.language == "es"
    still = run(scripted_app, "And what about the day after tomorrow?", german.conversation_id)[-1]
    assert still.language == "es", "the pin is the conversation's policy until changed"
    user = scripted_app.local_user_id()
    assert scripted_app.repo.get_conversation(user, german.conversation_id).reply_language == "es"
    free = run(
        scripted_app,
        "Und übermorgen, wie wird das Wetter dann sein?",
        german.conversation_id,
        reply_language="auto",
    )[-1]
    assert free.language == "de"


def test_titles_come_from_the_first_exchange(db_url: str) -> None:
    app = make_app(db_url, ScriptedBackend(handler=replying("Title: Weekend Hiking Plans")))
    final = run(app, "Where should I hike this weekend?")
    assert final[-1].title == "Weekend Hiking Plans"
    assert (
        app.repo.get_conversation(app.local_user_id(), final[-1].conversation_id).title
        == "Weekend Hiking Plans"
    )
    app.close()


def test_title_is_asked_as_a_follow_on_turn_so_the_prompt_prefix_stays_cached(db_url: str) -> None:
    reply = "Title: Weekend Hiking Plans"
    backend = ScriptedBackend(handler=replying(reply))
    app = make_app(db_url, backend)
    run(app, "Where should I hike this weekend?")
    reply_request, title_request = backend.requests
    assert title_request[: len(reply_request)] == reply_request
    assert title_request[len(reply_request)] == {"role": "assistant", "content": reply}
    assert title_request[-1]["role"] == "user"
    app.close()


def test_a_full_window_still_gets_a_title_from_an_excerpt(db_url: str) -> None:
    # The scripted backend counts words: the exchange fits its 72, the exchange plus the
    # title question does not, and the excerpt form does.
    reply = " ".join(["walk"] * 16)
    backend = ScriptedBackend(handler=replying(reply), context_window=72)
    app = make_app(db_url, backend)
    final = run(app, "Where should I hike?", max_tokens=16)
    assert final[-2].reply == reply
    title = final[-1].title or ""
    # Cut at a word and marked as cut.
    assert title.endswith("…") and len(title) <= 60 and reply[len(title) - 1] == " "
    assert reply.startswith(title[:-1])
    assert backend.requests[-1][0]["role"] == "system"
    assert len(backend.requests[-1]) == 2
    app.close()


def test_continue_extends_an_interrupted_reply_in_place(db_url: str) -> None:
    first = replying(" ".join(f"w{i}" for i in range(60)), delay_s=0.001)
    backend = ScriptedBackend(handler=in_turn(first, replying("and the rest.")))
    app = make_app(db_url, backend)
    user = app.local_user_id()
    with closing(app.chat.send(user, None, "go", ChatSettings())) as stream:
        for update in stream:
            if len(update.reply.split()) >= 5:
                break
    cut = app.repo.messages(user, update.conversation_id)[-1]
    assert cut.status == "interrupted"
    final = list(app.chat.continue_last(user, update.conversation_id, ChatSettings()))[-1]
    rows = app.repo.messages(user, update.conversation_id)
    assert len(rows) == 2, "no new messages: the same reply grows"
    assert rows[1].id == cut.id and rows[1].status == "complete"
    # Joined with the space the cut-off text needs, never glued on ("w4and").
    assert rows[1].content == cut.content + " and the rest." == final.reply
    assert not final.nothing_added
    assert any("cut off" in r[-1]["content"] for r in backend.requests)
    with pytest.raises(InputRejected):
        list(app.chat.continue_last(user, update.conversation_id, ChatSettings()))
    app.close()


def test_a_continue_the_model_ends_at_once_is_marked_as_adding_nothing(db_url: str) -> None:
    backend = ScriptedBackend(handler=replying(""))
    app = make_app(db_url, backend)
    user = app.local_user_id()
    cid = app.repo.create_conversation(user, title="Cut short", backend="scripted", language="en")
    app.repo.add_message(user, cid, "user", "Tell me a story.")
    app.repo.add_message(user, cid, "assistant", "In a land of magic,", status="interrupted")
    final = list(app.chat.continue_last(user, cid, ChatSettings()))[-1]
    assert final.nothing_added and final.reply == "In a land of magic,"
    assert app.repo.messages(user, cid)[-1].status == "complete"
    app.close()


def test_conversation_remembers_its_backend(db_url: str) -> None:
    first, second = ScriptedBackend("first", replying("one")), ScriptedBackend("second", replying("two"))
    app = make_app(db_url, first, second)
    user = app.local_user_id()
    opened = list(app.chat.send(user, None, "hi", ChatSettings(backend="second")))[-1]
    later = list(app.chat.send(user, opened.conversation_id, "again", ChatSettings()))[-1]
    assert (opened.backend, later.backend, later.reply) == ("second", "second", "two")
    app.close()


def test_a_reply_that_loops_is_cut_to_one_copy_and_stops(db_url: str) -> None:
    """A small model repeated one paragraph about 15 times until the token budget ran out."""
    looping = " ".join(["The report covers the annual budget of the city council."] * 15)
    backend = ScriptedBackend(handler=replying(f"Sure. {looping}"))
    app = make_app(db_url, backend)
    final = run(app, "what does the report cover?")[-1]
    assert final.status == "complete"
    assert final.reply.count("annual budget") <= 2, final.reply
    rows = app.repo.messages(app.local_user_id(), final.conversation_id)
    assert rows[-1].content == final.reply
    # The cut stream never reports usage: the stats still count what the model wrote.
    assert rows[-1].completion_tokens == final.completion_tokens > len(final.reply.split())
    assert final.prompt_tokens > 0
    app.close()


def test_a_stop_before_the_first_token_leaves_no_reply_streaming(db_url: str) -> None:
    # A Stop that lands while the model has not begun (a web Stop right after Send) closed the
    # stream at its first update and left the empty reply "streaming" until the next restart.
    app = make_app(db_url, ScriptedBackend(handler=replying("never read")))
    user = app.local_user_id()
    stream = app.chat.send(user, None, "hello", ChatSettings())
    first = next(stream)
    assert first.reply == "" and first.reply_message_id is not None
    stream.close()
    rows = app.repo.messages(user, first.conversation_id)
    assert [(r.role, r.status) for r in rows] == [("user", "complete"), ("assistant", "interrupted")]
    app.close()


def test_a_stop_before_a_continuation_s_first_token_keeps_the_reply_interrupted(db_url: str) -> None:
    # The same close in Continue left the reply "streaming", its stored text and all.
    app = make_app(db_url, ScriptedBackend(handler=replying("one two three four five", fail_after=3)))
    user = app.local_user_id()
    with pytest.raises(BackendError):
        list(app.chat.send(user, None, "hello", ChatSettings()))
    cid = only_conversation_id(app)
    stream = app.chat.continue_last(user, cid, ChatSettings())
    assert next(stream).reply == "one two three"
    stream.close()
    rows = app.repo.messages(user, cid)
    assert (rows[-1].status, rows[-1].content) == ("interrupted", "one two three")
    app.close()
