"""Documents in conversations: one pipeline from an upload to a summary reply, and follow-up questions.

Every frontend (the Summarize tab, a PDF dropped in the chat, the /summarize API, the CLI) calls
`DocumentService.open_upload` and only renders what it returns: the document, the injection
findings, the plan, and a stream of typed events. A summary is written like a chat reply: the
request and its reply row are stored together, the reply is checkpointed while it is written, it
ends `interrupted` when the run is cancelled or fails, and summarizing the same document again
continues the same conversation.

A follow-up on a document that fits the effective context gets the whole
document as a stable prompt prefix (so llama.cpp's KV cache and vLLM's prefix
cache skip re-reading it); a longer one gets the pages that full-text search
(BM25) finds for the question.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from app import language, prompts
from app.checkpoint import Checkpointer
from app.documents import Document, PageProgress
from app.formats import with_section_names
from app.injection import Finding, detect_in_pages, detect_injection, fence_document
from app.registry import BackendRegistry
from app.summarize import (
    PassText,
    Plan,
    PlanReady,
    Progressed,
    Summarizer,
    SummaryResult,
    SummaryRun,
    effective_context,
    make_plan,
)
from app.titles import excerpt_title, unique_title
from app.uploads import ReadControl, Upload, read_upload
from backends.base import ChatBackend
from storage.repo import Repository

# A document may take this share of the effective context and still ride along whole.
WHOLE_DOCUMENT_SHARE = 0.6
RETRIEVED_PAGES = 6
RETRIEVAL_SHARE = 0.35
# While the model reads a long prompt no event comes; the stream still says how things stand.
HEARTBEAT_S = 1.0
RECENT_UPLOADS = 8
STOP_WAIT_S = 5.0


@dataclass(frozen=True)
class SummaryOutcome:
    result: SummaryResult
    plan: Plan
    conversation_id: str
    message_id: int
    document_tokens: int


@dataclass(frozen=True)
class Finished:
    """The last event of a stream: the summary, with its citations, stored as the reply `message_id`."""

    outcome: SummaryOutcome


SummaryEvents = Generator[object, None, None]


@dataclass
class SummaryJob:
    """What an upload became: read, checked and planned. Nothing runs until `events` is iterated;
    closing `events` (a client that went away, Stop) cancels the run within one token."""

    document: Document
    findings: list[Finding]
    plan: Plan
    language: str
    events: SummaryEvents


@dataclass
class DocumentService:
    repo: Repository
    backends: BackendRegistry
    _token_cache: dict[tuple[str, str], int] = field(default_factory=dict)
    _recent: OrderedDict[tuple[object, ...], Document] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the pipeline ---------------------------------------------------------------

    def open_upload(
        self, upload: Upload, reading: PageProgress | None = None, ocr_reading: PageProgress | None = None
    ) -> SummaryJob:
        """Read the upload, look for injected instructions in its text and its name, and plan it.

        `reading` hears pages read so far, `ocr_reading` scanned pages read by OCR so far. Raises
        DocumentError for a bad file and LanguageRejected for an unknown language.
        """
        lang = language.language_setting(upload.language or "auto")  # bad input, before any work
        doc = self.read(upload, reading, ocr_reading)
        plan = self.plan(doc, upload.backend)
        lang = self.summary_language(lang, doc)
        events = self.summary_events(
            upload.user_id,
            doc,
            language_setting=lang,
            backend_name=upload.backend,
            conversation_id=upload.conversation_id,
            plan=plan,
        )
        return SummaryJob(doc, injection_findings(doc), plan, lang, events)

    def read(
        self, upload: Upload, reading: PageProgress | None = None, ocr_reading: PageProgress | None = None
    ) -> Document:
        """The upload's document; the same file uploaded again (plan, then run) is read once."""
        stat = upload.path.stat()
        key = (str(upload.path), stat.st_size, stat.st_mtime_ns, upload.filename, upload.password)
        with self._lock:
            if key in self._recent:
                self._recent.move_to_end(key)
                return self._recent[key]
        chosen = None if upload.language in ("", "auto") else upload.language
        control = ReadControl(progress=reading, language=chosen, ocr_progress=ocr_reading)
        doc = read_upload(upload.path, upload.filename, upload.password, control)
        with self._lock:
            self._recent[key] = doc
            while len(self._recent) > RECENT_UPLOADS:
                self._recent.popitem(last=False)
        return doc

    def summary_language(self, setting: str, doc: Document) -> str:
        chosen = language.language_setting(setting or "auto")
        return (doc.language or "en") if chosen == "auto" else chosen

    def plan(self, doc: Document, backend_name: str | None = None) -> Plan:
        return make_plan(doc, self.backends.get(backend_name))

    def summary_events(
        self,
        user_id: int,
        doc: Document,
        *,
        language_setting: str = "auto",
        backend_name: str | None = None,
        conversation_id: str | None = None,
        plan: Plan | None = None,
    ) -> SummaryEvents:
        """Summarize `doc` into a conversation, as events: PlanReady, then StepStarted, Progressed,
        PassText and Notice while it runs, and Finished at the end. Failures are raised."""
        backend = self.backends.get(backend_name)
        lang = self.summary_language(language_setting, doc)
        plan = plan or make_plan(doc, backend)
        yield PlanReady(plan)
        cid = self.attach(user_id, doc, conversation_id, backend, lang)
        _, reply_id = self._open_exchange(user_id, cid, doc, backend)
        events: queue.Queue[object] = queue.Queue()
        cancel = threading.Event()
        run = SummaryRun(Summarizer(self.repo, backend), doc, lang, plan, events.put, cancel)
        checkpoint = Checkpointer(self.repo, user_id, reply_id)

        def work() -> None:
            with checkpoint:
                try:
                    result = run.execute()
                    result = replace(result, summary=with_section_names(doc, result.summary))
                    checkpoint.complete(result.summary, result.tokens_processed, result.output_tokens)
                    events.put(Finished(SummaryOutcome(result, plan, cid, reply_id, plan.document_tokens)))
                except BaseException as exc:  # cancelled, the backend failed, the database went away
                    checkpoint.interrupted(run.partial())
                    events.put(exc)

        def saving(event: object) -> None:
            events.put(event)
            if isinstance(event, (PassText, Progressed)):
                checkpoint.maybe(run.partial())

        run.emit = saving
        worker = threading.Thread(target=work, name="summarize", daemon=True)
        worker.start()
        try:
            while True:
                try:
                    event = events.get(timeout=HEARTBEAT_S)
                except queue.Empty:
                    yield run.progress()
                    continue
                if isinstance(event, BaseException):
                    raise event
                yield event
                if isinstance(event, Finished):
                    return
        finally:
            # A no-op when finished. On close the run stops at its next token; waiting for it (boundedly:
            # a model reading a long prompt cannot stop) means the reply is marked interrupted on return.
            cancel.set()
            worker.join(timeout=STOP_WAIT_S)

    def attach(
        self, user_id: int, doc: Document, conversation_id: str | None, backend: ChatBackend, lang: str
    ) -> str:
        """The conversation the summary goes to: the one given, the one this user already has for this
        document, or a new one."""
        cid = conversation_id or self.repo.conversation_with_document(user_id, doc.sha256)
        cid = cid or self.repo.create_conversation(
            user_id,
            title=unique_title(self.repo, user_id, excerpt_title(doc.filename), datetime.now(UTC)),
            backend=backend.name,
            model=backend.model,
            language=lang,
        )
        self.repo.get_conversation(user_id, cid)  # ownership, before anything is written
        self.repo.store_document(doc.sha256, doc.filename, doc.language or "", doc.pages)
        self.repo.attach_document(user_id, cid, doc.sha256)
        return cid

    def _open_exchange(self, user_id: int, cid: str, doc: Document, backend: ChatBackend) -> tuple[int, int]:
        """The request and its empty reply, stored together; a rerun replaces an unfinished one."""
        request = prompts.SUMMARY_REQUEST.format(name=doc.filename, pages=doc.page_count)
        rows = self.repo.messages(user_id, cid)
        if (
            len(rows) >= 2
            and rows[-2].role == "user"
            and rows[-2].content == request
            and rows[-1].role == "assistant"
            and rows[-1].status != "complete"
        ):
            self.repo.delete_messages_from(user_id, cid, rows[-2].id)
        return self.repo.add_exchange(user_id, cid, request, backend=backend.name, model=backend.model)

    # -- follow-up questions ----------------------------------------------------

    def context(self, hashes: Sequence[str], question: str, backend: ChatBackend) -> str:
        """Document text for the system prompt of a follow-up question ("" when none is attached).

        `hashes` are a conversation's attached documents, read with its owner checked.
        """
        if not hashes:
            return ""
        effective = effective_context(backend)
        blocks = [self._whole(h, backend) for h in hashes]
        if sum(tokens for _, tokens in blocks) <= effective * WHOLE_DOCUMENT_SHARE:
            body = "\n\n".join(text for text, _ in blocks)
            return f"{body}\n\n{prompts.ANSWER_FROM_DOCUMENT}"
        return self._retrieved(hashes, question, backend, int(effective * RETRIEVAL_SHARE))

    def _whole(self, sha256: str, backend: ChatBackend) -> tuple[str, int]:
        pages = self.repo.document_pages(sha256)
        marked = "\n".join(
            f"{prompts.PAGE_MARK.format(page=i)}\n{text}"
            for i, text in enumerate(pages, start=1)
            if text.strip()
        )
        fenced = fence_document(marked, prompts.DOCUMENT_CONTEXT_LABEL.format(ref=sha256[:12]))
        key = (sha256, backend.name)
        with self._lock:
            tokens = self._token_cache.get(key)
        if tokens is None:
            tokens = backend.count_tokens(fenced)
            with self._lock:
                self._token_cache[key] = tokens
        return fenced, tokens

    def _retrieved(self, hashes: Sequence[str], question: str, backend: ChatBackend, budget: int) -> str:
        found: list[str] = []
        used = 0
        for sha256 in hashes:
            for page, text in self.repo.search_document(sha256, question, limit=RETRIEVED_PAGES):
                passage = f"{prompts.PAGE_MARK.format(page=page)}\n{text.strip()}"
                tokens = backend.count_tokens(passage)
                if used + tokens > budget:
                    passage = passage[: max(0, (budget - used) * 3)]
                    tokens = backend.count_tokens(passage)
                if not passage or used + tokens > budget:
                    break
                found.append(passage)
                used += tokens
        if not found:
            return prompts.NOTHING_FOUND
        pages = fence_document("\n\n".join(found), prompts.PASSAGES_LABEL)
        return f"{pages}\n\n{prompts.ANSWER_FROM_PASSAGES}"


def run_to_end(events: SummaryEvents) -> SummaryOutcome:
    """The outcome of a summary stream, for callers that show no progress."""
    for event in events:
        if isinstance(event, Finished):
            return event.outcome
    raise AssertionError("a summary stream ends with Finished or an exception")


def injection_findings(doc: Document) -> list[Finding]:
    """Likely injected instructions in the document's pages and in its file name (page None)."""
    return [*detect_injection(Path(doc.filename).stem), *detect_in_pages(doc.pages)]
