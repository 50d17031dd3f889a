"""Documents that are not PDFs: .txt, .md, .html, .docx and .epub, read by maintained parsers.

Their "pages" are their sections (headings, chapters, or blocks of paragraphs for plain text), so
they go through the same pipeline as a PDF: language detection, the plan, the summary and
follow-up questions. Each section keeps its title, and a summary's page citations are rewritten
to name the sections they point at. A file that cannot be read raises the same typed
DocumentError as a bad PDF.
"""

from __future__ import annotations

import hashlib
import re
import threading
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.documents import (
    DEFAULT_LIMITS,
    Document,
    DocumentError,
    ExtractionCancelled,
    tidy_page_text,
)
from app.documents import _detect_language as detect_language

if TYPE_CHECKING:  # app.uploads registers these parsers, so it imports this module at run time
    from app.uploads import Parser, ReadControl

# Plain text has no headings: paragraphs are grouped into parts of about this size.
TEXT_PART_CHARS = 3000
_HEADING_TAGS = ("h1", "h2", "h3")


@dataclass(frozen=True)
class Section:
    title: str
    text: str


# -- the parsers ---------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    size = path.stat().st_size
    if size > DEFAULT_LIMITS.max_bytes:
        raise DocumentError("too_large", f"The file is {size / 1e6:,.1f} MB; the limit is 200 MB.")
    data = path.read_bytes()
    if not data:
        raise DocumentError("empty")
    return data


def _decode(data: bytes, name: str) -> str:
    for encoding in ("utf-8-sig", "utf-16"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" not in text:
            return text
    raise DocumentError("corrupt", f"{name} is not a text file (it is neither UTF-8 nor UTF-16).")


def parse_text(path: Path, name: str, password: str | None, control: ReadControl) -> Document:
    data = _read_bytes(path)
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", _decode(data, name)) if p.strip()]
    parts: list[list[str]] = []
    size = 0
    for paragraph in paragraphs:
        if not parts or size + len(paragraph) > TEXT_PART_CHARS:
            parts.append([])
            size = 0
        parts[-1].append(paragraph)
        size += len(paragraph)
    sections = [Section(f"part {n}", "\n\n".join(p)) for n, p in enumerate(parts, start=1)]
    return _document(data, name, sections, control.cancel)


def parse_markdown(path: Path, name: str, password: str | None, control: ReadControl) -> Document:
    from markdown_it import MarkdownIt

    data = _read_bytes(path)
    source = _decode(data, name)
    lines = source.splitlines()
    tokens = MarkdownIt("commonmark").parse(source)
    # Headings of level 1-3 start sections; the line map says where each one begins.
    starts: list[tuple[int, str]] = []
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag in _HEADING_TAGS and token.map:
            starts.append((token.map[0], tokens[index + 1].content.strip()))
    if not starts or starts[0][0] > 0:
        starts.insert(0, (0, Path(name).stem))
    bounds = [*(line for line, _ in starts[1:]), len(lines)]
    sections = [
        Section(title, "\n".join(lines[start:end]))
        for (start, title), end in zip(starts, bounds, strict=True)
    ]
    return _document(data, name, sections, control.cancel)


def parse_html(path: Path, name: str, password: str | None, control: ReadControl) -> Document:
    data = _read_bytes(path)
    return _document(data, name, _html_sections(data, Path(name).stem), control.cancel)


def _html_sections(markup: bytes, default_title: str) -> list[Section]:
    """Sections of an HTML page at its h1-h3 headings; scripts, styles and navigation are dropped."""
    from bs4 import BeautifulSoup, Tag

    with warnings.catch_warnings():  # bs4 warns about markup that merely looks like a file name or URL
        warnings.simplefilter("ignore")
        soup = BeautifulSoup(markup, "html.parser")
    for junk in soup(["script", "style", "nav", "noscript", "template", "head"]):
        junk.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    sections = [Section(title or default_title, "")]
    body = soup.body or soup
    for element in body.find_all([*_HEADING_TAGS, "p", "li", "pre", "blockquote", "td", "th", "dt", "dd"]):
        if not isinstance(element, Tag) or element.find_parent(["p", "li", "pre", "blockquote", "td"]):
            continue  # its text is already part of the enclosing block
        text = element.get_text(" ", strip=True)
        if element.name in _HEADING_TAGS:
            sections.append(Section(text or default_title, ""))
        elif text:
            last = sections[-1]
            sections[-1] = Section(last.title, f"{last.text}\n\n{text}" if last.text else text)
    return sections


def parse_docx(path: Path, name: str, password: str | None, control: ReadControl) -> Document:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    data = _read_bytes(path)
    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise DocumentError(
            "corrupt", f"{name} is not a readable .docx file ({type(exc).__name__})."
        ) from exc
    sections = [Section(Path(name).stem, "")]
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        if style.startswith("Heading") or style == "Title":
            sections.append(Section(text or Path(name).stem, ""))
        elif text:
            last = sections[-1]
            sections[-1] = Section(last.title, f"{last.text}\n\n{text}" if last.text else text)
    for table in document.tables:  # tables read row by row, after the body text
        rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows]
        sections.append(Section("table", "\n".join(r for r in rows if r.strip(" |"))))
    return _document(data, name, sections, control.cancel)


def parse_epub(path: Path, name: str, password: str | None, control: ReadControl) -> Document:
    import ebooklib
    from ebooklib import epub

    data = _read_bytes(path)
    try:
        book = epub.read_epub(str(path), options={"ignore_ncx": True})
    except (epub.EpubException, zipfile.BadZipFile, KeyError, ValueError, AttributeError) as exc:
        raise DocumentError(
            "corrupt", f"{name} is not a readable .epub file ({type(exc).__name__})."
        ) from exc
    chapters: list[Section] = []
    for item_id, _linear in book.spine:
        item = book.get_item_with_id(item_id)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
            continue
        parts = _html_sections(item.get_content(), f"chapter {len(chapters) + 1}")
        text = "\n\n".join(p.text for p in parts if p.text)
        titles = [p.title for p in parts[1:]] or [parts[0].title]
        if text.strip():
            chapters.append(Section(titles[0], text))
    return _document(data, name, chapters, control.cancel)


# Registered with app.uploads by suffix, beside its built-in PDF parser.
PARSERS: dict[str, Parser] = {
    ".txt": parse_text,
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".html": parse_html,
    ".htm": parse_html,
    ".docx": parse_docx,
    ".epub": parse_epub,
}


def _document(
    data: bytes, name: str, sections: Sequence[Section], cancel: threading.Event | None
) -> Document:
    if cancel is not None and cancel.is_set():
        raise ExtractionCancelled()
    kept = [Section(s.title, tidy_page_text(s.text)) for s in sections]
    kept = [s for s in kept if s.text]
    if not kept:
        raise DocumentError("no_text", f"{name} has no text to summarize.")
    pages = [s.text for s in kept]
    return Document(
        sha256=hashlib.sha256(data).hexdigest(),
        filename=name,
        pages=pages,
        language=detect_language(pages),
        warnings=[],
        sections=tuple(_numbered_titles(kept)),
    )


def _numbered_titles(sections: Sequence[Section]) -> list[str]:
    return [" ".join(s.title.split())[:80] for s in sections]


# -- citations that name sections -----------------------------------------------------------------

_CITATION = re.compile(r"\b(pp?)\.\s*(\d+)(?:\s*[–—-]\s*(\d+))?")


def name_sections(text: str, titles: Sequence[str]) -> str:
    """ "(pp. 2–3)" → "(§2 “Setup” – §3 “Usage”)" for a document whose pages are sections."""

    def label(number: int) -> str:
        return f"§{number} “{titles[number - 1]}”"

    def swap(match: re.Match[str]) -> str:
        first = int(match.group(2))
        last = int(match.group(3) or first)
        if not 1 <= first <= last <= len(titles):
            return match.group(0)
        return label(first) if first == last else f"{label(first)} – {label(last)}"

    return _CITATION.sub(swap, text)


def with_section_names(doc: Document, summary: str) -> str:
    return name_sections(summary, doc.sections) if doc.sections else summary
