"""Conversations as plain data, Markdown or JSON (CLI export and the API endpoints)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from storage.repo import ConversationRow, MessageRow

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
