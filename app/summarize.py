"""Summaries of documents of any length: one pass when the text fits, else hierarchical map-reduce.

The plan is made with the backend's own tokenizer against the model's
*effective* context (well below the window: long-context recall fades, see
RULER), so a 100-page PDF is summarized faithfully on an 8K laptop model and
in a single pass on a 128K node. Every map step is cached, so a cancelled or
crashed run resumes where it stopped.

Citations come only from pages the app knows produced a text: each section is
labelled with the pages of its chunk, and a page reference the model wrote is
kept only when it lies within the pages of the pass that wrote it.

A run reports typed events (see `SummaryEvent`) through a callback: the UI,
the API and the CLI render them and do nothing else.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from app import messages, prompts
from app.documents import Document
from app.errors import Cancelled
from app.injection import fence_document
from app.map_steps import map_workers, run_steps
from app.output_hygiene import LoopGuard, echoes_markers, strip_markers, visible_so_far, without_repeats
from backends.base import ChatBackend, ChatMessage, GenerationOptions, Usage, close_stream
from storage.repo import Repository

# Share of the window a model still reads reliably, by size (RULER: 8B ≈ 32K, 70B ≈ 64K).
EFFECTIVE_CAPS = (("405b", 0.85), ("70b", 0.5))
DEFAULT_EFFECTIVE_CAP = 32_768
SAFETY_TOKENS = 32
MAP_OUTPUT_TOKENS = 384
FINAL_OUTPUT_TOKENS = 1024
EXCERPT_CHARS = 280
SUMMARY_TEMPERATURE = 0.2
SUMMARY_REPEAT_PENALTY = 1.15
PROGRESS_INTERVAL_S = 0.5
MIN_RATE_WINDOW_S = 0.25  # a rate measured over less is noise

StepKind = Literal["single", "map", "merge", "final"]


class SummaryCancelled(Cancelled):
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
    map_output_tokens: int
    final_output_tokens: int
    overhead_tokens: int

    @property
    def merges(self) -> int:
        return 0 if self.strategy == "single" else estimate_merges(len(self.chunks))

    @property
    def steps(self) -> int:
        return 1 if self.strategy == "single" else len(self.chunks) + self.merges

    @property
    def work_tokens(self) -> int:
        """Tokens the model will read and write, estimated before anything runs."""
        if self.strategy == "single":
            return self.document_tokens + self.overhead_tokens + self.final_output_tokens
        mapped = self.document_tokens + len(self.chunks) * (self.overhead_tokens + self.map_output_tokens)
        merged = self.merges * (self.overhead_tokens + self.chunk_tokens // 2 + self.map_output_tokens)
        return mapped + merged + self.final_output_tokens

    def describe(self) -> str:
        ctx = f"{self.context_window // 1024}K context" if self.context_window >= 1024 else "context"
        where = f"{self.backend} {self.model} ({ctx})"
        if self.strategy == "single":
            return f"{self.document_tokens:,} tokens, 1 pass on {where}"
        return f"{self.document_tokens:,} tokens, {len(self.chunks)} chunks, {self.merges} merges on {where}"


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


# -- events ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanReady:
    plan: Plan


@dataclass(frozen=True)
class StepStarted:
    kind: StepKind
    first_page: int
    last_page: int
    index: int  # 1-based
    steps: int


@dataclass(frozen=True)
class Progressed:
    done_tokens: int
    total_tokens: int
    eta_s: float | None  # None until a rate has been measured
    elapsed_s: float


@dataclass(frozen=True)
class PassText:
    """The text of the pass being written, so far, with markers already stripped."""

    kind: StepKind
    first_page: int
    last_page: int
    text: str
    delta: str


@dataclass(frozen=True)
class Notice:
    """Something the user should know that did not stop the run."""

    code: Literal["repetition_stopped", "markers_redone"]
    first_page: int
    last_page: int


Emit = Callable[[object], None]


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


Sized = TypeVar("Sized", Unit, Part)


def greedy_groups(items: Sequence[Sized], budget: int) -> list[list[Sized]]:
    """Consecutive items into groups of at most ``budget`` tokens (a bigger item goes alone)."""
    groups: list[list[Sized]] = []
    current: list[Sized] = []
    used = 0
    for item in items:
        if current and used + item.tokens > budget:
            groups.append(current)
            current, used = [], 0
        current.append(item)
        used += item.tokens
    if current:
        groups.append(current)
    return groups


def pack(units: Sequence[Unit], budget: int) -> list[Part]:
    """Consecutive units into chunks of at most ``budget`` tokens, never overlapping."""
    return [_part(group) for group in greedy_groups(units, budget)]


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


def _part(units: Sequence[Unit]) -> Part:
    return Part(units[0].page, units[-1].page, _with_page_marks(units), sum(u.tokens for u in units))


def _with_page_marks(units: Sequence[Unit]) -> str:
    lines: list[str] = []
    page = 0
    for unit in units:
        if unit.page != page:
            lines.append(prompts.PAGE_MARK.format(page=unit.page))
            page = unit.page
        lines.append(unit.text.strip())
    return "\n".join(lines)


def make_plan(doc: Document, backend: ChatBackend) -> Plan:
    window = backend.context_window
    effective = effective_context(backend)
    overhead = _prompt_overhead(backend, doc.filename)
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
    return Plan(
        strategy=strategy,
        document_tokens=total,
        context_window=window,
        effective_context=effective,
        chunk_tokens=chunk_budget,
        chunks=chunks,
        backend=backend.name,
        model=backend.model,
        map_output_tokens=map_out,
        final_output_tokens=final_out,
        overhead_tokens=overhead,
    )


def _prompt_overhead(backend: ChatBackend, filename: str) -> int:
    probe = map_messages(Part(1, 1, ""), "en", filename)
    return backend.count_message_tokens(probe) + 24


def estimate_merges(chunks: int) -> int:
    return 1 if chunks <= 1 else max(1, chunks // 6) + 1


# -- prompts --------------------------------------------------------------------


def _fenced(text: str, label: str, filename: str) -> str:
    """The file name travels inside the fence with the text: it is untrusted data like the text."""
    body = f"{prompts.FILE_NAME_LINE.format(name=filename)}\n{text}" if filename else text
    return fence_document(body, label)


def map_messages(part: Part, lang: str, filename: str) -> list[ChatMessage]:
    system = f"{prompts.summary_instruction(lang)}\n{prompts.MAP_TASK.format(pages=part.pages_label)}"
    label = prompts.PART_LABEL.format(pages=part.pages_label)
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": _fenced(part.text, label, filename)},
    ]


def merge_messages(
    children: Sequence[Part], excerpts: Sequence[str], lang: str, filename: str, final: bool
) -> list[ChatMessage]:
    task = prompts.FINAL_MERGE_TASK if final else prompts.MERGE_TASK
    blocks = []
    for child, excerpt in zip(children, excerpts, strict=True):
        block = f"{prompts.SECTION_LABEL.format(pages=child.pages_label)}\n{child.text.strip()}"
        if excerpt:
            block += "\n" + prompts.EXCERPT_LINE.format(pages=child.pages_label, excerpt=excerpt)
        blocks.append(block)
    system = f"{prompts.summary_instruction(lang)}\n{task} {prompts.MERGE_GROUNDING}"
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": _fenced("\n\n".join(blocks), prompts.MERGE_LABEL, filename)},
    ]


def single_messages(part: Part, lang: str, filename: str) -> list[ChatMessage]:
    system = f"{prompts.summary_instruction(lang)}\n{prompts.SINGLE_TASK.format(pages=part.pages_label)}"
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": _fenced(part.text, prompts.SINGLE_LABEL, filename)},
    ]


# -- running ----------------------------------------------------------------------


@dataclass
class Summarizer:
    repo: Repository
    backend: ChatBackend

    def cache_key(self, doc: Document, lang: str, plan: Plan, *parts: str) -> str:
        """Everything that shapes a summary: the prompts' texts, the budgets, the model, the document."""
        raw = json.dumps(
            [
                prompts.fingerprint(),
                doc.sha256,
                self.backend.name,
                self.backend.model,
                plan.context_window,
                plan.chunk_tokens,
                plan.map_output_tokens,
                plan.final_output_tokens,
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
        emit: Emit | None = None,
        cancel: threading.Event | None = None,
    ) -> SummaryResult:
        plan = plan or make_plan(doc, self.backend)
        run = SummaryRun(self, doc, lang, plan, emit or (lambda _: None), cancel or threading.Event())
        return run.execute()


@dataclass
class SummaryRun:
    """One summary being written: its passes, its token accounting and its partial text."""

    owner: Summarizer
    doc: Document
    lang: str
    plan: Plan
    emit: Emit
    cancel: threading.Event
    started: float = field(default_factory=time.monotonic)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    levels: int = 0
    _done_tokens: int = 0  # of the plan's work, including cached steps
    _measured_tokens: int = 0  # by the model in this run, for the rate
    _step: int = 0
    _sections: dict[int, Part] = field(default_factory=dict)
    _overview: str = ""
    _last_progress: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def execute(self) -> SummaryResult:
        key = self.owner.cache_key(self.doc, self.lang, self.plan, "summary")
        cached_meta = self.owner.repo.cached_summary_meta(key)
        cached_text = self.owner.repo.cached_summary(key)
        if cached_text is not None and cached_meta is not None:
            self._overview = cached_text
            return SummaryResult(**{**cached_meta, "summary": cached_text, "cached": True, "elapsed_s": 0.0})
        if self.plan.strategy == "single":
            part = self.plan.chunks[0]
            self._start("single", part.first_page, part.last_page)
            overview = self._generate(
                single_messages(part, self.lang, self.doc.filename),
                self.plan.final_output_tokens,
                "single",
                part,
            )
            self._overview = overview
            sections: list[Part] = []
        else:
            mapped = self._map(self.plan.chunks)
            sections, overview = self._reduce(mapped)
        summary = compose(overview, sections, self.doc.page_count, self.lang)
        result = SummaryResult(
            summary=summary,
            language=self.lang,
            strategy=self.plan.strategy,
            chunks=len(self.plan.chunks),
            tokens_processed=self.prompt_tokens,
            output_tokens=self.completion_tokens,
            elapsed_s=time.monotonic() - self.started,
            citations=citations(summary, self.doc.page_count),
            document_tokens=self.plan.document_tokens,
            levels=self.levels,
        )
        meta = {k: v for k, v in result.__dict__.items() if k not in ("summary", "cached", "elapsed_s")}
        self.owner.repo.put_summary(key, self.doc.sha256, summary, meta)
        return result

    def partial(self) -> str:
        """The summary as far as it is written: the overview so far, and the sections mapped so far."""
        with self._lock:
            sections = [self._sections[i] for i in sorted(self._sections)]
            overview = self._overview
        if not overview and not sections:
            return ""
        return compose(overview, sections, self.doc.page_count, self.lang, placeholder="")

    def progress(self) -> Progressed:
        with self._lock:
            done = self._done_tokens
            measured = self._measured_tokens
        total = max(self.plan.work_tokens, done)
        elapsed = time.monotonic() - self.started
        eta = None
        if measured > 0 and elapsed > MIN_RATE_WINDOW_S:
            eta = (total - done) / (measured / elapsed)
        return Progressed(done, total, eta, elapsed)

    # map: every chunk once, from the cache when a previous run got that far
    def _map(self, chunks: Sequence[Part]) -> list[Part]:
        step_tokens = self.plan.chunk_tokens + self.plan.map_output_tokens
        workers = map_workers(self.owner.backend, step_tokens, len(chunks))
        return run_steps(list(enumerate(chunks)), self._map_one, workers, self.cancel)

    def _map_one(self, item: tuple[int, Part]) -> Part:
        index, chunk = item
        key = self.owner.cache_key(
            self.doc,
            self.lang,
            self.plan,
            "map",
            str(chunk.first_page),
            str(chunk.last_page),
            hashlib.sha256(chunk.text.encode()).hexdigest(),
        )
        self._start("map", chunk.first_page, chunk.last_page)
        text = self.owner.repo.chunk_result(key)
        if text is None:
            text = self._generate(
                map_messages(chunk, self.lang, self.doc.filename), self.plan.map_output_tokens, "map", chunk
            )
            self.owner.repo.put_chunk_result(key, self.doc.sha256, text)
        else:
            self._count(
                chunk.tokens + self.plan.overhead_tokens + self.plan.map_output_tokens, measured=False
            )
        part = Part(chunk.first_page, chunk.last_page, text, self.owner.backend.count_tokens(text))
        with self._lock:
            self._sections[index] = part
        self._report(force=True)
        return part

    # reduce: merge neighbours level by level until one summary fits the final prompt
    def _reduce(self, parts: list[Part]) -> tuple[list[Part], str]:
        sections = parts
        budget = self.plan.chunk_tokens
        while sum(p.tokens for p in parts) > budget and len(parts) > 1:
            self.levels += 1
            groups = greedy_groups(parts, budget)
            if len(groups) == len(parts):  # nothing merges: force pairs so the loop ends
                groups = [parts[i : i + 2] for i in range(0, len(parts), 2)]
            parts = [self._merge(g, final=False) for g in groups]
            if len(parts) > 1:
                sections = parts
        self.levels += 1
        overview = self._merge(parts, final=True).text
        return sections, overview

    def _merge(self, children: Sequence[Part], final: bool) -> Part:
        span = Part(children[0].first_page, children[-1].last_page, "")
        kind: StepKind = "final" if final else "merge"
        self._start(kind, span.first_page, span.last_page)
        messages = merge_messages(children, self._excerpts(children), self.lang, self.doc.filename, final)
        budget = self.plan.final_output_tokens if final else self.plan.map_output_tokens
        text = self._generate(messages, budget, kind, span)
        return Part(span.first_page, span.last_page, text, self.owner.backend.count_tokens(text))

    def _excerpts(self, children: Sequence[Part]) -> list[str]:
        """Short source passages ground a merge in the text itself, when the window has room."""
        room = self.plan.chunk_tokens - sum(c.tokens for c in children)
        per_child = room // max(1, len(children))
        if per_child < 80:
            return ["" for _ in children]
        return [_opening(self.doc, c.first_page, EXCERPT_CHARS) for c in children]

    # one pass: stream it, cut a loop, redo once if it copied the prompt's markers
    def _generate(self, messages: list[ChatMessage], max_tokens: int, kind: StepKind, span: Part) -> str:
        raw = self._stream(messages, max_tokens, kind, span)
        if echoes_markers(raw):
            self.emit(Notice("markers_redone", span.first_page, span.last_page))
            redo: list[ChatMessage] = [
                {"role": "system", "content": f"{messages[0]['content']}\n{prompts.REDO_NOTE}"},
                *messages[1:],
            ]
            raw = self._stream(redo, max_tokens, kind, span, seed=1)
        text, _ = keep_cited_pages(strip_markers(raw), span.first_page, span.last_page)
        return text

    def _stream(
        self, messages: list[ChatMessage], max_tokens: int, kind: StepKind, span: Part, seed: int = 0
    ) -> str:
        self._check_cancel()
        options = GenerationOptions(
            max_tokens=max_tokens,
            temperature=SUMMARY_TEMPERATURE,
            seed=seed,
            repeat_penalty=SUMMARY_REPEAT_PENALTY,
        )
        prompt_estimate = self.owner.backend.count_message_tokens(messages)
        text = ""
        usage = Usage()
        guard = LoopGuard()
        stream = self.owner.backend.stream_chat(messages, options)
        try:
            for delta in stream:
                self._check_cancel()
                usage.add(delta)
                if not delta.text:
                    continue
                if not text:
                    self._count(prompt_estimate, measured=True)  # the prompt has been read
                text += delta.text
                self._count(1, measured=True)
                cut = guard.cut(text)
                if cut is not None:
                    text = text[:cut].rstrip()
                    self.emit(Notice("repetition_stopped", span.first_page, span.last_page))
                    break
                self._show(kind, span, text, delta.text)
        finally:
            close_stream(stream)
        prompt, completion = usage.settled(lambda: prompt_estimate)
        with self._lock:
            self.prompt_tokens += prompt
            self.completion_tokens += completion
        return text.strip()

    def _show(self, kind: StepKind, span: Part, text: str, delta: str) -> None:
        shown = visible_so_far(text)
        if kind in ("single", "final"):
            with self._lock:
                self._overview = shown
        self.emit(PassText(kind, span.first_page, span.last_page, shown, delta))
        self._report()

    def _start(self, kind: StepKind, first: int, last: int) -> None:
        with self._lock:
            self._step += 1
            index = self._step
        self.emit(StepStarted(kind, first, last, index, max(self.plan.steps, index)))
        self._report(force=True)

    def _count(self, tokens: int, measured: bool) -> None:
        with self._lock:
            self._done_tokens += tokens
            if measured:
                self._measured_tokens += tokens

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = now
            self.emit(self.progress())

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise SummaryCancelled()


def _opening(doc: Document, page: int, chars: int) -> str:
    text = " ".join(doc.pages[page - 1].split()) if 0 < page <= len(doc.pages) else ""
    if len(text) <= chars:
        return text
    cut = text[:chars]
    return cut[: cut.rfind(" ")] + " …" if " " in cut else cut


# -- the result -------------------------------------------------------------------

NO_TEXT = "(the model returned no text)"


def compose(
    overview: str, sections: Sequence[Part], page_count: int, lang: str, placeholder: str = NO_TEXT
) -> str:
    """The summary as Markdown: the overview, then one line per section with the pages it came from."""
    overview, *texts = without_repeats([overview, *(part.text for part in sections)])
    body = overview.strip() or placeholder
    if not sections:
        if body and not citations(body, page_count):
            body += f"\n\n*Source: {pages_label(1, page_count)}*"
        return body
    lines = [body, ""] if body else []
    lines += [f"### {messages.text('summarize.sections', lang)}", ""]
    for part, text in zip(sections, texts, strict=True):
        lines.append(f"- **{part.pages_label}** — {_first_sentences(text) or placeholder}")
    return "\n".join(lines)


def _first_sentences(text: str, limit: int = 320) -> str:
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit]
    end = max(cut.rfind(". "), cut.rfind("। "))
    return cut[: end + 1] if end > limit // 3 else cut.rsplit(" ", 1)[0] + " …"


# A page reference, with the parentheses around it when there are any, so a dropped one leaves no "()".
_CITATION = re.compile(
    r"(?P<open>\()?\b(?:pp?|S|pág|pag)\.\s*(?P<first>\d+)(?:\s*[–—-]\s*(?P<last>\d+))?(?(open)\))",
    re.IGNORECASE,
)


def citations(text: str, page_count: int) -> list[tuple[int, int]]:
    """Page ranges cited in the text, kept only when they exist in the document."""
    found: list[tuple[int, int]] = []
    for match in _CITATION.finditer(text):
        first = int(match.group("first"))
        last = int(match.group("last") or first)
        if 1 <= first <= last <= page_count and (first, last) not in found:
            found.append((first, last))
    return found


def keep_cited_pages(text: str, first_page: int, last_page: int) -> tuple[str, list[tuple[int, int]]]:
    """Drop every page reference outside the pages that produced `text`; return what is left.

    A model summarizing pages 5–8 cannot know what is on page 40, and may echo an example from the
    prompt: only references within the pass's own pages survive.
    """
    kept: list[tuple[int, int]] = []

    def check(match: re.Match[str]) -> str:
        first = int(match.group("first"))
        last = int(match.group("last") or first)
        if first_page <= first <= last <= last_page:
            if (first, last) not in kept:
                kept.append((first, last))
            return match.group(0)
        return ""

    cleaned = _CITATION.sub(check, text)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    return re.sub(r"[ \t]{2,}", " ", cleaned).strip(), kept
