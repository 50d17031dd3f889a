"""Conversations as plain data, Markdown or JSON (CLI export and the API endpoints)."""

from __future__ import annotations

import json
from collections.abc import Sequence

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
