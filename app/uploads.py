"""Uploaded files → Documents, through the parser registered for the file's type.

The PDF parser is the built-in one; another format registers a parser for its suffixes. A file
whose suffix nobody claims goes to the PDF parser, which says plainly when it is not a PDF.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from app import formats
from app.documents import Document, DocumentError, PageProgress, extract_pdf


@dataclass(frozen=True)
class Upload:
    """A file a user handed over, and how they want it summarized."""

    path: Path
    user_id: int
    name: str = ""  # the name the user knows it by; the path's name when empty
    password: str | None = None
    language: str = "auto"
    backend: str | None = None
    conversation_id: str | None = None

    @property
    def filename(self) -> str:
        return self.name or self.path.name


@dataclass(frozen=True)
class ReadControl:
    """What a parser reports to and hears from its caller while it reads."""

    progress: PageProgress | None = None
    cancel: threading.Event | None = None
    language: str | None = None  # the user's Llama language, when chosen: OCR prefers it
    ocr_progress: PageProgress | None = None  # scanned pages read by OCR, of those to read


Parser = Callable[[Path, str, str | None, ReadControl], Document]


def _parse_pdf(path: Path, name: str, password: str | None, control: ReadControl) -> Document:
    return extract_pdf(
        path,
        filename=name,
        password=password,
        progress=control.progress,
        cancel=control.cancel,
        ocr_language=control.language,
        ocr_progress=control.ocr_progress,
    )


_PARSERS: dict[str, Parser] = {".pdf": _parse_pdf}


def register_parser(suffixes: Iterable[str], parser: Parser) -> None:
    for suffix in suffixes:
        _PARSERS[suffix.lower()] = parser


for _suffix, _parser in formats.PARSERS.items():  # .txt, .md, .html, .docx, .epub
    register_parser([_suffix], _parser)


def supported_suffixes() -> list[str]:
    return sorted(_PARSERS)


def read_upload(
    path: Path, name: str = "", password: str | None = None, control: ReadControl | None = None
) -> Document:
    """The file's document, read by the parser for its type; DocumentError for a bad file."""
    name = name or path.name
    parser = _PARSERS.get(Path(name).suffix.lower(), _parse_pdf)
    try:
        return parser(path, name, password or None, control or ReadControl())
    except OSError as exc:
        raise DocumentError("not_pdf", f"cannot read {name}: {exc.strerror or exc}") from exc
