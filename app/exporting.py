"""Conversations as plain data, Markdown or JSON (CLI export and the API endpoints)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from app import prompts
from storage.repo import ConversationRow, MessageRow, Repository

ROLE_HEADINGS = {"user": "User", "assistant": "Assistant", "system": "System"}


def conversation_summary(row: ConversationRow) -> dict[str, object]:
    return {
        "id": row.id,
        "title": row.title,
        "updated_at": row.updated_at.isoformat(),
        "language": row.language,
    }


def conversation_dict(row: ConversationRow, messages: Sequence[MessageRow]) -> dict[str, object]:
    return {
        "id": row.id,
        "title": row.title,
        "language": row.language,
        "backend": row.backend,
        "model": row.model,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "messages": [
            {
                "id": m.id,
                "role": m.role,
                "content": m.content,
                "status": m.status,
                "created_at": m.created_at.isoformat(),
            }
            for m in messages
        ],
    }


def to_markdown(row: ConversationRow, messages: Sequence[MessageRow]) -> str:
    lines = [f"# {row.title or 'Conversation'}", "", f"- id: `{row.id}`", f"- language: {row.language}"]
    if row.model:
        lines.append(f"- model: {row.model} ({row.backend})")
    lines.append(f"- updated: {row.updated_at:%Y-%m-%d %H:%M} UTC")
    for m in messages:
        note = "" if m.status == "complete" else f" *({m.status})*"
        lines += ["", f"## {ROLE_HEADINGS.get(m.role, m.role)}{note}", "", m.content]
    return "\n".join(lines) + "\n"


def render(row: ConversationRow, messages: Sequence[MessageRow], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(conversation_dict(row, messages), ensure_ascii=False, indent=2)
    return to_markdown(row, messages)


# -- training data: chat-format JSONL ("jsonl-sft") ------------------------------------------------

# A document longer than this is left out of the summary pairs: an excerpt of it would pair a part
# of the text with a summary of the whole, teaching a model to invent the rest.
SFT_MAX_DOCUMENT_CHARS = 100_000


@dataclass(frozen=True)
class SftFilter:
    backend: str | None = None  # a backend name or a model name; replies from others end the row
    since: datetime | None = None  # conversations started at or after this moment
    marked_only: bool = False  # only conversations their owner marked for training


@dataclass
class SftReport:
    conversations: int = 0
    summaries: int = 0
    skipped_documents: int = 0  # summaries of documents over SFT_MAX_DOCUMENT_CHARS


def sft_rows(
    repo: Repository, user_id: int, only: SftFilter, report: SftReport | None = None
) -> Iterator[dict]:
    """{"messages": [...]} rows of one user's conversations, then (document, summary) pairs.

    A reply that is not complete (stopped, crashed, failed) ends its conversation's row there:
    everything after it was said in answer to a reply the model never finished.
    """
    report = report if report is not None else SftReport()
    for row in repo.list_conversations(user_id, limit=1_000_000):
        if only.marked_only and not row.marked:
            continue
        if only.since is not None and row.created_at < only.since:
            continue
        messages = repo.messages(user_id, row.id)
        summaries = _document_summaries(repo, user_id, row.id)
        turns = _training_turns(messages, only.backend, set(summaries))
        if turns:
            report.conversations += 1
            yield {"messages": turns}
        for reply in messages:
            if reply.role != "assistant" or reply.content not in summaries or not _from(reply, only.backend):
                continue
            pair = _summary_pair(summaries[reply.content], reply.content)
            if pair is None:
                report.skipped_documents += 1
                continue
            report.summaries += 1
            yield pair


def _from(message: MessageRow, backend: str | None) -> bool:
    return backend is None or backend in (message.backend, message.model)


def _training_turns(
    messages: Sequence[MessageRow], backend: str | None, summaries: set[str]
) -> list[dict[str, str]]:
    """Complete user → assistant exchanges up to the first reply that is incomplete or off-filter.

    Document summaries are left out here: without their document they teach nothing, and they are
    exported as (document, summary) pairs instead.
    """
    turns: list[dict[str, str]] = []
    question: MessageRow | None = None
    for message in messages:
        if message.role == "user":
            question = message
            continue
        if message.role != "assistant" or question is None:
            continue
        if message.status != "complete" or not message.content or not _from(message, backend):
            break
        if message.content not in summaries:
            turns += [
                {"role": "user", "content": question.content},
                {"role": "assistant", "content": message.content},
            ]
        question = None
    return turns


@dataclass(frozen=True)
class _SummarySource:
    language: str
    pages: list[str]


def _document_summaries(repo: Repository, user_id: int, cid: str) -> dict[str, _SummarySource]:
    """Summary text → its document, for the documents attached to one of the user's conversations."""
    found: dict[str, _SummarySource] = {}
    for sha256 in repo.conversation_documents(user_id, cid):
        pages = repo.document_pages(sha256)
        for text, meta in repo.document_summaries(sha256):
            found.setdefault(text, _SummarySource(str(meta.get("language") or "en"), pages))
    return found


def _summary_pair(source: _SummarySource, summary: str) -> dict[str, list[dict[str, str]]] | None:
    """The document as the summarizer reads it (with its [page N] marks, which the summary's citations
    refer to), and the summary."""
    marked = "\n".join(f"[page {n}]\n{text}" for n, text in enumerate(source.pages, start=1) if text.strip())
    if len(marked) > SFT_MAX_DOCUMENT_CHARS:
        return None
    return {
        "messages": [
            {"role": "system", "content": prompts.summary_instruction(source.language)},
            {"role": "user", "content": marked},
            {"role": "assistant", "content": summary},
        ]
    }


def write_jsonl(rows: Iterable[dict], out: TextIO) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


# -- import ------------------------------------------------------------------------------------------


class ImportRejected(ValueError):
    """The file is not a conversation export; the message says what is wrong."""


IMPORT_ROLES = ("user", "assistant", "system")
IMPORT_STATUSES = ("complete", "interrupted")


def import_conversation(repo: Repository, user_id: int, raw: str) -> str:
    """Store a conversation from its JSON export as a new conversation of `user_id`; returns its id.

    Everything is checked before anything is written, so a bad file adds nothing.
    """
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImportRejected(f"not JSON: {exc.msg} (line {exc.lineno})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise ImportRejected("not a llamadesk conversation: no list of messages")
    messages: list[tuple[str, str, str]] = []
    for n, m in enumerate(data["messages"], 1):
        role = m.get("role") if isinstance(m, dict) else None
        content = m.get("content") if isinstance(m, dict) else None
        if role not in IMPORT_ROLES or not isinstance(content, str):
            raise ImportRejected(f"message {n} needs a role ({', '.join(IMPORT_ROLES)}) and text content")
        status = str(m.get("status")) if m.get("status") in IMPORT_STATUSES else "complete"
        messages.append((str(role), content, status))
    language = str(data.get("language") or "auto")
    cid = repo.create_conversation(user_id, title=str(data.get("title") or "Imported"), language=language)
    for role, content, status in messages:
        repo.add_message(user_id, cid, role, content, status=status)
    return cid
