"""Summaries of documents of any length: one pass when the text fits, else hierarchical map-reduce.

The plan is made with the backend's own tokenizer against the model's
*effective* context (well below the window: long-context recall fades, see
RULER), so a 100-page PDF is summarized faithfully on an 8K laptop model and
in a single pass on a 128K node. Every map step is cached, so a cancelled or
crashed run resumes where it stopped. Citations are page ranges the app
knows, not ones the model might invent.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app import language
from app.documents import Document
from app.injection import fence_document
from app.map_steps import map_workers, run_steps
from backends.base import BackendError, ChatBackend, ChatMessage, GenerationOptions, close_stream
from storage.repo import Repository

# Share of the window a model still reads reliably, by size (RULER: 8B ≈ 32K, 70B ≈ 64K).
EFFECTIVE_CAPS = (("405b", 0.85), ("70b", 0.5))
DEFAULT_EFFECTIVE_CAP = 32_768
SAFETY_TOKENS = 32
MAP_OUTPUT_TOKENS = 384
FINAL_OUTPUT_TOKENS = 1024
EXCERPT_CHARS = 280
SUMMARY_REPEAT_PENALTY = 1.15
SETTINGS_VERSION = "v1"  # part of every cache key: bump when prompts change

Progress = Callable[[int, int, str], None]


class SummaryCancelled(Exception):
    """The user cancelled; finished map steps stay cached."""


@dataclass(frozen=True)
class Unit:
    """A piece of text from one page (a whole page, or a paragraph of a long one)."""

    page: int
    text: str
    tokens: int


@dataclass(frozen=True)
class Part:
    """A chunk of the document or a merged summary, with the pages it covers."""

    first_page: int
    last_page: int
    text: str
    tokens: int = 0

    @property
    def pages_label(self) -> str:
        return pages_label(self.first_page, self.last_page)


@dataclass(frozen=True)
class Plan:
    strategy: str  # "single" | "map-reduce"
    document_tokens: int
    context_window: int
    effective_context: int
    chunk_tokens: int
    chunks: tuple[Part, ...]
    backend: str
    model: str

    def describe(self) -> str:
        ctx = f"{self.context_window // 1024}K context" if self.context_window >= 1024 else "context"
        where = f"{self.backend} {self.model} ({ctx})"
        if self.strategy == "single":
            return f"{self.document_tokens:,} tokens, 1 pass on {where}"
        return f"{self.document_tokens:,} tokens, {len(self.chunks)} chunks on {where}"


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, prompt: int, completion: int) -> None:
        with self.lock:
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self.calls += 1


@dataclass(frozen=True)
class SummaryResult:
    summary: str
    language: str
    strategy: str
    chunks: int
    tokens_processed: int
    output_tokens: int
    elapsed_s: float
    citations: list[tuple[int, int]]
    document_tokens: int
    cached: bool = False
    levels: int = 0


def pages_label(first: int, last: int) -> str:
    return f"p. {first}" if first == last else f"pp. {first}–{last}"


def effective_context(backend: ChatBackend) -> int:
    window = backend.context_window
    name = backend.model.lower()
    for marker, share in EFFECTIVE_CAPS:
        if marker in name:
            return int(window * share)
    return min(window, DEFAULT_EFFECTIVE_CAP)


# -- planning -------------------------------------------------------------------


def document_units(doc: Document, backend: ChatBackend, max_tokens: int) -> list[Unit]:
    """Pages as units; a page too long for one chunk is split at paragraphs, then sentences."""
    units: list[Unit] = []
    for number, text in enumerate(doc.pages, start=1):
        if not text.strip():
            continue
        tokens = backend.count_tokens(text)
        if tokens <= max_tokens:
            units.append(Unit(number, text, tokens))
        else:
            units.extend(_split_page(number, text, backend, max_tokens))
    return units


def _split_page(page: int, text: str, backend: ChatBackend, max_tokens: int) -> list[Unit]:
    pieces = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(pieces) == 1:
        pieces = [s for s in re.split(r"(?<=[.!?।。])\s+", text) if s.strip()]
    units: list[Unit] = []
    for piece in pieces:
        tokens = backend.count_tokens(piece)
        if tokens > max_tokens:  # one giant sentence: cut by characters, the only boundary left
            step = max(200, len(piece) * max_tokens // max(tokens, 1))
            units.extend(
                Unit(page, piece[i : i + step], backend.count_tokens(piece[i : i + step]))
                for i in range(0, len(piece), step)
            )
        else:
            units.append(Unit(page, piece, tokens))
    return units


def pack(units: Sequence[Unit], budget: int) -> list[Part]:
    """Consecutive units into chunks of at most ``budget`` tokens, never overlapping."""
    parts: list[Part] = []
    current: list[Unit] = []
    used = 0
    for unit in units:
        if current and used + unit.tokens > budget:
            parts.append(_part(current, used))
            current, used = [], 0
        current.append(unit)
        used += unit.tokens
    if current:
        parts.append(_part(current, used))
    return parts


def pack_evenly(units: Sequence[Unit], total: int, budget: int) -> list[Part]:
    """As few chunks as greedy packing gives, of sizes as equal as the units allow.

    Prefill attention grows with the square of a chunk's length, and a summary written after a
    long chunk is written slowly, so 5,700 + 5,700 tokens beat 6,750 + 4,650.
    """
    count = len(pack(units, budget))
    target = -(-total // count)
    while target < budget:
        chunks = pack(units, target)
        if len(chunks) <= count:
            return chunks
        target = min(budget, target + max(1, target // 64))  # units are whole pages or paragraphs
    return pack(units, budget)


def _part(units: Sequence[Unit], tokens: int) -> Part:
    return Part(units[0].page, units[-1].page, _with_page_marks(units), tokens)


def _with_page_marks(units: Sequence[Unit]) -> str:
    lines: list[str] = []
    page = 0
    for unit in units:
        if unit.page != page:
            lines.append(f"[page {unit.page}]")
            page = unit.page
        lines.append(unit.text.strip())
    return "\n".join(lines)


def make_plan(doc: Document, backend: ChatBackend) -> Plan:
    window = backend.context_window
    effective = effective_context(backend)
    overhead = _prompt_overhead(backend)
    final_out = min(FINAL_OUTPUT_TOKENS, window // 6)
    map_out = min(MAP_OUTPUT_TOKENS, window // 8)
    chunk_budget = max(64, effective - overhead - map_out - SAFETY_TOKENS)
    units = document_units(doc, backend, chunk_budget)
    total = sum(u.tokens for u in units)
    if total + overhead + final_out + SAFETY_TOKENS <= effective:
        chunks = tuple(pack(units, total + 1))
        strategy = "single"
    else:
        chunks = tuple(pack_evenly(units, total, chunk_budget))
        strategy = "map-reduce"
    return Plan(strategy, total, window, effective, chunk_budget, chunks, backend.name, backend.model)


def _prompt_overhead(backend: ChatBackend) -> int:
    probe = _map_messages(Part(1, 1, ""), "en", "x")
    return backend.count_message_tokens(probe) + 24


# -- prompts --------------------------------------------------------------------


def _map_messages(part: Part, lang: str, filename: str) -> list[ChatMessage]:
    system = (
        f"{language.summary_instruction(lang)}\n"
        f"You are summarizing {part.pages_label} of the document “{filename}”, one part of a longer text. "
        "Write a dense summary of this part: its main points, facts, figures and names."
    )
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": fence_document(part.text, f"{filename}, {part.pages_label}")},
    ]


def _merge_messages(
    children: Sequence[Part], excerpts: Sequence[str], lang: str, filename: str, final: bool
) -> list[ChatMessage]:
    task = (
        "Combine these partial summaries into one coherent summary of the whole document, "
        "from beginning to end. Cite the pages of each point in the form (pp. 12–15)."
        if final
        else "Combine these consecutive partial summaries into one summary, keeping their page citations "
        "in the form (pp. 12–15)."
    )
    blocks = []
    for child, excerpt in zip(children, excerpts, strict=True):
        block = f"[{child.pages_label}]\n{child.text.strip()}"
        if excerpt:
            block += f"\nSource excerpt ({child.pages_label}): “{excerpt}”"
        blocks.append(block)
    system = f"{language.summary_instruction(lang)}\n{task} Use only what the summaries and excerpts say."
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": fence_document("\n\n".join(blocks), f"summaries of {filename}")},
    ]


def _single_messages(part: Part, lang: str, filename: str) -> list[ChatMessage]:
    system = (
        f"{language.summary_instruction(lang)}\n"
        f"Summarize the whole document “{filename}” ({part.pages_label}). The text marks each page as "
        "[page N]; cite the pages of each point in the form (pp. 12–15)."
    )
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": fence_document(part.text, filename)},
    ]


# -- running ----------------------------------------------------------------------


@dataclass
class Summarizer:
    repo: Repository
    backend: ChatBackend

    def cache_key(self, doc: Document, lang: str, *parts: str) -> str:
        raw = json.dumps(
            [
                SETTINGS_VERSION,
                doc.sha256,
                self.backend.name,
                self.backend.model,
                self.backend.context_window,
                lang,
                *parts,
            ]
        )
        return hashlib.sha256(raw.encode()).hexdigest()

    def summarize(
        self,
        doc: Document,
        lang: str,
        *,
        plan: Plan | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> SummaryResult:
        started = time.monotonic()
        plan = plan or make_plan(doc, self.backend)
        key = self.cache_key(doc, lang, "summary")
        cached = self.repo.cached_summary_meta(key)
        text = self.repo.cached_summary(key)
        if text is not None and cached is not None:
            return SummaryResult(**{**cached, "summary": text, "cached": True, "elapsed_s": 0.0})
        run = _Run(self, doc, lang, plan, progress or (lambda *_: None), cancel or threading.Event())
        result = run.execute(started)
        meta = {k: v for k, v in result.__dict__.items() if k not in ("summary", "cached", "elapsed_s")}
        self.repo.put_summary(key, doc.sha256, result.summary, meta)
        return result


@dataclass
class _Run:
    owner: Summarizer
    doc: Document
    lang: str
    plan: Plan
    progress: Progress
    cancel: threading.Event
    usage: Usage = field(default_factory=Usage)
    done: int = 0
    total: int = 0
    levels: int = 0

    def execute(self, started: float) -> SummaryResult:
        plan = self.plan
        if plan.strategy == "single":
            self.total = 1
            self._report("summarizing in one pass")
            part = plan.chunks[0]
            overview = self._generate(
                _single_messages(part, self.lang, self.doc.filename),
                min(FINAL_OUTPUT_TOKENS, plan.context_window // 6),
            )
            self._step("summary written")
            summary = compose(overview, [], self.doc.page_count)
        else:
            self.total = len(plan.chunks) + _estimate_merges(len(plan.chunks))
            mapped = self._map(plan.chunks)
            sections, overview = self._reduce(mapped)
            summary = compose(overview, sections, self.doc.page_count)
        return SummaryResult(
            summary=summary,
            language=self.lang,
            strategy=plan.strategy,
            chunks=len(plan.chunks),
            tokens_processed=self.usage.prompt_tokens,
            output_tokens=self.usage.completion_tokens,
            elapsed_s=time.monotonic() - started,
            citations=citations(summary, self.doc.page_count),
            document_tokens=plan.document_tokens,
            levels=self.levels,
        )

    # map: every chunk once, from the cache when a previous run got that far
    def _map(self, chunks: Sequence[Part]) -> list[Part]:
        self._report(f"summarizing {len(chunks)} chunks")
        step_tokens = self.plan.chunk_tokens + MAP_OUTPUT_TOKENS
        workers = map_workers(self.owner.backend, step_tokens, len(chunks))
        return run_steps(chunks, self._map_one, workers, self.cancel)

    def _map_one(self, chunk: Part) -> Part:
        key = self.owner.cache_key(
            self.doc,
            self.lang,
            "map",
            str(chunk.first_page),
            str(chunk.last_page),
            hashlib.sha256(chunk.text.encode()).hexdigest(),
        )
        text = self.owner.repo.chunk_result(key)
        if text is None:
            text = self._generate(
                _map_messages(chunk, self.lang, self.doc.filename),
                min(MAP_OUTPUT_TOKENS, self.plan.context_window // 8),
            )
            self.owner.repo.put_chunk_result(key, self.doc.sha256, text)
        self._step(f"chunk {chunk.pages_label}")
        return Part(chunk.first_page, chunk.last_page, text, self.owner.backend.count_tokens(text))

    # reduce: merge neighbours level by level until one summary fits the final prompt
    def _reduce(self, parts: list[Part]) -> tuple[list[Part], str]:
        sections = parts
        budget = self.plan.chunk_tokens
        while sum(p.tokens for p in parts) > budget and len(parts) > 1:
            self.levels += 1
            groups = _group(parts, budget)
            if len(groups) == len(parts):  # nothing merges: force pairs so the loop ends
                groups = [parts[i : i + 2] for i in range(0, len(parts), 2)]
            parts = [self._merge(g, final=False) for g in groups]
            if len(parts) > 1:
                sections = parts
        self.levels += 1
        overview = self._merge(parts, final=True).text
        return sections, overview

    def _merge(self, children: Sequence[Part], final: bool) -> Part:
        excerpts = self._excerpts(children)
        messages = _merge_messages(children, excerpts, self.lang, self.doc.filename, final)
        out = min(FINAL_OUTPUT_TOKENS if final else MAP_OUTPUT_TOKENS, self.plan.context_window // 6)
        text = self._generate(messages, out)
        self._step(
            "final summary"
            if final
            else f"merged {pages_label(children[0].first_page, children[-1].last_page)}"
        )
        merged = Part(children[0].first_page, children[-1].last_page, text)
        return Part(merged.first_page, merged.last_page, text, self.owner.backend.count_tokens(text))

    def _excerpts(self, children: Sequence[Part]) -> list[str]:
        """Short source passages ground a merge in the text itself, when the window has room."""
        room = self.plan.chunk_tokens - sum(c.tokens for c in children)
        per_child = room // max(1, len(children))
        if per_child < 80:
            return ["" for _ in children]
        return [_opening(self.doc, c.first_page, EXCERPT_CHARS) for c in children]

    def _generate(self, messages: list[ChatMessage], max_tokens: int) -> str:
        if self.cancel.is_set():
            raise SummaryCancelled("summary cancelled")
        options = GenerationOptions(
            max_tokens=max_tokens, temperature=0.2, seed=0, repeat_penalty=SUMMARY_REPEAT_PENALTY
        )
        parts: list[str] = []
        prompt = completion = 0
        stream = self.owner.backend.stream_chat(messages, options)
        try:
            for delta in stream:
                if self.cancel.is_set():
                    raise SummaryCancelled("summary cancelled")
                parts.append(delta.text)
                if delta.prompt_tokens is not None:
                    prompt, completion = delta.prompt_tokens, delta.completion_tokens or 0
        finally:
            close_stream(stream)
        self.usage.add(prompt, completion)
        return "".join(parts).strip()

    def _step(self, what: str) -> None:
        with self.usage.lock:
            self.done += 1
            self.total = max(self.total, self.done)
        self._report(what)

    def _report(self, what: str) -> None:
        self.progress(self.done, self.total, what)


def _group(parts: Sequence[Part], budget: int) -> list[list[Part]]:
    groups: list[list[Part]] = []
    current: list[Part] = []
    used = 0
    for part in parts:
        if current and used + part.tokens > budget:
            groups.append(current)
            current, used = [], 0
        current.append(part)
        used += part.tokens
    if current:
        groups.append(current)
    return groups


def _estimate_merges(chunks: int) -> int:
    return 1 if chunks <= 1 else max(1, chunks // 6) + 1


def _opening(doc: Document, page: int, chars: int) -> str:
    text = " ".join(doc.pages[page - 1].split()) if 0 < page <= len(doc.pages) else ""
    if len(text) <= chars:
        return text
    cut = text[:chars]
    return cut[: cut.rfind(" ")] + " …" if " " in cut else cut


# -- the result -------------------------------------------------------------------


def compose(overview: str, sections: Sequence[Part], page_count: int) -> str:
    """The summary as Markdown: the overview, then one line per section with its pages."""
    body = overview.strip() or "(the model returned no text)"
    if not sections and not citations(body, page_count):
        body += f"\n\n*Source: {pages_label(1, page_count)}*"
    if not sections:
        return body
    lines = [body, "", "### By section", ""]
    for part in sections:
        lines.append(f"- **{part.pages_label}** — {_first_sentences(part.text)} ({part.pages_label})")
    return "\n".join(lines)


def _first_sentences(text: str, limit: int = 320) -> str:
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit]
    end = max(cut.rfind(". "), cut.rfind("। "))
    return cut[: end + 1] if end > limit // 3 else cut.rsplit(" ", 1)[0] + " …"


_CITATION = re.compile(r"\b(?:pp?|S|pág|pag)\.\s*(\d+)(?:\s*[–—-]\s*(\d+))?", re.IGNORECASE)


def citations(text: str, page_count: int) -> list[tuple[int, int]]:
    """Page ranges cited in the text, kept only when they exist in the document."""
    found: list[tuple[int, int]] = []
    for match in _CITATION.finditer(text):
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if 1 <= first <= last <= page_count and (first, last) not in found:
            found.append((first, last))
    return found


def summary_error(exc: BackendError) -> str:
    return f"the summary stopped: {exc}"
