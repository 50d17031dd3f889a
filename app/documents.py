"""PDF → Document: text per page, sha256 and language, with a typed error for each way a PDF can fail.

pypdf parses untrusted input and, on a damaged file, can raise nearly any built-in exception, so every call
into it goes through a narrow fence that turns failures into `DocumentError`. It is also pure Python, so long
documents are split into page ranges and read by a pool of processes.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import multiprocessing
import os
import re
import signal
import subprocess
import threading
import time
import unicodedata
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple

from pypdf import PasswordType, PdfReader
from pypdf.errors import LimitReachedError  # pypdf >= 6: older versions have no decompression limits

from app import ocr
from app.errors import AppError, Cancelled
from app.text import strip_control_chars

ErrorCode = Literal[
    "not_pdf",
    "empty",
    "corrupt",
    "encrypted",
    "wrong_password",
    "no_text",
    "too_large",
    "limit",
    "ocr_unavailable",
]
Source = bytes | str | os.PathLike[str]
PageProgress = Callable[[int, int], None]  # pages read, pages in all

# pypdf logs a warning for every object it repairs: not actionable for users (damage reaches them as
# Document.warnings), costly on broken files, and without a handler Python would print it on stderr,
# breaking the CLI's "one clear line" promise.
_pypdf_log = logging.getLogger("pypdf")
_pypdf_log.addHandler(logging.NullHandler())
_pypdf_log.setLevel(logging.ERROR)

PARALLEL_MIN_PAGES = 64  # below this, starting processes costs more than it saves
_MIN_CHUNK = 8
_MAX_CHUNK = 64
_POLL_S = 0.1
_HEADER_WINDOW = 1024  # readers accept junk before %PDF- within the first KiB
_LANGUAGE_SAMPLES = 12
_LANGUAGE_SAMPLE_CHARS = 2000


class DocumentError(AppError):
    """A file that cannot become a Document; `code` is the CLI/JSON error code (one of ErrorCode)."""

    def __init__(self, code: ErrorCode, detail: str = "") -> None:
        if detail:
            super().__init__(code, detail=_shorten(detail))
        else:
            super().__init__(code)


class ExtractionCancelled(Cancelled):
    """The caller's cancel event was set. Not a DocumentError: the CLI exits 130 for it, not 2."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 200 * 1000 * 1000
    max_pages: int = 5000
    time_budget_s: float = 300.0


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Document:
    sha256: str
    filename: str
    pages: list[str]  # index 0 is page 1; "" for a page without text
    language: str | None
    warnings: list[str]
    # Pages read by OCR (1-based number) → Tesseract's mean word confidence, 0-100.
    ocr_confidence: dict[int, float] = field(default_factory=dict)
    # The title of each "page" when the pages are a document's sections (.docx, .epub, ...; app/formats.py).
    sections: tuple[str, ...] = ()

    @property
    def page_count(self) -> int:
        return len(self.pages)

    @property
    def chars(self) -> int:
        return sum(len(page) for page in self.pages)

    @property
    def text(self) -> str:
        return "\n\n".join(page for page in self.pages if page)


class _PageResult(NamedTuple):
    text: str  # cleaned
    problem: Literal["damaged", "limit"] | None = None  # None: the page was read
    detail: str = ""  # what pypdf said, for a limit


_Futures = dict[Future[list[_PageResult]], range]


def extract_pdf(
    source: Source,
    *,
    filename: str | None = None,
    password: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    progress: PageProgress | None = None,
    cancel: threading.Event | None = None,
    workers: int | None = None,
    run_ocr: bool = True,
    ocr_language: str | None = None,
    ocr_progress: PageProgress | None = None,
) -> Document:
    """Read a PDF (a path or its bytes) into a Document.

    `workers`: None picks all usable cores for documents over PARALLEL_MIN_PAGES pages, 1 forces one process.
    Pages without a text layer are read by Tesseract when `run_ocr` is on (app.ocr), preferring the Llama
    language `ocr_language` for Latin script; `ocr_progress` hears scanned pages read of those to read.
    Raises DocumentError for every bad input and ExtractionCancelled when `cancel` is set.
    """
    deadline = time.monotonic() + limits.time_budget_s
    data = _read_source(source, limits)
    _check_header(data)
    reader = _open(data, password)
    count = _page_count(reader, limits)
    _check_stop(deadline, cancel, limits)
    if progress:
        progress(0, count)
    n_workers = _worker_count(workers, count)
    results = None
    if n_workers > 1:
        shared = os.fspath(source) if not isinstance(source, bytes) else data
        results = _extract_parallel(
            shared, len(data), password, count, n_workers, deadline, limits, progress, cancel
        )
    if results is None:
        results = _extract_sequential(reader, count, deadline, limits, progress, cancel)
    if cancel is not None and cancel.is_set():
        raise ExtractionCancelled("PDF extraction was cancelled.")  # set during the last page: honour it
    scans = OcrPass(ocr_language, deadline, limits, ocr_progress, cancel)
    if run_ocr:
        results = scans.run(data, password, results)
    pages = _pages_or_raise(results, scans.unavailable)
    return Document(
        sha256=hashlib.sha256(data).hexdigest(),
        filename=filename or _default_name(source),
        pages=pages,
        language=_detect_language(pages),
        warnings=_page_warnings(results, scans.blank_reason()) + scans.warnings(),
        ocr_confidence=dict(sorted(scans.confidence.items())),
    )


def extract_json(doc: Document) -> dict[str, Any]:
    """The fields of `llamadesk extract --json`; pages are separated by form feeds in `text`."""
    return {
        "pages": doc.page_count,
        "chars": doc.chars,
        "language": doc.language,
        "warnings": list(doc.warnings),
        "ocr_confidence": {str(page): score for page, score in doc.ocr_confidence.items()},
        "text": "\f".join(doc.pages),
    }


# ---------------------------------------------------------------- input checks


def _read_source(source: Source, limits: Limits) -> bytes:
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        _check_size(path.stat().st_size, limits)  # before reading, so a huge file is never loaded
        data = path.read_bytes()
    _check_size(len(data), limits)
    if not data:
        raise DocumentError("empty")
    return data


def _check_size(size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise DocumentError("too_large", f"{_mb(size)}; the limit is {_mb(limits.max_bytes)}")


def _shorten(detail: str, limit: int = 120) -> str:
    flat = " ".join(detail.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def _check_header(data: bytes) -> None:
    if b"%PDF-" in data[: _HEADER_WINDOW + 5]:
        return
    head = data[:512].lower()
    if b"<html" in head or b"<!doctype html" in head:
        raise DocumentError("not_pdf", "it is a web page (HTML) renamed to .pdf")
    raise DocumentError("not_pdf")


def _default_name(source: Source) -> str:
    return "document.pdf" if isinstance(source, bytes) else Path(source).name


# ---------------------------------------------------------------- the pypdf fence


_LOOP = re.compile(r"cycl|loop", re.IGNORECASE)


def _is_limit(exc: BaseException) -> bool:
    """Did pypdf stop on size or memory? Its LimitReachedError also reports reference loops: damage."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, LimitReachedError) and not _LOOP.search(str(exc))


def _detail(exc: BaseException) -> str:
    return _shorten(str(exc) or type(exc).__name__)


def _fenced_error(exc: BaseException) -> DocumentError:
    """Map anything pypdf raised to the error the user sees."""
    if _is_limit(exc):
        return DocumentError("limit", _detail(exc))
    return DocumentError("corrupt", _detail(exc))


def _open(data: bytes | IO[bytes], password: str | None) -> PdfReader:
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        reader = PdfReader(stream, strict=False)
        if reader.is_encrypted:
            _unlock(reader, password)
    except DocumentError:
        raise
    # The fence: pypdf on hostile bytes raises PyPdfError, DependencyError (not a PyPdfError) and plain
    # ValueError, KeyError, TypeError, AssertionError, RecursionError, struct.error, zlib.error, ...
    except Exception as exc:
        raise _fenced_error(exc) from exc
    return reader


def _unlock(reader: PdfReader, password: str | None) -> None:
    # pypdf already tried the empty user password, which opens "permissions only" PDFs without asking.
    if reader.decrypt(password or "") != PasswordType.NOT_DECRYPTED:
        return
    raise DocumentError("wrong_password" if password else "encrypted")


def _page_count(reader: PdfReader, limits: Limits) -> int:
    try:
        count = len(reader.pages)  # walks the page tree, so a wrong /Count does not matter
    except Exception as exc:
        raise _fenced_error(exc) from exc
    if count > limits.max_pages:
        raise DocumentError("limit", f"{count:,} pages; the limit is {limits.max_pages:,}")
    if count == 0:
        raise DocumentError("corrupt", "it has no pages")
    return count


def _extract_page(reader: PdfReader, index: int) -> _PageResult:
    try:
        raw = reader.pages[index].extract_text()
    except Exception as exc:  # the fence again; a damaged page should not sink the rest of the document
        return _PageResult("", "limit", _detail(exc)) if _is_limit(exc) else _PageResult("", "damaged")
    return _PageResult(tidy_page_text(raw))


# ---------------------------------------------------------------- sequential and parallel paths


def _check_stop(deadline: float, cancel: threading.Event | None, limits: Limits) -> None:
    if cancel is not None and cancel.is_set():
        raise ExtractionCancelled("PDF extraction was cancelled.")
    if time.monotonic() > deadline:
        raise _too_slow(limits)


def _too_slow(limits: Limits) -> DocumentError:
    return DocumentError("limit", f"reading it took longer than {limits.time_budget_s:g} s")


def _extract_sequential(
    reader: PdfReader,
    count: int,
    deadline: float,
    limits: Limits,
    progress: PageProgress | None,
    cancel: threading.Event | None,
) -> list[_PageResult]:
    results: list[_PageResult] = []
    for index in range(count):
        _check_stop(deadline, cancel, limits)
        results.append(_extract_page(reader, index))
        if results[-1].problem == "limit":
            break  # the whole document is refused anyway
        if progress:
            progress(index + 1, count)
    return results


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours taskset and container CPU sets
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _worker_count(requested: int | None, count: int) -> int:
    if multiprocessing.current_process().daemon:
        return 1  # daemonic processes may not start children
    if requested is None:
        if count <= PARALLEL_MIN_PAGES:
            return 1
        requested = _usable_cpus()
    return max(1, min(requested, math.ceil(count / _MIN_CHUNK)))


def _chunks(count: int, workers: int) -> list[range]:
    # Several chunks per worker balance uneven pages and give progress and cancel a finer grain.
    size = max(_MIN_CHUNK, min(_MAX_CHUNK, math.ceil(count / (workers * 4))))
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def _mp_context() -> BaseContext:
    # Never fork: the app has threads (Gradio, the model) and forking them can deadlock a worker.
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # The server imports these once and workers fork from it: pypdf is loaded, and a main script is not
        # run again in every worker (a `python -m` main module still is: multiprocessing's rule).
        ctx.set_forkserver_preload(["__main__", __name__])
        return ctx
    return multiprocessing.get_context("spawn")


_worker_reader: PdfReader | None = None


def _init_worker(shared: bytes | str, size: int, password: str | None) -> None:
    """Open the PDF once per worker process: from the bytes, or from the path without loading it whole."""
    global _worker_reader
    if isinstance(shared, str):
        handle = open(shared, "rb")  # noqa: SIM115 -- stays open for the worker's lifetime
        if os.fstat(handle.fileno()).st_size != size:
            raise RuntimeError("the file changed while it was being read")
        _worker_reader = _open(handle, password)
    else:
        _worker_reader = _open(shared, password)


def _extract_range(start: int, stop: int) -> list[_PageResult]:
    reader = _worker_reader
    if reader is None:
        raise RuntimeError("worker was not initialised")
    return [_extract_page(reader, index) for index in range(start, stop)]


def _extract_parallel(
    shared: bytes | str,
    size: int,
    password: str | None,
    count: int,
    workers: int,
    deadline: float,
    limits: Limits,
    progress: PageProgress | None,
    cancel: threading.Event | None,
) -> list[_PageResult] | None:
    """Read page ranges in worker processes; None when this system cannot start them."""
    results = [_PageResult("")] * count
    # Ctrl-C is held for the whole run and ends it at the next poll instead. Landing anywhere, it could
    # leave a worker or a thread the pool never recorded (a traceback after "cancelled", or an exit that
    # waits forever), or break a lock inside `wait` halfway through.
    with _signals_held() as arrived:
        executor = _start_pool(shared, size, password, workers)
        if executor is None:
            return None
        finished_cleanly = False
        try:
            futures = _submit_all(executor, count, workers)
            if futures is None:
                return None
            finished_cleanly = _collect(futures, results, count, deadline, limits, progress, cancel, arrived)
        except BrokenProcessPool as exc:
            raise DocumentError("limit", "a worker process died while reading it (out of memory?)") from exc
        finally:
            _shutdown(executor, finished_cleanly)
    return results


@contextmanager
def _signals_held() -> Iterator[list[int]]:
    """Ctrl-C and SIGTERM are noted in the list, then arrive as they would have once the block ends.

    Only the main thread receives signals, and only it may set their handlers: elsewhere this does nothing.
    """
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous: dict[signal.Signals, Any] = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda received, _frame: held.append(received))
        yield held
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        if held:
            signal.raise_signal(held[0])


def _start_pool(
    shared: bytes | str, size: int, password: str | None, workers: int
) -> ProcessPoolExecutor | None:
    try:
        return ProcessPoolExecutor(
            max_workers=workers,
            mp_context=_mp_context(),
            initializer=_init_worker,
            initargs=(shared, size, password),
        )
    except (OSError, NotImplementedError):  # e.g. no /dev/shm for the pool's semaphores
        return None


def _submit_all(executor: ProcessPoolExecutor, count: int, workers: int) -> _Futures | None:
    try:
        return {executor.submit(_extract_range, r.start, r.stop): r for r in _chunks(count, workers)}
    except OSError:  # the fork server or a worker could not be started
        return None


def _collect(
    futures: _Futures,
    results: list[_PageResult],
    count: int,
    deadline: float,
    limits: Limits,
    progress: PageProgress | None,
    cancel: threading.Event | None,
    signals: list[int],
) -> bool:
    """Fill `results` as chunks finish; False when it stopped early: a page hit a limit, or a signal came."""
    pending: set[Future[list[_PageResult]]] = set(futures)
    done_pages = 0
    while pending:
        _check_stop(deadline, cancel, limits)
        if signals:
            return False
        done, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
        for future in done:
            span = futures[future]
            results[span.start : span.stop] = future.result()
            done_pages += len(span)
            if progress:
                progress(done_pages, count)
        if any(page.problem == "limit" for page in results):
            return False  # the document is refused; no need to wait for the rest
    return True


def _shutdown(executor: ProcessPoolExecutor, graceful: bool) -> None:
    if graceful:
        executor.shutdown(wait=True)
        return
    # A running task cannot be cancelled, and a page stuck in pypdf must not outlive the time budget.
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=5)


# ---------------------------------------------------------------- OCR of pages without a text layer


class OcrPass:
    """Reads the pages that have no text layer with Tesseract, and keeps what the Document reports."""

    def __init__(
        self,
        language: str | None,
        deadline: float,
        limits: Limits,
        progress: PageProgress | None,
        cancel: threading.Event | None,
    ) -> None:
        self.language = language
        self.deadline = deadline
        self.limits = limits
        self.progress = progress
        self.cancel = cancel
        self.confidence: dict[int, float] = {}  # 1-based page → mean word confidence
        self.languages: set[str] = set()
        self.failed: list[int] = []
        self.unavailable: str | None = None  # why Tesseract could not run
        self.attempted = False
        self.script: str | None = None  # the script the first readable page was in: later pages assume it

    def run(self, data: bytes, password: str | None, results: list[_PageResult]) -> list[_PageResult]:
        """`results` with the scanned pages' text filled in; the pages with a text layer stay as they are."""
        scanned = [i for i, page in enumerate(results) if not page.text and page.problem is None]
        if not scanned:
            return results
        try:
            tesseract = ocr.find_tesseract()
        except ocr.OcrUnavailable as exc:
            self.unavailable = str(exc)
            return results
        self.attempted = True
        try:
            pdf = ocr.pdfium.PdfDocument(data, password=password)
        except Exception:  # pdfium's own parser refused what pypdf read: report, do not sink the text
            self.failed = [i + 1 for i in scanned]
            return results
        results = list(results)
        try:
            self._read_all(pdf, tesseract, scanned, results)
        finally:
            pdf.close()
        return results

    def _read_all(
        self, pdf: Any, tesseract: ocr.Tesseract, scanned: list[int], results: list[_PageResult]
    ) -> None:
        """Render pages here (pdfium is not thread-safe) while Tesseract processes read them in parallel."""
        workers = _usable_cpus()
        pending: dict[Future[ocr.OcrPage], int] = {}
        done = 0
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ocr") as pool:
            try:
                for index in scanned:
                    while len(pending) >= workers:  # a few rendered pages in memory at a time
                        done += self._collect(pending, results, done, len(scanned))
                    _check_stop(self.deadline, self.cancel, self.limits)
                    image = self._render(pdf, index)
                    if image is not None:
                        timeout = max(1.0, self.deadline - time.monotonic())
                        args = (tesseract, image, self.language, timeout, self.script)
                        pending[pool.submit(ocr.read_image, *args)] = index
                while pending:
                    done += self._collect(pending, results, done, len(scanned))
            finally:
                for future in pending:
                    future.cancel()

    def _render(self, pdf: Any, index: int) -> Any:
        try:
            return ocr.render_page(pdf, index)
        except Exception:  # the fence, as for pypdf: one bad page must not sink the rest
            self.failed.append(index + 1)
            return None

    def _collect(
        self,
        pending: dict[Future[ocr.OcrPage], int],
        results: list[_PageResult],
        done: int,
        total: int,
    ) -> int:
        """Take finished pages into `results`; how many finished."""
        _check_stop(self.deadline, self.cancel, self.limits)
        finished, _ = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
        for future in finished:
            index = pending.pop(future)
            results[index] = self._page(future, index)
            done += 1
            if self.progress:
                self.progress(done, total)
        return len(finished)

    def _page(self, future: Future[ocr.OcrPage], index: int) -> _PageResult:
        try:
            page = future.result()
        except ocr.OcrUnavailable as exc:  # a language pack is missing: the page stays blank, and says why
            self.unavailable = str(exc)
            return _PageResult("")
        except subprocess.TimeoutExpired as exc:
            raise _too_slow(self.limits) from exc
        except (ocr.OcrFailed, OSError):
            self.failed.append(index + 1)
            return _PageResult("")
        text = tidy_page_text(page.text)
        self.script = self.script or page.script
        if text and page.confidence is not None:
            self.confidence[index + 1] = round(page.confidence, 1)
            self.languages.add(page.languages)
        return _PageResult(text)

    def blank_reason(self) -> str:
        if self.unavailable:
            return f"(scanned? no OCR: {self.unavailable})"
        return "(blank?)" if self.attempted else "(scanned?)"

    def warnings(self) -> list[str]:
        found = []
        if self.confidence:
            scores = self.confidence
            mean, lowest = ocr.confidence_summary(scores)
            found.append(
                f"{_page_list(sorted(scores))} read by OCR (Tesseract, {', '.join(sorted(self.languages))}): "
                f"mean word confidence {mean:.0f}%, lowest {scores[lowest]:.0f}% on page {lowest}"
            )
            low = [n for n in sorted(scores) if scores[n] < ocr.LOW_CONFIDENCE]
            if low:
                under = f"under {ocr.LOW_CONFIDENCE:.0f}%"
                found.append(f"{_page_list(low)}: OCR confidence {under}, check the text")
        if self.failed:
            found.append(f"{_page_list(self.failed)} could not be read by OCR")
        return found


# ---------------------------------------------------------------- results → Document


def _pages_or_raise(results: Sequence[_PageResult], ocr_missing: str | None = None) -> list[str]:
    for number, page in enumerate(results, start=1):
        if page.problem == "limit":
            raise DocumentError("limit", f"page {number}: {page.detail}")
    if all(page.problem == "damaged" for page in results):
        raise DocumentError("corrupt", "none of its pages could be read")
    pages = [page.text for page in results]
    if not any(pages):
        raise DocumentError("ocr_unavailable", ocr_missing) if ocr_missing else DocumentError("no_text")
    return pages


def _page_warnings(results: Sequence[_PageResult], blank_reason: str = "(scanned?)") -> list[str]:
    damaged = [n for n, page in enumerate(results, start=1) if page.problem == "damaged"]
    blank = [n for n, page in enumerate(results, start=1) if not page.text and page.problem is None]
    warnings = []
    if damaged:
        warnings.append(f"{_page_list(damaged)} could not be read (damaged)")
    if blank:
        verb = "has" if len(blank) == 1 else "have"
        warnings.append(f"{_page_list(blank)} {verb} no text {blank_reason}")
    return warnings


def _page_list(numbers: Sequence[int]) -> str:
    """[3, 7, 8, 9] → "pages 3, 7–9"."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    parts = [str(a) if a == b else f"{a}–{b}" for a, b in spans]
    return ("page " if len(numbers) == 1 else "pages ") + ", ".join(parts)


def _detect_language(pages: Sequence[str]) -> str | None:
    """Majority vote over pages spread through the document, so a foreign preface does not decide."""
    from app.language import detect  # lazy: langdetect's profiles load only when a document needs them

    candidates = [page for page in pages if len(page) >= 40] or [page for page in pages if page]
    step = max(1, math.ceil(len(candidates) / _LANGUAGE_SAMPLES))
    votes = Counter(detect(page[:_LANGUAGE_SAMPLE_CHARS]) for page in candidates[::step])
    votes.pop(None, None)
    return votes.most_common(1)[0][0] if votes else None


# ---------------------------------------------------------------- text cleaning

_NEWLINES = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028]")
_LINE_END_SOFT_HYPHEN = re.compile("\u00ad[ \t]*\n")
# Lone surrogates have no UTF-8 form: they break JSON and SQLite.
_SURROGATES = re.compile("[\ud800-\udfff]")
_HSPACE = re.compile("[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_TABS = re.compile(r" *\t[ \t]*")
_BLANK_RUNS = re.compile(r"\n{3,}")
_LIGATURES = str.maketrans({"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"})
_HYPHENS = "-\u2010"
_FIRST_TOKEN = re.compile(r"(\S+)[ \t]*(.*)", re.DOTALL)


def tidy_page_text(raw: str) -> str:
    """Drop control characters, tidy spaces, keep paragraph breaks, rejoin Latin words split at line end."""
    text = _NEWLINES.sub("\n", raw).replace("\u2029", "\n\n")
    text = _LINE_END_SOFT_HYPHEN.sub("-\n", text)
    text = unicodedata.normalize("NFC", _SURROGATES.sub("", strip_control_chars(text))).translate(_LIGATURES)
    lines = [_clean_line(line) for line in text.split("\n")]
    text = "\n".join(_dehyphenate(lines))
    return _BLANK_RUNS.sub("\n\n", text).strip()


def _clean_line(line: str) -> str:
    return _TABS.sub("\t", _HSPACE.sub(" ", line)).strip(" \t")


def _is_latin_letter(ch: str) -> bool:
    code = ord(ch)
    return ch.isalpha() and (code < 0x250 or 0x1E00 <= code <= 0x1EFF)


def _joins(line: str, following: str) -> bool:
    """Does `line` end in a hyphenated Latin word that `following` completes in lower case?"""
    return (
        len(line) >= 2
        and line[-1] in _HYPHENS
        and _is_latin_letter(line[-2])
        and following[:1].islower()
        and _is_latin_letter(following[0])
    )


def _dehyphenate(lines: Sequence[str]) -> list[str]:
    """ "exam-" / "ple text" → "example" / "text": the word moves up, so line structure stays."""
    if not lines:
        return []
    queue = deque(lines[1:])
    current = lines[0]
    out: list[str] = []
    while queue:
        if not _joins(current, queue[0]):
            out.append(current)
            current = queue.popleft()
            continue
        match = _FIRST_TOKEN.match(queue[0])
        if match is None:  # unreachable: _joins saw a letter first
            break
        current = current[:-1] + match.group(1)
        if match.group(2):
            queue[0] = match.group(2)
        else:
            queue.popleft()
    out.append(current)
    out.extend(queue)
    return out
