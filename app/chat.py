"""ChatService: history → prompt within the context budget → streamed reply → storage.

The user's message is stored before generation starts and the reply is
checkpointed while it streams, so a crash, a stop or a backend failure never
loses what the user typed or what the model already said.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, replace

from app import language, prompts
from app.checkpoint import Checkpointer
from app.continuation import ContinuationJoiner
from app.doc_chat import DocumentService
from app.errors import AppError
from app.heartbeat import Heartbeat
from app.output_hygiene import LoopGuard, strip_markers, visible_so_far
from app.registry import BackendRegistry
from app.text import strip_control_chars
from app.titles import clean_model_title, excerpt_title, unique_title
from backends.base import (
    DEFAULT_OPTIONS,
    MESSAGE_OVERHEAD_TOKENS,
    BackendError,
    ChatBackend,
    ChatMessage,
    ContextOverflow,
    Delta,
    GenerationOptions,
    ModelFileError,
    Usage,
    close_stream,
)
from storage.repo import ConversationRow, MessageRow, Repository, storable_text

MAX_MESSAGE_CHARS = 100_000
# Room kept free for the chat template's own tokens when the history is trimmed.
PROMPT_SAFETY_TOKENS = 16
# What a chat template may add beyond MESSAGE_OVERHEAD_TOKENS a message (BOS, the generation
# prompt, Llama 3.1's date lines), plus this much again per message.
TEMPLATE_SLACK_TOKENS = 64
TEMPLATE_SLACK_PER_MESSAGE = 2


Updates = Generator["ChatUpdate", None, None]


class InputRejected(AppError):
    """The user's request cannot be carried out as is; ``code`` names why."""


@dataclass(frozen=True)
class ChatSettings:
    system_prompt: str = ""
    temperature: float = DEFAULT_OPTIONS.temperature
    max_tokens: int = DEFAULT_OPTIONS.max_tokens
    reply_language: str | None = None  # "auto", a code to pin, or None: the conversation's policy
    backend: str | None = None  # None: the conversation's, else the default
    seed: int | None = None
    stop: tuple[str, ...] = ()  # the reply ends before any of these
    # False: the caller titles a new conversation itself (title_conversation), after the reply
    # event has ended, so that making the title never holds up the user's next message.
    auto_title: bool = True


@dataclass(frozen=True)
class ChatUpdate:
    """The state of one exchange, re-sent whole on every step of the stream.

    A failure is not an update: the stream raises it (a BackendError, an AppError) after saving
    what was written, and each frontend renders it.
    """

    conversation_id: str
    user_message_id: int
    reply_message_id: int | None
    reply: str
    status: str  # "streaming" | "complete"
    language: str
    backend: str
    model: str
    dropped_turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    elapsed_s: float = 0.0
    title: str | None = None
    first_text: bool = False  # this update carries the reply's first text
    finish_reason: str | None = None  # the backend's, once the reply is complete: "stop" or "length"
    nothing_added: bool = False  # a continued reply the model ended at once: it is as it was

    @property
    def done(self) -> bool:
        return self.status != "streaming"

    @property
    def truncated(self) -> bool:
        """The reply stopped at the max-tokens limit."""
        return self.finish_reason == "length"

    @property
    def urgent(self) -> bool:
        """Worth showing at once, even inside a UI throttle interval: first text, the end, a title."""
        return self.first_text or self.done or self.title is not None


@dataclass(frozen=True)
class Completion:
    """A stateless completion of the caller's own messages (the OpenAI-compatible API); nothing is stored."""

    backend: str
    model: str
    deltas: Iterator[Delta]


@dataclass
class _Prompt:
    messages: list[ChatMessage]
    dropped_turns: int
    max_tokens: int
    grounded: bool = False  # document text is in the system prompt, with its fences and page marks


class ChatService:
    def __init__(
        self,
        repo: Repository,
        backends: BackendRegistry,
        documents: DocumentService,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.repo = repo
        self.backends = backends
        self.documents = documents
        self.heartbeat = heartbeat or Heartbeat(repo)

    # -- public entry points ------------------------------------------------

    def send(self, user_id: int, conversation_id: str | None, text: str, settings: ChatSettings) -> Updates:
        """Store the user's message, then stream the reply."""
        text = validate_message(text)
        documents: list[str] = []
        if conversation_id:
            state = self.repo.turn_state(user_id, conversation_id)
            backend = self._backend_for(state.conversation, settings)
            down = self._ready(backend)
            turns = _turns(state.messages)
            documents = state.documents
            lang = self._reply_language(user_id, state.conversation, text, settings)
        else:
            backend = self._backend_for(None, settings)
            down = self._ready(backend)
            # Created with its language settled: every write saved is time to the first token.
            lang = language.resolve_reply_language(settings.reply_language or "auto", text, None)
            conversation_id = self.repo.create_conversation(
                user_id,
                title=excerpt_title(text),
                backend=backend.name,
                model=_model_of(backend),
                language=lang,
                reply_language=settings.reply_language or "auto",
            )
            turns = []
        # The message and its empty reply in one transaction: a write fewer before the first token.
        user_message_id, reply_id = self.repo.add_exchange(
            user_id, conversation_id, text, backend=backend.name, model=_model_of(backend)
        )
        turns.append({"role": "user", "content": text})
        yield from self._respond(
            user_id,
            conversation_id,
            user_message_id,
            turns,
            documents,
            lang,
            backend,
            settings,
            reply_id,
            down=down,
        )

    def regenerate(self, user_id: int, conversation_id: str, settings: ChatSettings) -> Updates:
        """Drop the last reply (complete or not) and answer the last user message again."""
        state = self.repo.turn_state(user_id, conversation_id)
        rows = state.messages
        last_user = _last(rows, "user")
        if last_user is None:
            raise InputRejected("empty_message")
        later = [r for r in rows if r.id > last_user.id]
        if later:
            self.repo.delete_messages_from(user_id, conversation_id, later[0].id)
        turns = _turns([r for r in rows if r.id <= last_user.id])
        backend = self._backend_for(state.conversation, settings)
        lang = self._reply_language(user_id, state.conversation, last_user.content, settings)
        yield from self._respond(
            user_id, conversation_id, last_user.id, turns, state.documents, lang, backend, settings
        )

    def edit_last(self, user_id: int, conversation_id: str, text: str, settings: ChatSettings) -> Updates:
        """Replace the last user message (and drop what followed it), then answer it."""
        text = validate_message(text)
        rows = self.repo.messages(user_id, conversation_id)
        last_user = _last(rows, "user")
        if last_user is not None:
            self.repo.delete_messages_from(user_id, conversation_id, last_user.id)
            if last_user.id == rows[0].id:  # the title quoted what is now gone; it is made again
                self.repo.rename_conversation(user_id, conversation_id, excerpt_title(text))
        yield from self.send(user_id, conversation_id, text, settings)

    def continue_last(self, user_id: int, conversation_id: str, settings: ChatSettings) -> Updates:
        """Extend an interrupted reply in place, from where its stored text stops."""
        state = self.repo.turn_state(user_id, conversation_id)
        rows = state.messages
        last = rows[-1] if rows else None
        if last is None or last.role != "assistant" or last.status != "interrupted":
            raise InputRejected("nothing_to_continue")
        last_user = _last(rows, "user")
        backend = self._backend_for(state.conversation, settings)
        lang = self._reply_language(
            user_id, state.conversation, last_user.content if last_user else "", settings
        )
        started = time.monotonic()
        base = ChatUpdate(
            conversation_id=conversation_id,
            user_message_id=last_user.id if last_user else 0,
            reply_message_id=last.id,
            reply=last.content,
            status="streaming",
            language=lang,
            backend=backend.name,
            model=_model_of(backend),
        )
        turns = _turns(rows)
        turns.append({"role": "user", "content": prompts.CONTINUE_PROMPT})
        prompt = self._prompt(turns, state.documents, lang, backend, settings)
        self.repo.checkpoint_message(user_id, last.id, last.content, status="streaming")
        yield from self._stream(
            user_id, last.id, backend, prompt, settings, base, started, last.content, len(rows) == 2
        )

    def complete(self, messages: Sequence[ChatMessage], settings: ChatSettings) -> Completion:
        """Stream a reply to `messages` as given (system prompt included), without storage or history.

        The backend is named exactly: an unknown name is refused rather than sent to the default.
        A context overflow is raised by the first step of `deltas`, before any text.
        """
        if settings.backend is not None and settings.backend not in self.backends.names:
            raise InputRejected("model_not_found", detail=f"there is no backend named {settings.backend!r}")
        turns = [_checked_turn(m) for m in messages]
        if not any(t["role"] == "user" for t in turns):
            raise InputRejected("empty_message", detail="the messages hold no user message")
        backend = self._backend_for(None, settings)
        options = GenerationOptions(
            max_tokens=max(1, min(settings.max_tokens, backend.context_window)),
            temperature=settings.temperature,
            seed=settings.seed,
            stop=settings.stop,
        )
        return Completion(
            backend.name, _model_of(backend), _clean_deltas(backend.stream_chat(turns, options))
        )

    # -- the exchange -------------------------------------------------------

    def _respond(
        self,
        user_id: int,
        conversation_id: str,
        user_message_id: int,
        turns: list[ChatMessage],
        documents: list[str],
        lang: str,
        backend: ChatBackend,
        settings: ChatSettings,
        reply_id: int | None = None,
        down: BackendError | None = None,
    ) -> Updates:
        """Answer the last turn into `reply_id`, an empty streaming reply (created here when None).

        `down` is the error of a server found unreachable just before the message was stored."""
        started = time.monotonic()
        base = ChatUpdate(
            conversation_id=conversation_id,
            user_message_id=user_message_id,
            reply_message_id=None,
            reply="",
            status="streaming",
            language=lang,
            backend=backend.name,
            model=_model_of(backend),
        )
        try:
            if down is not None:
                raise down  # not tried again at once: an unreachable host costs a whole connect timeout
            prompt = self._prompt(turns, documents, lang, backend, settings)
        except BaseException:
            if reply_id is not None:  # no reply will come: the user's message stays alone
                self.repo.delete_messages_from(user_id, conversation_id, reply_id)
            raise
        base = replace(base, dropped_turns=prompt.dropped_turns)
        if reply_id is None:
            reply_id = self.repo.add_message(
                user_id,
                conversation_id,
                "assistant",
                "",
                status="streaming",
                backend=backend.name,
                model=_model_of(backend),
            )
        base = replace(base, reply_message_id=reply_id)
        yield from self._stream(
            user_id, reply_id, backend, prompt, settings, base, started, "", len(turns) == 1
        )

    def _prompt(
        self,
        turns: list[ChatMessage],
        documents: list[str],
        lang: str,
        backend: ChatBackend,
        settings: ChatSettings,
    ) -> _Prompt:
        backend.connect()  # a server that went down raises its own error here, the message kept
        question = next((t["content"] for t in reversed(turns) if t["role"] == "user"), "")
        context = self.documents.context(documents, question, backend)
        return self.build_prompt(backend, turns, lang, settings, context)

    def _stream(
        self,
        user_id: int,
        reply_id: int,
        backend: ChatBackend,
        prompt: _Prompt,
        settings: ChatSettings,
        base: ChatUpdate,
        started: float,
        prefix: str,
        first_exchange: bool,
    ) -> Updates:
        """Stream the reply into storage; a conversation's first exchange is then given a title.

        A failure keeps what was written (as an interrupted reply) and is raised to the caller.
        """
        options = GenerationOptions(
            max_tokens=prompt.max_tokens,
            temperature=settings.temperature,
            seed=settings.seed,
            stop=settings.stop,
        )
        parts: list[str] = [prefix] if prefix else []
        # A continued reply: new text is joined on without a restart, a repeat or a missing space.
        joiner = ContinuationJoiner(prefix) if prefix else None
        update = base
        guard = LoopGuard()
        # A reply about a document may echo the prompt's scaffolding; the user never sees it.
        shown, final = (visible_so_far, strip_markers) if prompt.grounded else (_as_is, _as_is)
        finished = False
        usage = Usage()
        with self.heartbeat.alive(reply_id), Checkpointer(self.repo, user_id, reply_id) as checkpoint:
            try:
                # Inside the try: a stop before the model begins also leaves the reply interrupted.
                yield replace(base, dropped_turns=prompt.dropped_turns)
                stream = backend.stream_chat(prompt.messages, options)
                try:
                    for delta in stream:
                        usage.add(delta)
                        # Backends can emit lone surrogates or terminal escapes; neither may reach a UI.
                        piece = storable_text(strip_control_chars(delta.text)) if delta.text else ""
                        if joiner is not None and piece:
                            piece = joiner.feed(piece)
                        if piece:
                            parts.append(piece)
                            first = update.ttft_s is None
                            ttft = time.monotonic() - started if first else update.ttft_s
                            reply = "".join(parts)
                            cut = guard.cut(reply)
                            if cut is not None:  # the model is repeating itself: keep one copy and stop
                                parts = [reply[:cut].rstrip()]
                                update = replace(update, reply=shown(parts[0]))
                                joiner = None  # nothing held back may follow the cut
                                break
                            update = replace(update, reply=shown(reply), ttft_s=ttft, first_text=first)
                            checkpoint.maybe(update.reply)
                            yield update
                        if delta.finish_reason:
                            update = replace(update, finish_reason=delta.finish_reason)
                finally:
                    close_stream(stream)  # releases a local model's lock at once on Stop
                if joiner is not None and (rest := joiner.flush()):
                    parts.append(rest)
                if usage.known:
                    tokens = usage.settled(lambda: backend.count_message_tokens(prompt.messages))
                    update = replace(update, prompt_tokens=tokens[0], completion_tokens=tokens[1])
                elapsed = time.monotonic() - started
                reply = final("".join(parts))
                nothing_added = bool(prefix) and reply == final(prefix)
                update = replace(
                    update, reply=reply, status="complete", elapsed_s=elapsed, nothing_added=nothing_added
                )
                checkpoint.complete(update.reply, update.prompt_tokens, update.completion_tokens)
                finished = True
            except BackendError:
                finished = True
                self._keep_partial(user_id, base.conversation_id, reply_id, final("".join(parts)))
                raise
            finally:
                if not finished:  # stopped by the caller (GeneratorExit) or an unexpected error
                    checkpoint.interrupted(final("".join(parts)))
        yield update
        if not (first_exchange and settings.auto_title):
            return
        title = self._maybe_title(user_id, base.conversation_id, backend, base.language, prompt.messages)
        if title:
            yield replace(update, title=title)

    def title_conversation(self, user_id: int, conversation_id: str, settings: ChatSettings) -> str | None:
        """Title a conversation whose first exchange has just ended; None when it is not that."""
        state = self.repo.turn_state(user_id, conversation_id)
        rows = state.messages
        if len(rows) != 2 or rows[1].status != "complete":
            return None
        backend = self._backend_for(state.conversation, settings)
        lang = state.conversation.language
        turns = _turns(rows[:1])
        try:
            prompt = self._prompt(turns, state.documents, lang, backend, settings)
        except BackendError:
            prompt = _Prompt(messages=turns, dropped_turns=0, max_tokens=settings.max_tokens)
        return self._maybe_title(user_id, conversation_id, backend, lang, prompt.messages)

    def _keep_partial(self, user_id: int, conversation_id: str, reply_id: int, text: str) -> None:
        if text:
            self.repo.checkpoint_message(user_id, reply_id, text, status="interrupted")
        else:
            self.repo.delete_messages_from(user_id, conversation_id, reply_id)

    # -- prompt -------------------------------------------------------------

    def build_prompt(
        self,
        backend: ChatBackend,
        turns: Sequence[ChatMessage],
        lang: str,
        settings: ChatSettings,
        context: str = "",
    ) -> _Prompt:
        """System line (with any document context) + as many of the latest turns as fit."""
        system = _system_text(settings.system_prompt, lang, context)
        window = backend.context_window
        reserve = max(16, min(settings.max_tokens, window // 4))
        budget = window - reserve - PROMPT_SAFETY_TOKENS
        used = backend.count_tokens(system) + MESSAGE_OVERHEAD_TOKENS
        keep = 0
        # Counted one message at a time (not the whole prompt per step) so trimming stays linear.
        for turn in reversed(turns):
            size = backend.count_tokens(turn["content"]) + MESSAGE_OVERHEAD_TOKENS
            if used + size > budget:
                if keep == 0:
                    raise ContextOverflow(
                        f"the message needs about {used + size} tokens but the context window is {window}",
                        prompt_tokens=used + size,
                        context_window=window,
                    )
                break
            used += size
            keep += 1
        kept = list(turns[len(turns) - keep :])
        while len(kept) > 1 and kept[0]["role"] != "user":
            kept.pop(0)
        messages: list[ChatMessage] = [{"role": "system", "content": system}, *kept]
        return _Prompt(
            messages=messages,
            dropped_turns=len(turns) - len(kept),
            max_tokens=_reply_room(backend, messages, used, settings.max_tokens),
            grounded=bool(context),
        )

    # -- helpers ------------------------------------------------------------

    @staticmethod
    def _ready(backend: ChatBackend) -> BackendError | None:
        """Load the model before anything is stored: a model file that cannot load is bad input,
        and raises ModelFileError with nothing written. A server that cannot be reached right now
        is returned, for the reply to report once the message is stored for a retry."""
        try:
            backend.connect()
        except ModelFileError:
            raise
        except BackendError as exc:
            return exc
        return None

    def _backend_for(self, conversation: ConversationRow | None, settings: ChatSettings) -> ChatBackend:
        name = settings.backend
        if not name and conversation is not None:
            name = conversation.backend or None
        return self.backends.get(name, connect=False)  # _ready or _prompt connects

    def _reply_language(
        self,
        user_id: int,
        conversation: ConversationRow,
        text: str,
        settings: ChatSettings,
    ) -> str:
        """The language the reply is asked to be in; an explicit setting becomes the conversation's policy."""
        previous = conversation.language if conversation.language in language.SUPPORTED else None
        policy = settings.reply_language or conversation.reply_language or "auto"
        lang = language.resolve_reply_language(policy, text, previous)
        changes: dict[str, str] = {}
        if lang != conversation.language:
            changes["language"] = lang
        if settings.reply_language and settings.reply_language != conversation.reply_language:
            changes["reply_language"] = settings.reply_language
        if changes:
            self.repo.update_conversation(user_id, conversation.id, **changes)
        return lang

    def _maybe_title(
        self,
        user_id: int,
        conversation_id: str,
        backend: ChatBackend,
        lang: str,
        prompt: Sequence[ChatMessage],
    ) -> str | None:
        """Title a conversation from its first exchange, in the conversation's language."""
        rows = self.repo.messages(user_id, conversation_id)
        if len(rows) != 2 or rows[1].status != "complete":
            return None
        conversation = self.repo.get_conversation(user_id, conversation_id)
        options = GenerationOptions(max_tokens=20, temperature=0.2, seed=0)
        # Asked as one more turn of the same prompt, the model's prefix cache still holds
        # everything before the question: the title costs a few tokens of prefill, and the
        # conversation's next turn finds its own prefix cached instead of the title's.
        follow_on: list[ChatMessage] = [
            *prompt,
            {"role": "assistant", "content": rows[1].content},
            {"role": "user", "content": prompts.title_prompt(lang)},
        ]
        excerpt = f"User: {rows[0].content[:1500]}\nAssistant: {rows[1].content[:1500]}"
        standalone: list[ChatMessage] = [
            {"role": "system", "content": prompts.title_prompt(lang)},
            {"role": "user", "content": excerpt},
        ]
        raw = ""
        for messages in (follow_on, standalone):
            try:
                raw = "".join(d.text for d in backend.stream_chat(messages, options))
                break
            except ContextOverflow:
                continue  # the exchange filled the window: title it from an excerpt instead
            except BackendError:
                break
        title = clean_model_title(raw, prompts.title_prompt(lang)) or excerpt_title(rows[0].content)
        title = unique_title(self.repo, user_id, title, conversation.created_at, conversation_id)
        if not self.repo.replace_title(user_id, conversation_id, conversation.title, title):
            return None  # renamed by the user while the model was at it: their title stays
        return title


def _as_is(text: str) -> str:
    return text


def validate_message(text: str) -> str:
    cleaned = storable_text(strip_control_chars(text or "")).strip()
    if not cleaned:
        raise InputRejected("empty_message")
    if len(cleaned) > MAX_MESSAGE_CHARS:
        raise InputRejected("message_too_long", chars=len(cleaned), limit=MAX_MESSAGE_CHARS)
    return cleaned


def _checked_turn(message: ChatMessage) -> ChatMessage:
    role = message.get("role")
    if role not in ("system", "user", "assistant"):
        raise InputRejected(
            "bad_role", detail=f"a message's role must be system, user or assistant, not {role!r}"
        )
    content = message.get("content")
    if not isinstance(content, str):
        raise InputRejected("bad_content", detail="a message's content must be text")
    if role == "user":
        return {"role": role, "content": validate_message(content)}
    return {"role": role, "content": storable_text(strip_control_chars(content))}


def _clean_deltas(stream: Iterator[Delta]) -> Iterator[Delta]:
    """The backend's deltas with the characters that break storage and rendering removed."""
    try:
        for delta in stream:
            if delta.text:
                delta = replace(delta, text=storable_text(strip_control_chars(delta.text)))
            yield delta
    finally:
        close_stream(stream)  # releases a local model's lock at once when the caller stops reading


def _system_text(custom: str, lang: str, context: str = "") -> str:
    """The reply-language line comes last, so that a document before it stays a stable cached prefix."""
    base = custom.strip() or prompts.DEFAULT_SYSTEM_PROMPT
    if context:
        base = f"{base}\n\n{context}"
    return f"{base}\n\n{prompts.reply_instruction(lang)}"


def _reply_room(backend: ChatBackend, messages: Sequence[ChatMessage], counted: int, wanted: int) -> int:
    """max_tokens for the reply: the setting, cut to what the window has left when that is tight.

    `counted` sums the messages' own tokens and per-message overhead. Only when that plus a
    generous template slack leaves too little room is the templated prompt counted exactly: a
    remote server's count is a round trip before the first token.
    """
    slack = TEMPLATE_SLACK_TOKENS + TEMPLATE_SLACK_PER_MESSAGE * len(messages)
    if counted + slack + wanted <= backend.context_window:
        return wanted
    room = backend.context_window - backend.count_message_tokens(messages)
    return max(1, min(wanted, room))


def _model_of(backend: ChatBackend) -> str:
    """The model's name, or "" while the remote server that would tell it is down."""
    try:
        return backend.model
    except BackendError:
        return ""


def _last(rows: Sequence[MessageRow], role: str) -> MessageRow | None:
    return next((r for r in reversed(rows) if r.role == role), None)


def _turns(rows: Sequence[MessageRow]) -> list[ChatMessage]:
    """Stored messages as prompt turns; empty replies (failed or stopped at once) are skipped."""
    return [
        {"role": "user" if r.role == "user" else "assistant", "content": r.content}
        for r in rows
        if r.content and r.role in ("user", "assistant")
    ]
