"""Documents in conversations: store, summarize into the chat, and ground follow-up questions.

A follow-up on a document that fits the effective context gets the whole
document as a stable prompt prefix (so llama.cpp's KV cache and vLLM's prefix
cache skip re-reading it); a longer one gets the pages that full-text search
(BM25) finds for the question.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from app import language
from app.documents import Document
from app.injection import fence_document
from app.registry import BackendRegistry
from app.summarize import (
    Plan,
    Progress,
    Summarizer,
    SummaryCancelled,
    SummaryResult,
    effective_context,
    make_plan,
)
from app.titles import excerpt_title, unique_title
from backends.base import BackendError, ChatBackend
from storage.repo import Repository

# A document may take this share of the effective context and still ride along whole.
WHOLE_DOCUMENT_SHARE = 0.6
RETRIEVED_PAGES = 6
RETRIEVAL_SHARE = 0.35


@dataclass(frozen=True)
class SummaryOutcome:
    result: SummaryResult
    plan: Plan
    conversation_id: str
    message_id: int
    document_tokens: int


@dataclass(frozen=True)
class SummaryEvent:
    """One step of a streamed summary: the plan, progress, the outcome, or an error."""

    kind: str  # "plan" | "progress" | "done" | "error"
    text: str = ""
    done: int = 0
    total: int = 0
    outcome: SummaryOutcome | None = None
    error_code: str | None = None


@dataclass
class DocumentService:
    repo: Repository
    backends: BackendRegistry
    _token_cache: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def summary_language(self, setting: str, doc: Document) -> str:
        chosen = language.language_setting(setting or "auto")
        return (doc.language or "en") if chosen == "auto" else chosen

    def plan(self, doc: Document, backend_name: str | None = None) -> Plan:
        return make_plan(doc, self.backends.get(backend_name))

    def summarize(
        self,
        user_id: int,
        doc: Document,
        *,
        language_setting: str = "auto",
        backend_name: str | None = None,
        conversation_id: str | None = None,
        plan: Plan | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> SummaryOutcome:
        """Summarize ``doc`` and post the summary into a conversation (a new one by default)."""
        backend = self.backends.get(backend_name)
        lang = self.summary_language(language_setting, doc)
        cid = self.attach(user_id, doc, conversation_id, backend, lang)
        plan = plan or make_plan(doc, backend)
        self.repo.add_message(user_id, cid, "user", f"📄 {doc.filename} ({doc.page_count} pages): summarize")
        result = Summarizer(self.repo, backend).summarize(
            doc, lang, plan=plan, progress=progress, cancel=cancel
        )
        message_id = self.repo.add_message(
            user_id,
            cid,
            "assistant",
            result.summary,
            backend=backend.name,
            model=backend.model,
            prompt_tokens=result.tokens_processed,
            completion_tokens=result.output_tokens,
        )
        return SummaryOutcome(result, plan, cid, message_id, plan.document_tokens)

    def summarize_stream(
        self,
        user_id: int,
        doc: Document,
        *,
        language_setting: str = "auto",
        backend_name: str | None = None,
        conversation_id: str | None = None,
    ) -> Generator[SummaryEvent, None, None]:
        """``summarize`` in a worker thread, as events; closing the generator cancels the run."""
        plan = self.plan(doc, backend_name)
        yield SummaryEvent("plan", plan.describe(), 0, len(plan.chunks))
        events: queue.Queue[SummaryEvent] = queue.Queue()
        cancel = threading.Event()

        def work() -> None:
            try:
                outcome = self.summarize(
                    user_id,
                    doc,
                    language_setting=language_setting,
                    backend_name=backend_name,
                    conversation_id=conversation_id,
                    plan=plan,
                    cancel=cancel,
                    progress=lambda d, t, what: events.put(SummaryEvent("progress", what, d, t)),
                )
                events.put(SummaryEvent("done", outcome.result.summary, outcome=outcome))
            except SummaryCancelled:
                events.put(SummaryEvent("error", "cancelled", error_code="cancelled"))
            except BackendError as exc:
                events.put(SummaryEvent("error", str(exc), error_code=exc.code))
            except Exception as exc:  # NotFound, a database error: end the stream, or its reader hangs
                events.put(SummaryEvent("error", str(exc) or type(exc).__name__, error_code="failed"))

        worker = threading.Thread(target=work, name="summarize", daemon=True)
        worker.start()
        try:
            while True:
                event = events.get()
                yield event
                if event.kind in ("done", "error"):
                    return
        finally:
            cancel.set()  # a no-op when finished; on close it stops the run after the current step

    def attach(
        self, user_id: int, doc: Document, conversation_id: str | None, backend: ChatBackend, lang: str
    ) -> str:
        cid = conversation_id or self.repo.create_conversation(
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
            return f"{body}\n\n{_ANSWER_FROM_DOCUMENT}"
        return self._retrieved(hashes, question, backend, int(effective * RETRIEVAL_SHARE))

    def _whole(self, sha256: str, backend: ChatBackend) -> tuple[str, int]:
        pages = self.repo.document_pages(sha256)
        marked = "\n".join(f"[page {i}]\n{text}" for i, text in enumerate(pages, start=1) if text.strip())
        fenced = fence_document(marked, f"document {sha256[:12]}")
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
                passage = f"[page {page}]\n{text.strip()}"
                tokens = backend.count_tokens(passage)
                if used + tokens > budget:
                    passage = passage[: max(0, (budget - used) * 3)]
                    tokens = backend.count_tokens(passage)
                if not passage or used + tokens > budget:
                    break
                found.append(passage)
                used += tokens
        if not found:
            return _NOTHING_FOUND
        pages = fence_document("\n\n".join(found), "passages of the attached document")
        return f"{pages}\n\n{_ANSWER_FROM_PASSAGES}"


_ANSWER_FROM_DOCUMENT = (
    "The user attached the document above. Answer questions about it from its text, and cite the pages "
    "you used in the form (p. 12) or (pp. 12–15)."
)
_ANSWER_FROM_PASSAGES = (
    "These passages were retrieved from the user's attached document for the question; the document is "
    "longer than what fits here, and its summary is earlier in the conversation. Answer from the passages "
    "and the summary, cite pages in the form (p. 12), and say so when they do not contain the answer."
)
_NOTHING_FOUND = (
    "The user attached a long document; no passage matched the question. Answer from its summary earlier "
    "in the conversation, and say so when it does not contain the answer."
)
