"""app.documents on real PDF files: every error code, the good paths, and the parallel reader."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app import documents
from app.documents import (
    DocumentError,
    ExtractionCancelled,
    Limits,
    extract_json,
    extract_pdf,
    tidy_page_text,
)
from tests import pdfs


def flat(text: str) -> str:
    """Line breaks depend on the layout, not on the content: compare with single spaces."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def pdf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pdfs")


@pytest.fixture(scope="module")
def long200(pdf_dir: Path) -> Path:
    return pdfs.long_pdf(pdf_dir / "long200.pdf", 200)


@pytest.fixture(scope="module")
def long12(pdf_dir: Path) -> Path:
    return pdfs.long_pdf(pdf_dir / "long12.pdf", 12)


def error_code(source: Path | bytes, **kwargs: Any) -> str:
    with pytest.raises(DocumentError) as info:
        extract_pdf(source, **kwargs)
    assert info.value.message and "\n" not in info.value.message
    return info.value.code


# ---------------------------------------------------------------- error codes


def test_html_renamed_to_pdf_is_not_pdf(tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as info:
        extract_pdf(pdfs.html_as_pdf(tmp_path / "report.pdf"))
    assert info.value.code == "not_pdf"
    assert "HTML" in str(info.value)


def test_plain_text_is_not_pdf(tmp_path: Path) -> None:
    path = tmp_path / "notes.pdf"
    path.write_text("Meeting notes\n- buy milk\n")
    assert error_code(path) == "not_pdf"


def test_header_after_junk_within_first_kib_is_accepted(long12: Path) -> None:
    doc = extract_pdf(b"\x00" * 600 + long12.read_bytes())
    assert doc.page_count == 12


def test_empty_file(tmp_path: Path) -> None:
    assert error_code(pdfs.empty_file(tmp_path / "empty.pdf")) == "empty"
    assert error_code(b"") == "empty"


@pytest.mark.parametrize("maker", [pdfs.truncated_pdf, pdfs.garbage_pdf])
def test_damaged_files_are_corrupt(tmp_path: Path, maker: Callable[[Path], Path]) -> None:
    assert error_code(maker(tmp_path / "bad.pdf")) == "corrupt"


def test_header_only_is_corrupt() -> None:
    assert error_code(b"%PDF-1.7\n") == "corrupt"


@pytest.mark.parametrize("aes", [True, False], ids=["aes256", "rc4"])
def test_encrypted_without_password(tmp_path: Path, aes: bool) -> None:
    path = pdfs.encrypted_pdf(tmp_path / "secret.pdf", "s3cret", aes=aes)
    with pytest.raises(DocumentError) as info:
        extract_pdf(path)
    assert info.value.code == "encrypted"
    assert "password" in str(info.value)


def test_wrong_password(tmp_path: Path) -> None:
    path = pdfs.encrypted_pdf(tmp_path / "secret.pdf", "s3cret")
    assert error_code(path, password="guess") == "wrong_password"


@pytest.mark.parametrize("aes", [True, False], ids=["aes256", "rc4"])
def test_right_password_opens(tmp_path: Path, aes: bool) -> None:
    path = pdfs.encrypted_pdf(tmp_path / "secret.pdf", "s3cret", aes=aes)
    doc = extract_pdf(path, password="s3cret")
    assert doc.pages == ["This document is confidential.", "Second page of the secret report."]


def test_owner_password_also_opens(tmp_path: Path) -> None:
    path = pdfs.encrypted_pdf(tmp_path / "secret.pdf", "s3cret", owner_password="boss")
    assert extract_pdf(path, password="boss").page_count == 2


def test_password_for_unencrypted_pdf_is_ignored(long12: Path) -> None:
    assert extract_pdf(long12, password="unused").page_count == 12


def test_image_only_pdf_is_read_by_ocr(tmp_path: Path) -> None:
    doc = extract_pdf(pdfs.image_only_pdf(tmp_path / "scan.pdf", n_pages=2))
    assert [page.splitlines()[0] for page in doc.pages] == ["Scanned page 1", "Scanned page 2"]
    assert set(doc.ocr_confidence) == {1, 2}


def test_blank_pdf_has_no_text(tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as info:
        extract_pdf(pdfs.blank_pdf(tmp_path / "blank.pdf", n_pages=2))
    assert info.value.code == "no_text"
    assert "OCR found no text" in str(info.value)


def test_too_large_by_limit(long12: Path) -> None:
    assert error_code(long12, limits=Limits(max_bytes=1000)) == "too_large"
    assert error_code(long12.read_bytes(), limits=Limits(max_bytes=1000)) == "too_large"


def test_too_large_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.pdf"
    with path.open("wb") as fh:
        fh.truncate(Limits().max_bytes + 1)  # sparse: costs no disk, would cost 200 MB to read
    tracemalloc.start()
    try:
        assert error_code(path) == "too_large"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000


def test_too_many_pages_is_limit(long12: Path) -> None:
    with pytest.raises(DocumentError) as info:
        extract_pdf(long12, limits=Limits(max_pages=10))
    assert info.value.code == "limit"
    assert "12 pages" in str(info.value)


@pytest.mark.parametrize("workers", [1, 2])
def test_time_budget_is_limit(long200: Path, workers: int) -> None:
    def slow_start(done: int, _total: int) -> None:
        if done == 0:
            time.sleep(0.5)  # the budget runs out once extraction has started, on any machine

    started = time.monotonic()
    with pytest.raises(DocumentError) as info:
        extract_pdf(long200, limits=Limits(time_budget_s=0.3), workers=workers, progress=slow_start)
    assert info.value.code == "limit"
    assert "0.3 s" in str(info.value)
    assert time.monotonic() - started < 10


def test_time_budget_terminates_workers(long200: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pids: list[int] = []
    real = documents._shutdown

    def spy(executor: Any, graceful: bool) -> None:
        pids.extend(executor._processes)
        real(executor, graceful)

    monkeypatch.setattr(documents, "_shutdown", spy)
    with pytest.raises(DocumentError):
        extract_pdf(long200, limits=Limits(time_budget_s=0.3), workers=2, progress=lambda *_: time.sleep(0.5))
    assert pids
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_parallel_falls_back_when_processes_cannot_start(
    long200: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_processes(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError("no /dev/shm")

    monkeypatch.setattr(documents, "ProcessPoolExecutor", no_processes)
    assert extract_pdf(long200, workers=2).page_count == 200


@pytest.fixture(scope="module")
def bomb(pdf_dir: Path) -> Path:
    return pdfs.bomb_pdf(pdf_dir / "bomb.pdf", expanded_mb=256)


def test_decompression_bomb_is_stopped(bomb: Path) -> None:
    path = bomb
    assert path.stat().st_size < 100_000
    started = time.monotonic()
    tracemalloc.start()
    try:
        code = error_code(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code in {"limit", "corrupt"}
    assert peak < 250_000_000  # pypdf stops at 75 MB a stream; 268 MB would mean it was all inflated
    assert time.monotonic() - started < 60


def test_errors_carry_json_shape() -> None:
    with pytest.raises(DocumentError) as info:
        extract_pdf(b"")
    assert info.value.as_dict() == {"code": "empty", "message": "The file is empty (0 bytes)."}


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        extract_pdf(tmp_path / "nope.pdf")


# ---------------------------------------------------------------- good documents


def test_pages_keep_their_numbers(long12: Path) -> None:
    doc = extract_pdf(long12)
    assert doc.page_count == 12
    for number, text in enumerate(doc.pages, start=1):
        assert text.startswith(f"Section {number}:")
        assert f"LD-{number:04d}" in text
    assert doc.warnings == []
    assert doc.filename == "long12.pdf"


def test_text_content_is_found(tmp_path: Path) -> None:
    pages = ["Quarterly revenue grew by 12 percent.", "Costs fell in the second half."]
    doc = extract_pdf(pdfs.text_pdf(tmp_path / "q.pdf", pages))
    assert doc.pages == pages
    assert doc.text == "\n\n".join(pages)
    assert doc.chars == sum(map(len, pages))


def test_two_column_text_is_present_and_in_reading_order(tmp_path: Path) -> None:
    text = flat(extract_pdf(pdfs.two_column_pdf(tmp_path / "cols.pdf")).text)
    assert flat(pdfs.LEFT_COLUMN) in text
    assert flat(pdfs.RIGHT_COLUMN) in text
    assert text.index("harbour") < text.index("lighthouse")


def test_devanagari(tmp_path: Path) -> None:
    doc = extract_pdf(pdfs.devanagari_pdf(tmp_path / "hi.pdf"))
    for word in pdfs.HINDI_WORDS:
        assert word in doc.text
    assert flat(pdfs.HINDI_SENTENCES[0]) in flat(doc.text)
    assert doc.language == "hi"


def test_thai(tmp_path: Path) -> None:
    doc = extract_pdf(pdfs.thai_pdf(tmp_path / "th.pdf"))
    for word in pdfs.THAI_WORDS:
        assert word in doc.text
    assert doc.language == "th"


def test_german_language(tmp_path: Path) -> None:
    doc = extract_pdf(pdfs.text_pdf(tmp_path / "de.pdf", pdfs.GERMAN_PAGES))
    assert "Straßenbahnen" in doc.text
    assert doc.language == "de"


def test_english_language(long12: Path) -> None:
    assert extract_pdf(long12).language == "en"


def test_mixed_scanned_pages_are_warned(tmp_path: Path) -> None:
    doc = extract_pdf(pdfs.mixed_scanned_pdf(tmp_path / "mixed.pdf"), run_ocr=False)
    assert doc.page_count == 10
    assert doc.warnings == ["pages 3, 7–9 have no text (scanned?)"]
    assert doc.pages[2] == "" and doc.pages[3].startswith("Section 4:")


def test_single_scanned_page_warning(tmp_path: Path) -> None:
    doc = extract_pdf(pdfs.mixed_scanned_pdf(tmp_path / "mixed.pdf", n_pages=3, scanned=(2,)), run_ocr=False)
    assert doc.warnings == ["page 2 has no text (scanned?)"]


def test_damaged_page_is_warned_not_fatal(tmp_path: Path) -> None:
    doc = extract_pdf(pdfs.damaged_page_pdf(tmp_path / "dmg.pdf", n_pages=4, damaged=(2, 3)))
    assert doc.pages[0] == "This is page 1 of the report."
    assert doc.pages[1:3] == ["", ""]
    assert doc.warnings == ["pages 2–3 could not be read (damaged)"]


def test_all_pages_damaged_is_corrupt(tmp_path: Path) -> None:
    assert error_code(pdfs.damaged_page_pdf(tmp_path / "dmg.pdf", n_pages=2, damaged=(1, 2))) == "corrupt"


def test_sha256_is_stable(long12: Path, tmp_path: Path) -> None:
    expected = hashlib.sha256(long12.read_bytes()).hexdigest()
    assert extract_pdf(pdfs.long_pdf(tmp_path / "again.pdf", 12)).sha256 == expected  # fixtures repeat
    from_path = extract_pdf(long12)
    from_bytes = extract_pdf(long12.read_bytes(), filename="upload.pdf")
    assert from_path.sha256 == from_bytes.sha256 == expected
    assert from_bytes.filename == "upload.pdf"
    assert from_path.pages == from_bytes.pages


def test_extract_json_fields(long12: Path) -> None:
    doc = extract_pdf(long12)
    data = extract_json(doc)
    assert set(data) == {"pages", "chars", "language", "warnings", "ocr_confidence", "text"}
    assert data["pages"] == 12 and data["chars"] == doc.chars and data["language"] == "en"
    assert data["text"].split("\f") == doc.pages


def test_progress_reports_every_page(long12: Path) -> None:
    seen: list[tuple[int, int]] = []
    extract_pdf(long12, progress=lambda done, total: seen.append((done, total)), workers=1)
    assert seen == [(n, 12) for n in range(13)]


# ---------------------------------------------------------------- cancel and the parallel path


@pytest.mark.parametrize("workers", [1, 2])
def test_cancel_before_start(long200: Path, workers: int) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ExtractionCancelled):
        extract_pdf(long200, cancel=cancel, workers=workers)


@pytest.mark.parametrize("workers", [1, 2])
def test_cancel_midway_stops_extraction(long200: Path, workers: int) -> None:
    cancel = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done >= 10:
            cancel.set()

    with pytest.raises(ExtractionCancelled):
        extract_pdf(long200, cancel=cancel, progress=progress, workers=workers)
    if workers == 1:
        assert max(seen) == 10


CTRL_C_AT_EACH_STEP = """
import os, signal, sys
from app.documents import extract_pdf

# The pool's machinery: where a Ctrl-C can leave a half-started worker, thread or lock behind.
WATCHED = ("/multiprocessing/", "/concurrent/futures/process.py", "/concurrent/futures/thread.py")


def watched(code):
    name = code.co_filename
    started = name.endswith("/threading.py") and code.co_name == "start"
    return started or any(part in name for part in WATCHED)


class CtrlCAfter:
    # Signals land in the main thread only, so this counts the main thread's steps only.
    def __init__(self, steps):
        self.left = steps

    def __call__(self, frame, event, _arg):
        if event == "return" and self.left and watched(frame.f_code):
            self.left -= 1
            if not self.left:
                os.kill(os.getpid(), signal.SIGINT)


if __name__ == "__main__":
    pdf, stride = sys.argv[1], int(sys.argv[2])
    extract_pdf(pdf, workers=2)  # the fork server starts once per process, before the sweep
    steps = fired = interrupted = 0
    while True:
        steps += stride
        hook = CtrlCAfter(steps)
        sys.setprofile(hook)
        try:
            extract_pdf(pdf, workers=2)
        except KeyboardInterrupt:
            interrupted += 1
        finally:
            sys.setprofile(None)
        if hook.left:
            break  # the whole run took fewer steps: every step has been tried
        fired += 1
    print(fired, interrupted)
"""


def test_a_ctrl_c_after_any_step_of_the_pool_s_start_or_stop_leaves_nothing_behind(tmp_path: Path) -> None:
    # The CLI printed a worker's traceback under "cancelled", and once in a dozen runs never exited: a
    # Ctrl-C between a step of the pool's start and the pool recording it left a worker or a thread that
    # nothing stopped; one landing inside `wait` broke a lock. Reading stderr to its end also waits
    # for every process that holds it.
    pdf = pdfs.long_pdf(tmp_path / "long70.pdf", documents.PARALLEL_MIN_PAGES + 6)
    script = tmp_path / "interrupt.py"
    script.write_text(CTRL_C_AT_EACH_STEP, encoding="utf-8")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(script), str(pdf), "7"],  # every 7th of about 450 steps
        capture_output=True,
        text=True,
        timeout=600,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.stderr == ""
    fired, interrupted = map(int, done.stdout.split())
    assert fired > 40
    assert interrupted == fired  # each Ctrl-C ended its run, and nothing else did


def test_cancel_from_another_thread(long200: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.05, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(ExtractionCancelled):
        extract_pdf(long200, cancel=cancel, workers=2, limits=Limits(time_budget_s=60))
    assert time.monotonic() - started < 5


def test_parallel_matches_sequential(long200: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = documents._extract_parallel

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    sequential = extract_pdf(long200, workers=1)
    monkeypatch.setattr(documents, "_extract_parallel", spy)
    progress: list[int] = []
    parallel = extract_pdf(long200, workers=2, progress=lambda done, _total: progress.append(done))
    from_bytes = extract_pdf(long200.read_bytes(), workers=2)
    assert len(calls) == 2
    assert parallel == sequential
    assert from_bytes.pages == sequential.pages and from_bytes.sha256 == sequential.sha256
    assert parallel.page_count == 200
    assert progress[-1] == 200 and progress == sorted(progress)


def test_auto_mode_goes_parallel_only_for_long_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "_usable_cpus", lambda: 4)
    assert documents._worker_count(None, documents.PARALLEL_MIN_PAGES) == 1
    assert documents._worker_count(None, 200) == 4
    assert documents._worker_count(None, 20_000) == 4
    assert documents._worker_count(1, 200) == 1
    assert documents._worker_count(8, 20) == 3  # no fewer than 8 pages a process
    monkeypatch.setattr(documents, "_usable_cpus", lambda: 1)
    assert documents._worker_count(None, 200) == 1


def test_parallel_bomb_is_stopped(tmp_path: Path, bomb: Path) -> None:
    # The bomb sits among ordinary pages so the parallel reader meets it in a worker.
    plain = pdfs.long_pdf(tmp_path / "plain.pdf", 40)
    merged = _merge([plain, bomb, plain], tmp_path / "merged.pdf")
    assert error_code(merged, workers=2) in {"limit", "corrupt"}


def _merge(parts: list[Path], out: Path) -> Path:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for part in parts:
        writer.append(str(part))
    with out.open("wb") as fh:
        writer.write(fh)
    return out


# ---------------------------------------------------------------- text cleaning


def test_tidy_page_text_drops_control_characters() -> None:
    assert tidy_page_text("a\x00b\x07c\x1bd\x7fe\ufeff") == "abcde"
    assert tidy_page_text("col1\tcol2") == "col1\tcol2"


def test_tidy_page_text_keeps_paragraphs_and_tidies_spaces() -> None:
    assert tidy_page_text("  One\u00a0 two  \r\n\r\n\r\n\n  Three \n") == "One two\n\nThree"


def test_tidy_page_text_dehyphenates_latin_only() -> None:
    assert tidy_page_text("an exam-\nple of it") == "an example\nof it"
    assert tidy_page_text("die Straßen-\nbahn fährt") == "die Straßenbahn\nfährt"
    assert tidy_page_text("Jean-\nPaul") == "Jean-\nPaul"  # a capital: a real hyphen
    assert tidy_page_text("Мос-\nква") == "Мос-\nква"  # not Latin
    assert tidy_page_text("co\u00ad\noperate") == "cooperate"
    assert tidy_page_text("soft\u00adhyphen") == "softhyphen"


def test_tidy_page_text_expands_ligatures() -> None:
    assert tidy_page_text("ﬁnal ﬂow") == "final flow"
