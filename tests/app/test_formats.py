"""Documents that are not PDFs go through the same pipeline; their sections are their pages.

The .docx and .epub files are made at test time with the same libraries users' tools write them with.
"""

from __future__ import annotations

from pathlib import Path

import docx
import pytest
from ebooklib import epub

from app.chat import ChatSettings
from app.core import App
from app.doc_chat import run_to_end
from app.documents import DocumentError
from app.formats import name_sections
from app.uploads import read_upload as read_document
from backends.scripted import ScriptedBackend, replying
from tests.conftest import make_app

CHAPTERS = [
    ("Building the lighthouse", "The lighthouse at Cape Wrath was built in 1828 by Robert Stevenson."),
    ("The electric lamp", "In 1923 the keeper, Ada Lund, installed an electric lamp seen 30 miles away."),
    ("Visitors today", "Today a ferry and a minibus bring visitors to the cape every summer day."),
]
TITLES = [title for title, _ in CHAPTERS]
SHORT = ChatSettings(max_tokens=24, temperature=0.0, seed=1)


def make_docx(path: Path) -> Path:
    document = docx.Document()
    document.add_heading("Cape Wrath", level=0)
    for title, text in CHAPTERS:
        document.add_heading(title, level=1)
        document.add_paragraph(text)
        document.add_paragraph("It is one of the most remote places in Britain.")
    document.save(str(path))
    return path


def make_epub(path: Path) -> Path:
    book = epub.EpubBook()
    book.set_identifier("cape-wrath-1")
    book.set_title("Cape Wrath")
    book.set_language("en")
    chapters = []
    for number, (title, text) in enumerate(CHAPTERS, start=1):
        chapter = epub.EpubHtml(title=title, file_name=f"chapter{number}.xhtml", lang="en")
        chapter.content = (
            f"<html><body><h1>{title}</h1><p>{text}</p><p>The wind blows hard.</p></body></html>"
        )
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = chapters
    epub.write_epub(str(path), book)
    return path


def test_docx_and_epub_sections_are_their_pages(tmp_path: Path) -> None:
    word = read_document(make_docx(tmp_path / "cape.docx"))
    assert word.sections == tuple(TITLES)
    assert "Ada Lund" in word.pages[1] and word.language == "en"
    book = read_document(make_epub(tmp_path / "cape.epub"))
    assert book.sections == tuple(TITLES)
    assert "Ada Lund" in book.pages[1] and "The wind blows hard." in book.pages[2]


def test_text_markdown_and_html(tmp_path: Path) -> None:
    markdown = tmp_path / "notes.md"
    markdown.write_text(
        "Intro line.\n\n# Building the lighthouse\n\nBuilt in **1828**.\n\n"
        "## The electric lamp\n\nIn 1923.\n",
        encoding="utf-8",
    )
    md = read_document(markdown)
    assert md.sections == ("notes", "Building the lighthouse", "The electric lamp")
    assert md.pages[1].endswith("Built in **1828**.")

    page = tmp_path / "page.html"
    page.write_text(
        "<html><head><title>Cape</title><script>alert(1)</script></head><body><nav>Menu</nav>"
        "<h1>Building the lighthouse</h1><p>Built in 1828.</p>"
        "<h2>The electric lamp</h2><ul><li>1923</li></ul>"
        "</body></html>",
        encoding="utf-8",
    )
    html = read_document(page)
    assert html.sections == ("Building the lighthouse", "The electric lamp")
    assert html.pages == ["Built in 1828.", "1923"]

    text = tmp_path / "plain.txt"
    text.write_text("\n\n".join(f"Paragraph {i} " + "words " * 200 for i in range(6)), encoding="utf-8")
    plain = read_document(text)
    assert plain.page_count > 1 and plain.sections[0] == "part 1"


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("broken.docx", b"PK\x03\x04 not really a zip", "corrupt"),
        ("broken.epub", b"\x00\x01garbage" * 100, "corrupt"),
        ("empty.docx", b"", "empty"),
        ("empty.md", b"", "empty"),
        ("binary.txt", b"\xff\xfe\x00\xd8\x00\xd8" * 50, "corrupt"),
        ("blank.html", b"<html><body><script>x()</script></body></html>", "no_text"),
    ],
)
def test_bad_files_get_the_typed_errors_of_bad_pdfs(
    tmp_path: Path, name: str, content: bytes, code: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DocumentError) as error:
        read_document(path)
    assert error.value.code == code and str(error.value)


def test_citations_name_the_sections() -> None:
    named = name_sections("Built early (p. 1), lit in 1923 (pp. 2–3); see p. 9.", TITLES)
    assert named == (
        "Built early (§1 “Building the lighthouse”), "
        "lit in 1923 (§2 “The electric lamp” – §3 “Visitors today”); see p. 9."
    )


CITING = "It was built in 1828 (p. 1) and lit electrically in 1923 (pp. 2–3)."


@pytest.fixture
def quick_app(db_url: str) -> App:
    """The summary path with a backend that cites as the summary prompt asks: the real model is far
    too slow for this on a loaded 2-core machine, and its summaries are tested in test_summarize.py."""
    app = make_app(db_url, ScriptedBackend(handler=replying(CITING)))
    yield app  # type: ignore[misc]
    app.close()


@pytest.mark.parametrize("maker", [make_docx, make_epub])
def test_docx_and_epub_are_summarized_with_section_citations(
    quick_app: App, tmp_path: Path, maker: object
) -> None:
    path = maker(tmp_path / f"cape.{'docx' if maker is make_docx else 'epub'}")  # type: ignore[operator]
    doc = read_document(path)
    outcome = run_to_end(quick_app.documents.summary_events(quick_app.local_user_id(), doc))
    summary = outcome.result.summary
    assert outcome.result.citations == [(1, 1), (2, 3)], summary
    assert "(§1 “Building the lighthouse”)" in summary
    assert "(§2 “The electric lamp” – §3 “Visitors today”)" in summary
    stored = quick_app.repo.messages(quick_app.local_user_id(), outcome.conversation_id)
    assert stored[-1].content == summary

    follow_up = list(
        quick_app.chat.send(
            quick_app.local_user_id(), outcome.conversation_id, "Who installed the electric lamp?", SHORT
        )
    )
    assert follow_up[-1].reply.strip() or follow_up[-2].reply.strip()
