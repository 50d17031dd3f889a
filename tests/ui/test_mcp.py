"""The MCP server (Gradio's, at /gradio_api/mcp/) driven by the real `mcp` Python client."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, Tool

from app.api_keys import create_key
from app.users import add_user
from backends.scripted import ScriptedBackend, replying
from tests.conftest import make_app
from tests.pdfs import text_pdf
from tests.ui.conftest import Served, serving

TOOLS = {"summarize_document", "ask_document", "send_message", "search_conversations"}
PAGES = [
    "The lighthouse at Cape Wrath was built in 1828 by Robert Stevenson, on a cliff 120 metres high.",
    "In 1923 the keeper, Ada Lund, installed an electric lamp that could be seen for 30 miles at sea.",
]


def mcp_url(served: Served) -> str:
    return f"{served.url.rstrip('/')}/gradio_api/mcp/"


async def _with_session(url: str, key: str | None, work: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    async with (
        httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(900)) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await work(session)


def run_in_own_loop(url: str, key: str | None, work: Any) -> Any:
    # The session's sync Playwright holds the main thread's event loop, so asyncio.run gets a thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _with_session(url, key, work)).result()


def list_tools(served: Served, key: str | None = None) -> dict[str, Tool]:
    async def work(session: ClientSession) -> dict[str, Tool]:
        return {tool.name: tool for tool in (await session.list_tools()).tools}

    return run_in_own_loop(mcp_url(served), key, work)


def call(served: Served, tool: str, arguments: dict[str, Any], key: str | None = None) -> CallToolResult:
    async def work(session: ClientSession) -> CallToolResult:
        return await session.call_tool(tool, arguments)

    return run_in_own_loop(mcp_url(served), key, work)


def result_json(result: CallToolResult) -> Any:
    assert not result.isError, result.content
    text = result.content[0].text  # type: ignore[union-attr]
    return json.loads(text)


def error_text(result: CallToolResult) -> str:
    assert result.isError, result.content
    return " ".join(getattr(c, "text", "") for c in result.content)


# Replies as a model following the summary prompt writes them, citing pages. The MCP wiring is what is
# tested here; the real model's summaries are tested in tests/app/test_summarize.py and test_formats.py.
CITING = "Cape Wrath's lighthouse dates from 1828 (p. 1); Ada Lund installed its electric lamp (p. 2)."


@pytest.fixture
def served_quick(db_url: str) -> Iterator[Served]:
    app = make_app(db_url, ScriptedBackend(handler=replying(CITING)))
    with serving(app) as served:
        yield served
    app.close()


def test_tools_have_descriptions_and_typed_arguments(served_quick: Served) -> None:
    tools = list_tools(served_quick)
    assert set(tools) >= TOOLS
    summarize = tools["summarize_document"]
    assert "page citations" in (summarize.description or "")
    properties = summarize.inputSchema["properties"]
    assert properties["document"]["type"] == "string" and "data URL" in properties["document"]["description"]
    assert properties["language"]["type"] == "string" and properties["language"]["default"] == "auto"
    assert summarize.inputSchema["required"] == ["document"]
    for name in TOOLS:
        assert tools[name].description and all(
            p.get("description") for p in tools[name].inputSchema["properties"].values()
        ), f"{name}: every argument is described"


def test_summarize_a_pdf_then_ask_about_it_and_find_it(served_quick: Served, tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "lighthouse.pdf", PAGES)
    summary = result_json(call(served_quick, "summarize_document", {"document": str(pdf), "language": "en"}))
    assert summary["summary"].strip() and summary["pages"] == 2 and summary["language"] == "en"
    assert summary["citations"], summary["summary"]
    assert [c["pages"] for c in summary["citations"]] == [[1, 1], [2, 2]]
    for citation in summary["citations"]:
        first, last = citation["pages"]
        assert 1 <= first <= last <= 2
        assert (f"p. {first}" if first == last else f"pp. {first}–{last}") in summary["summary"]
    app, cid = served_quick.app, summary["conversation_id"]
    assert app.repo.conversation_documents(app.local_user_id(), cid), "the document stays for questions"

    answer = result_json(
        call(
            served_quick,
            "ask_document",
            {"conversation_id": cid, "question": "Who installed the lamp?", "max_tokens": 32},
        )
    )
    assert answer["answer"].strip() and answer["conversation_id"] == cid
    assert [m.role for m in app.repo.messages(app.local_user_id(), cid)][-2:] == ["user", "assistant"]

    found = result_json(call(served_quick, "search_conversations", {"query": "installed lamp"}))
    assert cid in {hit["conversation_id"] for hit in found}

    upload = "data:application/pdf;base64," + base64.b64encode(pdf.read_bytes()).decode()
    again = result_json(call(served_quick, "summarize_document", {"document": upload}))
    assert again["summary"] == summary["summary"], "the same file is summarized from the cache"

    missing = call(served_quick, "summarize_document", {"document": str(tmp_path / "nope.pdf")})
    assert "no such file" in error_text(missing)


def test_with_auth_tools_need_a_key_and_see_only_their_users_data(db_url: str, tmp_path: Path) -> None:
    """Ownership wiring: a scripted backend is enough, the real model paths are tested above."""
    app = make_app(db_url, ScriptedBackend(handler=replying("Noted.")))
    try:
        add_user(app.repo, "alice", "alice-password-1")
        add_user(app.repo, "bob", "bob-password-22")
        alice, bob = create_key(app.repo, "alice"), create_key(app.repo, "bob")
        with serving(app, auth=True) as served:
            assert set(list_tools(served, alice)) >= TOOLS
            refused = call(served, "send_message", {"message": "hello"})
            assert "API key" in error_text(refused)
            assert "API key" in error_text(call(served, "send_message", {"message": "hi"}, "ldk-forged"))

            mine = result_json(
                call(served, "send_message", {"message": "alice-secret zebra", "max_tokens": 8}, alice)
            )
            cid = mine["conversation_id"]
            assert [
                h["conversation_id"]
                for h in result_json(call(served, "search_conversations", {"query": "zebra"}, alice))
            ] == [cid]
            assert result_json(call(served, "search_conversations", {"query": "zebra"}, bob)) == []
            stolen = call(served, "ask_document", {"conversation_id": cid, "question": "what?"}, bob)
            assert "not found" in error_text(stolen)
            alice_id = app.repo.user_id("alice")
            assert alice_id is not None and len(app.repo.messages(alice_id, cid)) == 2

            pdf = text_pdf(tmp_path / "secret.pdf", PAGES)
            local_file = call(served, "summarize_document", {"document": str(pdf)}, bob)
            assert "data URL" in error_text(local_file), "with --auth no one reads the server's files"
    finally:
        app.close()
