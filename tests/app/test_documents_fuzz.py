"""Mutated PDFs must come back as a Document or a DocumentError: never another exception, never a hang.

The mutator is seeded and the seed files are deterministic (except the encrypted ones, whose salts are
random), so runs repeat; a failing input is also saved and named in the failure. The case count is fixed;
the time cap only protects `make test` on a slow machine, and the count tried is printed and recorded as a
junit property.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.documents import Document, DocumentError, Limits, extract_pdf, tidy_page_text
from tests import pdfs

SEED = 20261122
CASES = 800
TIME_CAP_S = 40.0
PARALLEL_CASES = 6
SLOWEST_CASE_S = 20.0
CASE_LIMITS = Limits(time_budget_s=10)

_FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_NAMES = [
    b"/FlateDecode", b"/LZWDecode", b"/ASCIIHexDecode", b"/ASCII85Decode", b"/RunLengthDecode",
    b"/Type", b"/Pages", b"/Page", b"/Kids", b"/Count", b"/Parent", b"/Contents", b"/Resources",
    b"/Font", b"/ToUnicode", b"/Length", b"/Filter", b"/Root", b"/Encrypt", b"/XObject", b"/Prev",
]  # fmt: skip
_NUMBERS = [b"0", b"-1", b"1", b"2147483648", b"99999999999999999999", b"3.5e308", b"-0.0", b"65535"]


@dataclass(frozen=True)
class Seed:
    name: str
    data: bytes
    password: str | None = None


Mutator = Callable[[random.Random, bytes, list[Seed]], bytes]


def flip_bytes(rng: random.Random, data: bytes, _: list[Seed]) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        out[rng.randrange(len(out))] ^= rng.randint(1, 255)
    return bytes(out)


def truncate(rng: random.Random, data: bytes, _: list[Seed]) -> bytes:
    return data[: rng.randrange(1, len(data))]


def duplicate_chunk(rng: random.Random, data: bytes, _: list[Seed]) -> bytes:
    start = rng.randrange(len(data))
    chunk = data[start : start + rng.randint(1, 4096)]
    at = rng.randrange(len(data))
    return data[:at] + chunk * rng.randint(1, 3) + data[at:]


def delete_chunk(rng: random.Random, data: bytes, _: list[Seed]) -> bytes:
    start = rng.randrange(len(data))
    return data[:start] + data[start + rng.randint(1, 2048) :]


def damage_xref(rng: random.Random, data: bytes, _: list[Seed]) -> bytes:
    """Break the cross-reference table or the startxref pointer, forcing pypdf's recovery paths."""
    choice = rng.randrange(4)
    if choice == 0:
        return re.sub(rb"startxref\s+\d+", b"startxref\n%d" % rng.randrange(len(data) * 2), data)
    if choice == 1:
        return data.replace(b"xref", b"xrff", 1)
    if choice == 2:  # shift every offset so each points into the middle of an object
        shift = rng.randint(-40, 40)
        return re.sub(
            rb"(\d{10}) (\d{5}) n", lambda m: b"%010d %s n" % (max(0, int(m[1]) + shift), m[2]), data
        )
    at = data.rfind(b"xref")
    return data[:at] if at > 0 else data


def mangle_number(rng: random.Random, data: bytes, _: list[Seed]) -> bytes:
    matches = list(re.finditer(rb"(?<![\w.])\d+(?![\w.])", data[:200_000]))
    if not matches:
        return data
    m = rng.choice(matches)
    return data[: m.start()] + rng.choice(_NUMBERS) + data[m.end() :]


def mangle_name(rng: random.Random, data: bytes, _: list[Seed]) -> bytes:
    matches = list(re.finditer(rb"/[A-Za-z]\w*", data[:200_000]))
    if not matches:
        return data
    m = rng.choice(matches)
    return data[: m.start()] + rng.choice(_NAMES) + data[m.end() :]


def deep_nesting(rng: random.Random, data: bytes, _: list[Seed]) -> bytes:
    """Deeply nested arrays or dictionaries: the RecursionError paths of a recursive-descent parser."""
    at = rng.randrange(len(data))
    return data[:at] + rng.choice([b"[", b"<<", b"<< /A "]) * rng.randint(500, 20_000) + data[at:]


def splice(rng: random.Random, data: bytes, seeds: list[Seed]) -> bytes:
    other = rng.choice(seeds).data
    start = rng.randrange(len(other))
    at = rng.randrange(len(data))
    return data[:at] + other[start : start + rng.randint(16, 8192)] + data[at:]


MUTATORS: list[Mutator] = [
    flip_bytes, truncate, duplicate_chunk, delete_chunk, damage_xref, mangle_number, mangle_name,
    deep_nesting, splice,
]  # fmt: skip


def mutate(rng: random.Random, seed: Seed, seeds: list[Seed]) -> tuple[bytes, list[str]]:
    data, applied = seed.data, []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        mutator = rng.choice(MUTATORS)
        data = mutator(rng, data, seeds) or data
        applied.append(mutator.__name__)
    return data, applied


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[Seed]:
    d = tmp_path_factory.mktemp("fuzz")
    return [
        Seed(
            "text", pdfs.text_pdf(d / "t.pdf", ["First page.", "Second page, with more words."]).read_bytes()
        ),
        Seed("long", pdfs.long_pdf(d / "l.pdf", 3).read_bytes()),
        Seed("columns", pdfs.two_column_pdf(d / "c.pdf").read_bytes()),
        Seed("devanagari", pdfs.devanagari_pdf(d / "h.pdf").read_bytes()),  # embedded TrueType, ToUnicode
        Seed("scanned", pdfs.mixed_scanned_pdf(d / "m.pdf", n_pages=3, scanned=(2,)).read_bytes()),
        Seed("rc4", pdfs.encrypted_pdf(d / "r.pdf", "pw", aes=False).read_bytes(), "pw"),
        Seed("aes", pdfs.encrypted_pdf(d / "a.pdf", "pw").read_bytes(), "pw"),
        Seed("raw", pdfs.damaged_page_pdf(d / "d.pdf", n_pages=3, damaged=(3,)).read_bytes()),
    ]


def run_case(data: bytes, password: str | None, workers: int) -> str:
    """The outcome of one mutated file, or raise AssertionError describing what went wrong."""
    try:
        doc = extract_pdf(data, password=password, limits=CASE_LIMITS, workers=workers)
    except DocumentError as exc:
        assert exc.message and "\n" not in exc.message
        return exc.code
    assert isinstance(doc, Document)
    assert all(isinstance(page, str) and not _FORBIDDEN.search(page) for page in doc.pages)
    assert any(doc.pages)
    return "document"


def fuzz(
    seeds: list[Seed], cases: int, workers: int, rng: random.Random, out: Path
) -> tuple[Counter[str], list[str], float]:
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    slowest = 0.0
    started = time.monotonic()
    for case in range(cases):
        if time.monotonic() - started > TIME_CAP_S:
            break
        seed = rng.choice(seeds)
        data, applied = mutate(rng, seed, seeds)
        case_started = time.monotonic()
        try:
            outcomes[run_case(data, seed.password, workers)] += 1
        except Exception as exc:  # anything but Document/DocumentError is the bug this test hunts
            saved = out / f"case{case}-{seed.name}.pdf"
            saved.write_bytes(data)
            failures.append(
                f"case {case} ({seed.name}, {'+'.join(applied)}): {type(exc).__name__}: {exc} → {saved}"
            )
        slowest = max(slowest, time.monotonic() - case_started)
    return outcomes, failures, slowest


def report(label: str, outcomes: Counter[str], slowest: float, record: Callable[[str, object], None]) -> None:
    tried = sum(outcomes.values())
    summary = ", ".join(f"{name} {n}" for name, n in outcomes.most_common())
    print(f"\n{label}: {tried} mutations tried, slowest {slowest:.2f} s; outcomes: {summary}")
    record(f"{label}_mutations", tried)
    record(f"{label}_outcomes", dict(outcomes))


def test_mutated_pdfs_never_escape(
    seeds: list[Seed], tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    outcomes, failures, slowest = fuzz(seeds, CASES, 1, random.Random(SEED), tmp_path)
    report("sequential", outcomes, slowest, record_property)
    assert not failures, "\n".join(failures[:10])
    assert slowest < SLOWEST_CASE_S
    assert sum(outcomes.values()) >= 50  # the time cap must not turn this into a no-op
    assert outcomes["document"] > 0 and len(outcomes) > 2  # mutations both survive and break files


def test_mutated_pdfs_in_parallel_reader(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    # Mild mutations of a document long enough for the worker pool: damage must be reported, not crash it.
    base = Seed("long70", pdfs.long_pdf(tmp_path / "long70.pdf", 70).read_bytes())
    rng = random.Random(SEED + 1)
    outcomes: Counter[str] = Counter()
    slowest = 0.0
    for _ in range(PARALLEL_CASES):
        data = flip_bytes(rng, base.data, [base])
        started = time.monotonic()
        outcomes[run_case(data, None, workers=2)] += 1
        slowest = max(slowest, time.monotonic() - started)
    report("parallel", outcomes, slowest, record_property)
    assert slowest < SLOWEST_CASE_S


_TEXT = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()) | st.sampled_from("-\n\t \u00ad\u00a0ﬁe"),
    max_size=200,
)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(_TEXT)
def test_tidy_page_text_properties(raw: str) -> None:
    cleaned = tidy_page_text(raw)
    assert not _FORBIDDEN.search(cleaned)
    assert "\n\n\n" not in cleaned
    assert cleaned == cleaned.strip()
    assert tidy_page_text(cleaned) == cleaned
