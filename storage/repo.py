"""Every query the app makes. Callers get plain dataclasses, never ORM objects or sessions.

Ownership is part of each statement's WHERE clause, and a conversation or message that exists but
belongs to someone else raises the same NotFound as one that does not exist, so ids leak nothing.
Documents are content-addressed (by sha256) and shared between users: knowing the hash means
having had the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy import ColumnElement, delete, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult, Result
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage import statements as sql
from storage.db import Database
from storage.models import (
    MESSAGE_STATUSES,
    ApiKey,
    ChunkResult,
    Conversation,
    ConversationDocument,
    DocumentPage,
    Message,
    SignInSession,
    StoredDocument,
    Summary,
    User,
    utcnow,
)

# The turn's statements run on a bare connection (storage.statements), the rest in a session.
Executor = Session | Connection

_NO_CONVERSATION = "conversation not found"
_NO_MESSAGE = "message not found"
_NO_DOCUMENT = "document not found"
# Beyond this many terms a query is a paste, not a search; the rest would only slow the match.
MAX_QUERY_TERMS = 32
HIGHLIGHT = ("**", "**")  # markdown bold, which the UI and the CLI both show as-is
SNIPPET_TOKENS = 16
_SURROGATE = re.compile("[\ud800-\udfff]")


class NotFound(Exception):
    """The id does not exist, or belongs to another user (deliberately indistinguishable)."""

    code = "not_found"


@dataclass(frozen=True, slots=True)
class ConversationRow:
    id: str
    title: str
    language: str
    backend: str
    model: str
    created_at: datetime
    updated_at: datetime
    reply_language: str  # "auto" or a pinned language code; ``language`` is the current one
    marked: bool = False  # picked by its owner for the training-data export


@dataclass(frozen=True, slots=True)
class TurnState:
    """What a new turn reads before its first token, in one transaction."""

    conversation: ConversationRow
    messages: list[MessageRow]
    documents: list[str]  # sha256s of the attached documents, in attachment order


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: int
    conversation_id: str
    role: str
    content: str
    status: str
    backend: str | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SearchHit:
    conversation_id: str
    message_id: int
    title: str
    snippet: str


def _check_status(status: str) -> None:
    if status not in MESSAGE_STATUSES:
        raise ValueError(f"status must be one of {', '.join(MESSAGE_STATUSES)}, not {status!r}")


def _check_sha256(sha256: str) -> None:
    # The hash is spliced into FTS5 match expressions, so it must be plain ASCII alphanumerics.
    if not (0 < len(sha256) <= 64 and sha256.isascii() and sha256.isalnum()):
        raise ValueError(f"not a content hash: {sha256!r}")


def _owned(user_id: int, cid: str) -> ColumnElement[bool]:
    return (Conversation.id == cid) & (Conversation.user_id == user_id)


def storable_text(value: str) -> str:
    """Drop NUL characters: PostgreSQL rejects them in text, and PDF extraction can produce them.

    Lone surrogates (a JSON "\\ud800" escape, a broken decoder) have no UTF-8 form and would make
    the insert fail: they become U+FFFD, while a split surrogate pair is joined back into its character.
    """
    value = value.replace("\x00", "")
    if _SURROGATE.search(value):
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def search_terms(query: str) -> list[str]:
    """Whitespace-separated words of a user query, without pure punctuation, at most MAX_QUERY_TERMS."""
    words = [word for word in storable_text(query).split() if any(ch.isalnum() for ch in word)]
    return words[:MAX_QUERY_TERMS]


def fts5_phrase(term: str) -> str:
    """A term as an FTS5 string literal: operators, quotes, * and - lose their meaning."""
    return '"' + term.replace('"', '""') + '"'


def _snippet(content: str, terms: Sequence[str], width: int = 160) -> str:
    """Portable fallback snippet: a window of content around the first matched term."""
    lowered = content.lower()
    hits = [i for i in (lowered.find(t.lower()) for t in terms) if i >= 0]
    start = max(0, min(hits, default=0) - width // 4)
    piece = content[start : start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(content) else "")


class Repository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # users ------------------------------------------------------------------------------------

    def user_id(self, username: str) -> int | None:
        with self.db.transaction() as c:
            return c.execute(sql.USER_ID, {"username": username}).scalar()

    def ensure_user(self, username: str) -> int:
        """The user's id, creating a user without a password if needed (local mode, first login)."""
        existing = self.user_id(username)
        if existing is not None:
            return existing
        try:
            return self._insert_user(username, None)
        except IntegrityError:
            # Another thread or replica created it between our SELECT and INSERT.
            existing = self.user_id(username)
            if existing is None:
                raise
            return existing

    def add_user(self, username: str, password_hash: str) -> int:
        if self.user_id(username) is not None:
            raise ValueError(f"user {username!r} already exists")
        try:
            return self._insert_user(username, password_hash)
        except IntegrityError as exc:
            raise ValueError(f"user {username!r} already exists") from exc

    def _insert_user(self, username: str, password_hash: str | None) -> int:
        if not username.strip():
            raise ValueError("username must not be empty")
        with self.db.session() as s:
            user = User(username=username, password_hash=password_hash, created_at=utcnow())
            s.add(user)
            s.flush()
            return user.id

    def remove_user(self, username: str) -> bool:
        """Delete the user and, by cascade, all of their conversations and messages."""
        with self.db.session() as s:
            return _execute(s, delete(User).where(User.username == username)) > 0

    def list_users(self) -> list[str]:
        with self.db.session() as s:
            return list(s.scalars(select(User.username).order_by(User.username)))

    def password_hash(self, username: str) -> str | None:
        with self.db.session() as s:
            return s.scalar(select(User.password_hash).where(User.username == username))

    def add_api_key(self, user_id: int, key_hash: str, prefix: str) -> int:
        with self.db.session() as s:
            key = ApiKey(user_id=user_id, key_hash=key_hash, prefix=prefix, created_at=utcnow())
            s.add(key)
            s.flush()
            return key.id

    def user_for_api_key(self, key_hash: str) -> int | None:
        with self.db.session() as s:
            return s.scalar(select(ApiKey.user_id).where(ApiKey.key_hash == key_hash))

    def set_password(self, username: str, password_hash: str) -> bool:
        """Replace the hash and raise the credential version, which ends every session at once."""
        with self.db.session() as s:
            user = s.scalar(select(User).where(User.username == username))
            if user is None:
                return False
            user.password_hash = password_hash
            user.credential_version += 1
            s.execute(delete(SignInSession).where(SignInSession.user_id == user.id))
            return True

    # sign-in sessions -------------------------------------------------------------------------

    def create_session(self, token_hash: str, username: str, expires_at: datetime) -> int | None:
        """A session for the account named now (its id and credential version); None if it is gone."""
        with self.db.session() as s:
            row = s.execute(select(User.id, User.credential_version).where(User.username == username)).first()
            if row is None:
                return None
            s.execute(delete(SignInSession).where(SignInSession.expires_at <= utcnow()))
            s.add(
                SignInSession(
                    token_hash=token_hash,
                    user_id=row[0],
                    credential_version=row[1],
                    created_at=utcnow(),
                    expires_at=expires_at,
                )
            )
            return int(row[0])

    def session_user(self, token_hash: str) -> tuple[int, str] | None:
        """(id, name) of a live session's account: same account, same credentials, not expired."""
        query = (
            select(User.id, User.username)
            .join(SignInSession, SignInSession.user_id == User.id)
            .where(
                SignInSession.token_hash == token_hash,
                SignInSession.credential_version == User.credential_version,
                SignInSession.expires_at > utcnow(),
            )
        )
        with self.db.transaction() as c:
            row = c.execute(query).first()
        return (int(row[0]), str(row[1])) if row else None

    def end_session(self, token_hash: str) -> None:
        with self.db.session() as s:
            s.execute(delete(SignInSession).where(SignInSession.token_hash == token_hash))

    def end_user_sessions(self, user_id: int) -> int:
        with self.db.session() as s:
            return _execute(s, delete(SignInSession).where(SignInSession.user_id == user_id))

    # conversations ----------------------------------------------------------------------------

    def create_conversation(
        self,
        user_id: int,
        *,
        title: str = "",
        backend: str = "",
        model: str = "",
        language: str = "auto",
        reply_language: str = "auto",
    ) -> str:
        cid = uuid4().hex
        now = utcnow()
        conversation = Conversation(
            id=cid,
            user_id=user_id,
            title=storable_text(title),
            language=language,
            reply_language=reply_language,
            backend=backend,
            model=model,
            created_at=now,
            updated_at=now,
        )
        try:
            with self.db.session() as s:
                s.add(conversation)
        except IntegrityError as exc:
            raise NotFound("user not found") from exc
        return cid

    def list_conversations(self, user_id: int, limit: int = 200, offset: int = 0) -> list[ConversationRow]:
        """Newest activity first; ordered straight off ix_conversations_user_updated."""
        stmt = (
            select(*sql.CONVERSATION_COLUMNS)
            .where(Conversation.user_id == user_id)
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self.db.session() as s:
            return [ConversationRow(*row) for row in s.execute(stmt)]

    def get_conversation(self, user_id: int, cid: str) -> ConversationRow:
        with self.db.session() as s:
            return _conversation(s, user_id, cid)

    def turn_state(self, user_id: int, cid: str) -> TurnState:
        with self.db.transaction() as c:
            return TurnState(_conversation(c, user_id, cid), _messages(c, cid), _documents(c, cid))

    def rename_conversation(self, user_id: int, cid: str, title: str) -> None:
        self._update_conversation(user_id, cid, {"title": storable_text(title)})

    def replace_title(self, user_id: int, cid: str, expected: str, title: str) -> bool:
        """Set ``title`` only while the conversation is still called ``expected``; False when a
        rename came first. A title the model took seconds to make never overwrites the user's."""
        stmt = (
            update(Conversation)
            .where(_owned(user_id, cid), Conversation.title == expected)
            .values(title=storable_text(title))
        )
        with self.db.session() as s:
            if _execute(s, stmt) == 1:
                return True
        self.get_conversation(user_id, cid)  # a missing or foreign conversation still raises
        return False

    def set_marked(self, user_id: int, cid: str, marked: bool) -> None:
        self._update_conversation(user_id, cid, {"marked": marked})

    def update_conversation(
        self,
        user_id: int,
        cid: str,
        *,
        backend: str | None = None,
        model: str | None = None,
        language: str | None = None,
        reply_language: str | None = None,
    ) -> None:
        values = {"backend": backend, "model": model, "language": language, "reply_language": reply_language}
        self._update_conversation(user_id, cid, {k: v for k, v in values.items() if v is not None})

    def _update_conversation(self, user_id: int, cid: str, values: dict[str, Any]) -> None:
        if not values:
            self.get_conversation(user_id, cid)  # nothing to change, but a bad id still raises
            return
        stmt = update(Conversation).where(_owned(user_id, cid)).values(**values)
        with self.db.session() as s:
            if _execute(s, stmt) == 0:
                raise NotFound(_NO_CONVERSATION)

    def delete_conversation(self, user_id: int, cid: str) -> None:
        """Messages, attachments and their search index entries go with it (FK cascade)."""
        with self.db.session() as s:
            if _execute(s, delete(Conversation).where(_owned(user_id, cid))) == 0:
                raise NotFound(_NO_CONVERSATION)

    # messages ---------------------------------------------------------------------------------

    def messages(self, user_id: int, cid: str) -> list[MessageRow]:
        with self.db.session() as s:
            _require_conversation(s, user_id, cid)
            return _messages(s, cid)

    def add_message(
        self,
        user_id: int,
        cid: str,
        role: str,
        content: str,
        *,
        status: str = "complete",
        backend: str | None = None,
        model: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
    ) -> int:
        _check_status(status)
        now = utcnow()
        with self.db.transaction() as c:
            _bump_conversation(c, user_id, cid, now)
            return _insert_message(
                c,
                cid,
                now,
                role,
                storable_text(content),
                status,
                backend=backend,
                model=model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )

    def add_exchange(self, user_id: int, cid: str, text: str, *, backend: str, model: str) -> tuple[int, int]:
        """A user message and its empty streaming reply, in one transaction; returns both ids."""
        now = utcnow()
        with self.db.transaction() as c:
            _bump_conversation(c, user_id, cid, now)
            # One at a time: the reply's id follows the question's.
            question_id = _insert_message(c, cid, now, "user", storable_text(text), "complete")
            reply_id = _insert_message(
                c, cid, now, "assistant", "", "streaming", backend=backend, model=model
            )
            return question_id, reply_id

    def checkpoint_message(
        self,
        user_id: int,
        message_id: int,
        content: str,
        *,
        status: str,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
    ) -> None:
        """Save a streaming reply so far. The hot path: one UPDATE, one commit."""
        _check_status(status)
        params = {
            "mid": message_id,
            "uid": user_id,
            "new_content": storable_text(content),
            "new_status": status,
            "now": utcnow(),
            "new_prompt_tokens": prompt_tokens,
            "new_completion_tokens": completion_tokens,
        }
        with self.db.transaction() as c:
            if _rowcount(c.execute(sql.CHECKPOINT_MESSAGE, params)) == 0:
                raise NotFound(_NO_MESSAGE)

    def delete_messages_from(self, user_id: int, cid: str, message_id: int) -> int:
        """Delete a message and every later one in its conversation (regenerate, edit)."""
        found = (
            select(Message.id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.id == message_id, _owned(user_id, cid))
        )
        with self.db.session() as s:
            if s.scalar(found) is None:
                raise NotFound(_NO_MESSAGE)
            stmt = delete(Message).where(Message.conversation_id == cid, Message.id >= message_id)
            deleted = _execute(s, stmt)
            _bump_conversation(s, user_id, cid, utcnow())
            return deleted

    def touch_streaming(self, message_ids: Sequence[int]) -> None:
        """The heartbeat of replies still streaming: their writer is alive (see app/heartbeat.py)."""
        stmt = (
            update(Message)
            .where(Message.id.in_(message_ids), Message.status == "streaming")
            .values(updated_at=utcnow())
        )
        with self.db.session() as s:
            _execute(s, stmt)

    def mark_streaming_interrupted(self, *, stale_after: float | None = None) -> int:
        """Mark replies that were streaming when their writer died as interrupted.

        Any process sharing the database must pass ``stale_after`` (seconds since the last checkpoint
        or heartbeat), or it would mark the live streams of a server or replica as interrupted.
        """
        stmt = update(Message).where(Message.status == "streaming")
        if stale_after is not None:
            stmt = stmt.where(Message.updated_at < utcnow() - timedelta(seconds=stale_after))
        with self.db.session() as s:
            return _execute(s, stmt.values(status="interrupted", updated_at=utcnow()))

    # search -----------------------------------------------------------------------------------

    def search(self, user_id: int, query: str, limit: int = 50) -> list[SearchHit]:
        """The user's messages that contain every word of ``query``, newest first.

        Each whitespace-separated word is matched as a literal (quoted) term, so FTS syntax in user
        input (quotes, AND/OR/NOT, *, -, column:) is searched for, never interpreted.
        """
        terms = search_terms(query)
        if not terms or limit <= 0:
            return []
        with self.db.session() as s:
            if self.db.dialect == "sqlite":
                return _search_sqlite(s, user_id, terms, limit)
            if self.db.dialect == "postgresql":
                return _search_postgres(s, user_id, terms, limit)
            return _search_like(s, user_id, terms, limit)

    # documents --------------------------------------------------------------------------------

    def has_document(self, sha256: str) -> bool:
        with self.db.session() as s:
            return s.scalar(select(StoredDocument.sha256).where(StoredDocument.sha256 == sha256)) is not None

    def store_document(self, sha256: str, filename: str, language: str, pages: list[str]) -> None:
        """Store a document's pages (page_no 1..n) once; storing the same hash again is a no-op."""
        _check_sha256(sha256)
        if self.has_document(sha256):
            return
        pages = [storable_text(page) for page in pages]
        document = StoredDocument(
            sha256=sha256,
            filename=filename,
            pages=len(pages),
            chars=sum(len(page) for page in pages),
            language=language,
            created_at=utcnow(),
        )
        rows = [{"sha256": sha256, "page_no": i, "text": page} for i, page in enumerate(pages, start=1)]
        try:
            with self.db.session() as s:
                s.add(document)
                s.flush()
                if rows:
                    s.execute(insert(DocumentPage), rows)
        except IntegrityError:
            if not self.has_document(sha256):  # not a concurrent store of the same file
                raise

    def attach_document(self, user_id: int, cid: str, sha256: str) -> None:
        """Link a stored document to a conversation; attaching it twice is a no-op."""
        with self.db.session() as s:
            _require_conversation(s, user_id, cid)
            if s.get(StoredDocument, sha256) is None:
                raise NotFound(_NO_DOCUMENT)
            if s.get(ConversationDocument, (cid, sha256)) is None:
                s.add(ConversationDocument(conversation_id=cid, sha256=sha256, created_at=utcnow()))

    def conversation_documents(self, user_id: int, cid: str) -> list[str]:
        """sha256s of the documents attached to the conversation, in attachment order."""
        with self.db.session() as s:
            _require_conversation(s, user_id, cid)
            return _documents(s, cid)

    def conversation_with_document(self, user_id: int, sha256: str) -> str | None:
        """The user's most recently updated conversation that has this document attached."""
        stmt = (
            select(Conversation.id)
            .join(ConversationDocument, ConversationDocument.conversation_id == Conversation.id)
            .where(Conversation.user_id == user_id, ConversationDocument.sha256 == sha256)
            .order_by(Conversation.updated_at.desc())
            .limit(1)
        )
        with self.db.session() as s:
            return s.scalar(stmt)

    def document_pages(self, sha256: str) -> list[str]:
        """Page texts in order (index i is page i + 1); empty for an unknown hash."""
        stmt = select(DocumentPage.text).where(DocumentPage.sha256 == sha256).order_by(DocumentPage.page_no)
        with self.db.session() as s:
            return list(s.scalars(stmt))

    def search_document(self, sha256: str, query: str, limit: int = 8) -> list[tuple[int, str]]:
        """(page_no, text) of the pages most relevant to any word of ``query``, best first."""
        _check_sha256(sha256)
        terms = search_terms(query)
        if not terms or limit <= 0:
            return []
        with self.db.session() as s:
            if self.db.dialect == "sqlite":
                return _search_document_sqlite(s, sha256, terms, limit)
            if self.db.dialect == "postgresql":
                return _search_document_postgres(s, sha256, terms, limit)
            return _search_document_like(s, sha256, terms, limit)

    # summary caches ---------------------------------------------------------------------------

    def cached_summary(self, key: str) -> str | None:
        with self.db.session() as s:
            return s.scalar(select(Summary.text).where(Summary.cache_key == key))

    def cached_summary_meta(self, key: str) -> dict[str, Any] | None:
        with self.db.session() as s:
            meta = s.scalar(select(Summary.meta_json).where(Summary.cache_key == key))
        return None if meta is None else dict(json.loads(meta))

    def put_summary(self, key: str, sha256: str, text: str, meta: dict[str, Any]) -> None:
        values = {"cache_key": key, "sha256": sha256, "text": text, "meta_json": json.dumps(meta)}
        self._upsert(Summary, values)

    def document_summaries(self, sha256: str) -> list[tuple[str, dict[str, Any]]]:
        """(text, meta) of every finished summary of a document, oldest first."""
        stmt = (
            select(Summary.text, Summary.meta_json)
            .where(Summary.sha256 == sha256)
            .order_by(Summary.created_at, Summary.cache_key)
        )
        with self.db.session() as s:
            return [(text, dict(json.loads(meta))) for text, meta in s.execute(stmt)]

    def chunk_result(self, key: str) -> str | None:
        with self.db.session() as s:
            return s.scalar(select(ChunkResult.text).where(ChunkResult.cache_key == key))

    def put_chunk_result(self, key: str, sha256: str, text: str) -> None:
        self._upsert(ChunkResult, {"cache_key": key, "sha256": sha256, "text": text})

    def _upsert(self, model: type[Summary] | type[ChunkResult], values: dict[str, Any]) -> None:
        """Insert or replace by cache_key; NotFound when the document is not stored."""
        values = {**values, "text": storable_text(values["text"]), "created_at": utcnow()}
        try:
            with self.db.session() as s:
                if self.db.dialect in ("sqlite", "postgresql"):
                    s.execute(_upsert_statement(self.db.dialect, model, values))
                else:
                    s.merge(model(**values))
        except IntegrityError as exc:
            raise NotFound(_NO_DOCUMENT) from exc


# helpers shared by the methods ------------------------------------------------------------------


def _execute(session: Session, statement: Any) -> int:
    """Run an UPDATE/DELETE without ORM session syncing (nothing is cached); return its rowcount."""
    return _rowcount(session.execute(statement, execution_options={"synchronize_session": False}))


def _rowcount(result: Result[Any]) -> int:
    assert isinstance(result, CursorResult)  # always, for UPDATE and DELETE
    return int(result.rowcount)


def _conversation(db: Executor, user_id: int, cid: str) -> ConversationRow:
    row = db.execute(sql.CONVERSATION, {"cid": cid, "uid": user_id}).first()
    if row is None:
        raise NotFound(_NO_CONVERSATION)
    return ConversationRow(*row)


def _messages(db: Executor, cid: str) -> list[MessageRow]:
    """A conversation's messages, oldest first; the caller has checked its owner."""
    return [MessageRow(*row) for row in db.execute(sql.MESSAGES, {"cid": cid})]


def _documents(db: Executor, cid: str) -> list[str]:
    """sha256s attached to a conversation, in attachment order; the caller has checked its owner."""
    return list(db.execute(sql.DOCUMENTS, {"cid": cid}).scalars())


def _require_conversation(session: Session, user_id: int, cid: str) -> None:
    if session.scalar(select(Conversation.id).where(_owned(user_id, cid))) is None:
        raise NotFound(_NO_CONVERSATION)


def _bump_conversation(db: Executor, user_id: int, cid: str, now: datetime) -> None:
    """Touch the conversation before writing into it: the ownership check, and the write lock first."""
    if _rowcount(db.execute(sql.BUMP_CONVERSATION, {"cid": cid, "uid": user_id, "now": now})) == 0:
        raise NotFound(_NO_CONVERSATION)


def _insert_message(
    db: Executor,
    cid: str,
    now: datetime,
    role: str,
    content: str,
    status: str,
    *,
    backend: str | None = None,
    model: str | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
) -> int:
    params = {
        "cid": cid,
        "now": now,
        "new_role": role,
        "new_content": content,
        "new_status": status,
        "new_backend": backend,
        "new_model": model,
        "new_prompt_tokens": prompt_tokens,
        "new_completion_tokens": completion_tokens,
    }
    result = db.execute(sql.INSERT_MESSAGE, params)
    assert isinstance(result, CursorResult) and result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def _upsert_statement(dialect: str, model: type[Summary] | type[ChunkResult], values: dict[str, Any]) -> Any:
    stmt = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(model).values(**values)
    changed = {k: v for k, v in values.items() if k != "cache_key"}
    return stmt.on_conflict_do_update(index_elements=["cache_key"], set_=changed)


# Message search lists the newest matches first, on every database. Relevance ranking was
# measured and dropped: FTS5's bm25() walks the whole posting list of every query word to count
# documents (3.5 s for a word found in most of 1M messages), whereas newest-first stops after
# `limit` hits. snippet() then runs for the emitted rows only, since FTS5 itself supplies the
# rowid order and SQLite needs no sorter.
_SQLITE_SEARCH = text(
    f"""
    SELECT m.id, m.conversation_id, c.title,
           snippet(messages_fts, 0, '{HIGHLIGHT[0]}', '{HIGHLIGHT[1]}', '…', {SNIPPET_TOKENS})
    FROM messages_fts
    JOIN messages AS m ON m.id = messages_fts.rowid
    JOIN conversations AS c ON c.id = m.conversation_id
    WHERE messages_fts MATCH :match AND c.user_id = :user_id
    ORDER BY messages_fts.rowid DESC
    LIMIT :limit
    """
)


def _search_sqlite(session: Session, user_id: int, terms: list[str], limit: int) -> list[SearchHit]:
    # Implicit AND of prefix matches: "drag" finds "dragon", as a search box is typed.
    match = " ".join(f"{fts5_phrase(t)}*" for t in terms)
    rows = session.execute(_SQLITE_SEARCH, {"match": match, "user_id": user_id, "limit": limit})
    return [SearchHit(cid, mid, title, snippet) for mid, cid, title, snippet in rows]


# The to_tsvector('simple', content) expression matches migration 0001's GIN index. ts_headline is
# costly enough that PostgreSQL evaluates it after the LIMIT.
_POSTGRES_SEARCH = text(
    f"""
    SELECT m.id, m.conversation_id, c.title,
           ts_headline('simple', m.content, q,
                       'StartSel="{HIGHLIGHT[0]}", StopSel="{HIGHLIGHT[1]}", MaxWords=24, MinWords=8')
    FROM messages AS m
    JOIN conversations AS c ON c.id = m.conversation_id,
         to_tsquery('simple', :query) AS q
    WHERE to_tsvector('simple', m.content) @@ q AND c.user_id = :user_id
    ORDER BY m.id DESC
    LIMIT :limit
    """
)


def _search_postgres(session: Session, user_id: int, terms: list[str], limit: int) -> list[SearchHit]:
    params = {"query": _prefix_tsquery(terms), "user_id": user_id, "limit": limit}
    rows = session.execute(_POSTGRES_SEARCH, params).all()
    return [SearchHit(cid, mid, title, snippet) for mid, cid, title, snippet in rows]


def _prefix_tsquery(terms: list[str]) -> str:
    """Every term as a quoted tsquery prefix ('drag':*), ANDed: user input is never tsquery syntax."""
    quoted = (term.replace("\\", "\\\\").replace("'", "''") for term in terms)
    return " & ".join(f"'{term}':*" for term in quoted)


def _search_like(session: Session, user_id: int, terms: list[str], limit: int) -> list[SearchHit]:
    """Any other database: substring match on every term, newest first."""
    stmt = (
        select(Message.id, Message.conversation_id, Conversation.title, Message.content)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Conversation.user_id == user_id, *(Message.content.icontains(t, autoescape=True) for t in terms)
        )
        .order_by(Message.id.desc())
        .limit(limit)
    )
    rows = session.execute(stmt).all()
    return [SearchHit(cid, mid, title, _snippet(content, terms)) for mid, cid, title, content in rows]


# bm25 weights per column (sha256, page_no, body): only the body text decides relevance.
_SQLITE_DOCUMENT_SEARCH = text(
    """
    SELECT page_no, body FROM document_pages_fts
    WHERE document_pages_fts MATCH :match
    ORDER BY bm25(document_pages_fts, 0.0, 0.0, 1.0)
    LIMIT :limit
    """
)


def _search_document_sqlite(
    session: Session, sha256: str, terms: list[str], limit: int
) -> list[tuple[int, str]]:
    any_term = " OR ".join(fts5_phrase(t) for t in terms)
    match = f"sha256:{fts5_phrase(sha256)} AND body:({any_term})"
    rows = session.execute(_SQLITE_DOCUMENT_SEARCH, {"match": match, "limit": limit}).all()
    return [(int(page_no), body) for page_no, body in rows]


_POSTGRES_DOCUMENT_SEARCH = text(
    """
    SELECT page_no, text FROM document_pages, websearch_to_tsquery('simple', :query) AS q
    WHERE sha256 = :sha256 AND to_tsvector('simple', text) @@ q
    ORDER BY ts_rank(to_tsvector('simple', text), q) DESC, page_no
    LIMIT :limit
    """
)


def _search_document_postgres(
    session: Session, sha256: str, terms: list[str], limit: int
) -> list[tuple[int, str]]:
    # websearch_to_tsquery never raises on odd input; "or" between plain words makes it any-word.
    words = [w for t in terms for w in "".join(ch if ch.isalnum() else " " for ch in t).split()]
    words = [w for w in words if w.lower() != "or"]
    if not words:
        return []
    params = {"query": " or ".join(words), "sha256": sha256, "limit": limit}
    return [(int(p), body) for p, body in session.execute(_POSTGRES_DOCUMENT_SEARCH, params)]


def _search_document_like(
    session: Session, sha256: str, terms: list[str], limit: int
) -> list[tuple[int, str]]:
    """Any other database: pages containing any term, those containing most terms first."""
    stmt = (
        select(DocumentPage.page_no, DocumentPage.text)
        .where(
            DocumentPage.sha256 == sha256,
            or_(*(DocumentPage.text.icontains(t, autoescape=True) for t in terms)),
        )
        .order_by(DocumentPage.page_no)
    )
    rows = session.execute(stmt).all()
    lowered = [t.lower() for t in terms]

    def score(row: tuple[int, str]) -> int:
        return sum(term in row[1].lower() for term in lowered)

    return sorted(((int(p), str(t)) for p, t in rows), key=score, reverse=True)[:limit]
