"""PDF text extraction throughput: pages/s on a 1,000-page report, one process against all cores."""

from __future__ import annotations

import os
import time
from pathlib import Path

from app.documents import extract_pdf
from tests.benchmarks.common import Row, markdown_table

OUT = Path(__file__).parent / "out"
PAGES = 1000
REPEATS = 3
EFFICIENCY_TARGET = 0.7  # speedup per core expected from the process pool


def build_pdf(pages: int = PAGES) -> Path:
    """The benchmark report, built once and cached: fpdf2 needs tens of seconds for 1,000 pages."""
    # Imported here: workers re-run a `python -m` main module, and fpdf2 need not load in each of them.
    from tests import pdfs

    path = OUT / f"long_{pages}.pdf"
    if not path.exists():
        partial = path.with_suffix(".partial")
        pdfs.long_pdf(partial, pages)
        partial.replace(path)  # an interrupted build never leaves a truncated cache behind
    return path


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def seconds(path: Path, workers: int) -> float:
    started = time.perf_counter()
    doc = extract_pdf(path, workers=workers)
    elapsed = time.perf_counter() - started
    if doc.page_count != PAGES:
        raise RuntimeError(f"expected {PAGES} pages, got {doc.page_count}")
    return elapsed


def best_seconds(path: Path, n: int) -> tuple[float, float]:
    """Best times with 1 and with `n` processes, alternated so drifting machine load hits both alike."""
    sequential, parallel = [], []
    for _ in range(REPEATS):
        sequential.append(seconds(path, 1))
        parallel.append(seconds(path, n))
    return min(sequential), min(parallel)


def run() -> list[Row]:
    path = build_pdf()
    n = cores()
    cold = seconds(path, n)  # the first pool also starts multiprocessing's fork server
    sequential, parallel = best_seconds(path, n)
    speedup = sequential / parallel
    target = EFFICIENCY_TARGET * n
    note = f"{PAGES} pages, {path.stat().st_size / 1e6:.1f} MB, best of {REPEATS}"
    return [
        Row("documents", "extract pages/s, 1 process", PAGES / sequential, "pages/s", note=note),
        Row(
            "documents", f"extract pages/s, {n} processes (all cores)", PAGES / parallel, "pages/s", note=note
        ),
        Row(
            "documents",
            "extract speedup, all cores vs 1 process",
            speedup,
            "ratio",
            target=f">= {target:.1f}" if n > 1 else "",
            met=speedup >= target if n > 1 else None,
            note=f"{n} cores; ideal {n}.0",
        ),
        Row(
            "documents",
            "extract first-call overhead (pool start)",
            max(0.0, cold - parallel) * 1000,
            "ms",
            note="once per app process",
        ),
    ]


if __name__ == "__main__":  # workers re-import the main module: the guard keeps them from re-running it
    print(markdown_table(run()))
