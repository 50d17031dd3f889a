"""Thin Gradio handlers: read the widgets, call app/ services, shape the result for the widgets."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gradio as gr

from app import exporting
from app.chat import ChatSettings, ChatUpdate, Updates
from app.core import App
from app.doc_chat import SummaryJob
from app.documents import Document, PageProgress
from app.errors import USER_ERRORS, AppError
from app.language import LANGUAGE_NAMES
from app.model_files import ModelSourceError, download_gguf, register_local_model
from app.model_files import Progress as ModelProgress
from app.uploads import Upload
from storage.repo import HIGHLIGHT, MessageRow, NotFound
from ui.errors import user_error
from ui.files import remove_upload, user_download_dir, write_private
from ui.i18n import error_text, request_language, text
from ui.identity import user_id_for
from ui.markup import literal
from ui.summary_view import SummaryView, injection_warning, ocr_text, plan_text, urgent_event
from ui.throttle import throttled

Messages = list[dict[str, Any]]
UPLOAD_GONE = "This upload was already read and then removed from the server; upload the file again."
_PROGRESS = gr.Progress()
PREVIEW_TICK_S = 0.3
# Outputs of a chat event: textbox, chatbot, notice, conversation id, sidebar list, edit mode.
ChatOutputs = tuple[Any, Any, Any, Any, Any, Any]


# Export formats offered in the sidebar: (label, format for app.exporting.render).
EXPORT_FORMATS = [("Markdown", "md"), ("JSON", "json")]
SETTING_DEFAULTS: dict[str, Any] = {
    "system_prompt": "",
    "temperature": 0.7,
    "max_tokens": 1024,
    "reply_language": "auto",
}


def to_chatbot(rows: Sequence[MessageRow], lang: str = "en") -> Messages:
    return [
        {"role": r.role, "content": stored_view(r, lang)}
        for r in rows
        if r.role in ("user", "assistant") and r.content
    ]


def stored_view(row: MessageRow, lang: str) -> str:
    """A stored message as shown: a reply carries its stats, and its time on hover."""
    if row.role != "assistant":
        return row.content
    seconds = (row.updated_at - row.created_at).total_seconds()
    tokens = row.completion_tokens or 0
    stats = reply_stats(tokens, tokens / seconds if tokens and seconds > 0 else None, None, row.model or "")
    marker = text("chat.stopped", lang) if row.status == "interrupted" else ""
    return with_meta(row.content, stats, f"{row.updated_at:%Y-%m-%d %H:%M} UTC", marker)


def live_view(update: ChatUpdate, lang: str) -> str:
    """The reply being written: a thinking sign before its first token, its stats once it ends."""
    if not update.reply and not update.done:
        return f"*{literal(text('chat.thinking', lang))}*"
    if not update.done:
        return update.reply
    tokens, seconds = update.completion_tokens, update.elapsed_s
    rate = tokens / seconds if tokens and seconds else None
    stats = reply_stats(update.completion_tokens, rate, update.ttft_s, update.model)
    marker = text("chat.max_tokens_hit", lang) if update.truncated else ""
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    return with_meta(update.reply, stats, when, marker)


def reply_stats(tokens: int, rate: float | None, ttft_s: float | None, model: str) -> str:
    parts = [f"{tokens} tokens"] if tokens else []
    if rate:
        parts.append(f"{rate:.1f} tok/s")
    if ttft_s is not None:
        parts.append(f"TTFT {ttft_s:.2f} s")
    if model:
        parts.append(model)
    return " · ".join(parts)


def with_meta(reply: str, stats: str, when: str, marker: str = "") -> str:
    """The reply, then a rule, a marker line (stopped, cut at max tokens) and its stats and time.

    Markdown, since the chat renders Markdown through the sanitizer and nothing else.
    """
    lines = [reply, "---"]
    if marker:
        lines.append(f"*{literal(marker)}*")
    lines.append(f"*{literal(' · '.join(filter(None, [stats, when])))}*")
    return "\n\n".join(lines)


def plain_snippet(snippet: str) -> str:
    """A search snippet as plain text: no highlight markers, no line breaks."""
    for marker in set(HIGHLIGHT):
        snippet = snippet.replace(marker, "")
    return " ".join(snippet.split())


def message_text(message: Any) -> str:
    """The text of a MultimodalTextbox value (or of a plain string)."""
    if isinstance(message, dict):
        return str(message.get("text") or "")
    return str(message or "")


@dataclass
class Handlers:
    app: App
    auth: bool = False

    def user(self, request: gr.Request | None) -> int:
        return user_id_for(self.app, request, self.auth)

    # -- backends -----------------------------------------------------------

    def backend_choices(self) -> list[tuple[str, str]]:
        return [(backend_label(self.app.backends.describe(n)), n) for n in self.app.backends.names]

    def refresh_backends(self, current: str | None) -> Any:
        """Health dots are checked when the page loads, not only when the server started."""
        return gr.update(choices=self.backend_choices(), value=current or self.app.backends.default_name)

    def banner(self, name: str | None) -> str:
        row = self.app.backends.describe(name or self.app.backends.default_name)
        line = backend_label(row)
        if not row["healthy"]:
            line += f"\n\n> {row['detail']}"
        if row.get("warning"):  # e.g. a GGUF without a chat template
            line += f"\n\n> ⚠️ {literal(str(row['warning']))}"
        return line

    # -- first run: moving from the demo model to a real one ---------------------

    def use_model_file(self, path: str, progress: gr.Progress = _PROGRESS) -> tuple[Any, Any, Any]:
        """Status, backend dropdown, banner after loading a GGUF from disk."""
        return self._switch_model(
            lambda report: register_local_model(self.app.backends, Path(path), report), progress
        )

    def download_model(self, repo_id: str, progress: gr.Progress = _PROGRESS) -> tuple[Any, Any, Any]:
        """Status, backend dropdown, banner after fetching a GGUF from Hugging Face and loading it."""

        def fetch_and_load(report: ModelProgress) -> str:
            return register_local_model(self.app.backends, download_gguf(repo_id, progress=report), report)

        return self._switch_model(fetch_and_load, progress)

    def _switch_model(
        self, work: Callable[[ModelProgress], str], progress: gr.Progress
    ) -> tuple[Any, Any, Any]:
        def report(done: int, total: int, what: str) -> None:
            progress((done, total) if total else None, desc=what, unit="bytes")

        if self.auth:  # on a shared server, accounts must not swap the model under everyone
            raise user_error("Models are set by the operator (--model or the config file).")
        try:
            name = work(report)
        except ModelSourceError as exc:
            return f"⚠️ {exc}", gr.skip(), gr.skip()
        return f"✅ {name}", gr.update(choices=self.backend_choices(), value=name), self.banner(name)

    # -- sidebar ------------------------------------------------------------

    def conversation_choices(self, user_id: int) -> list[tuple[str, str]]:
        rows = self.app.repo.list_conversations(user_id, limit=200)
        return [(r.title or "New chat", r.id) for r in rows]

    def sidebar(self, current: str, request: gr.Request) -> Any:
        user_id = self.user(request)
        return gr.update(choices=self.conversation_choices(user_id), value=current or None)

    def search(self, query: str, request: gr.Request) -> tuple[Any, str]:
        """Sidebar list and status line: matching conversations with a plain-text snippet each."""
        user_id = self.user(request)
        if not query.strip():
            return gr.update(choices=self.conversation_choices(user_id), value=None), ""
        seen: dict[str, str] = {}
        for hit in self.app.repo.search(user_id, query, limit=50):
            seen.setdefault(hit.conversation_id, f"{hit.title} — {plain_snippet(hit.snippet)}"[:120])
        status = "" if seen else text("sidebar.no_results", request_language(request))
        return gr.update(choices=[(label, cid) for cid, label in seen.items()], value=None), status

    def open_conversation(self, conversation_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Chatbot, notice, id, rename box, reply-language pin, backend; closes a delete confirmation."""
        closed = (gr.update(visible=False), "")
        if not conversation_id:
            return (*(gr.skip(),) * 6, *closed)
        user_id = self.user(request)
        lang = request_language(request)
        try:
            conversation = self.app.repo.get_conversation(user_id, conversation_id)
        except NotFound:
            return [], text("errors.not_found", lang), "", "", gr.skip(), gr.skip(), *closed
        rows = self.app.repo.messages(user_id, conversation_id)
        notice = ""
        if rows and rows[-1].role == "assistant" and rows[-1].status == "interrupted":
            notice = text("chat.interrupted_offer", lang)
        backend = conversation.backend if conversation.backend in self.app.backends.names else gr.skip()
        return (
            to_chatbot(rows, lang),
            notice,
            conversation_id,
            conversation.title,
            conversation.reply_language,
            backend,
            *closed,
        )

    def new_chat(self) -> tuple[Any, ...]:
        """Chatbot, notice, current id, sidebar selection, edit mode, an empty rename box (the last
        conversation's title must not be given to the next one); closes a delete confirmation."""
        return [], "", "", gr.update(value=None), False, "", gr.update(visible=False), ""

    def rename(self, conversation_id: str, title: str, request: gr.Request) -> Any:
        user_id = self.user(request)
        if conversation_id and title.strip():
            self.app.repo.rename_conversation(user_id, conversation_id, title.strip()[:120])
        return gr.update(choices=self.conversation_choices(user_id), value=conversation_id or None)

    def marked(self, conversation_id: str, request: gr.Request) -> bool:
        """Whether the open conversation is marked for the training-data export."""
        if not conversation_id:
            return False
        try:
            return self.app.repo.get_conversation(self.user(request), conversation_id).marked
        except NotFound:
            return False

    def set_marked(self, conversation_id: str, marked: bool, request: gr.Request) -> None:
        if conversation_id:
            self.app.repo.set_marked(self.user(request), conversation_id, bool(marked))

    def ask_delete(self, conversation_id: str, request: gr.Request) -> tuple[Any, Any, str]:
        """Confirmation panel, the title it names, and the id it is bound to."""
        if not conversation_id:
            return gr.update(visible=False), "", ""
        try:
            title = self.app.repo.get_conversation(self.user(request), conversation_id).title
        except NotFound:
            return gr.update(visible=False), "", ""
        return gr.update(visible=True), f"**{literal(title or 'New chat')}**", conversation_id

    def delete(self, pending: str, current: str, request: gr.Request) -> tuple[Any, ...]:
        """Delete the conversation the confirmation named, whatever is selected now.

        Chatbot, notice, current id, sidebar list, confirmation panel, pending id.
        """
        user_id = self.user(request)
        closed = (gr.update(visible=False), "")
        if not pending:
            return (*(gr.skip(),) * 4, *closed)
        with suppress(NotFound):  # already gone: the list below shows that
            self.app.repo.delete_conversation(user_id, pending)
        choices = self.conversation_choices(user_id)
        if pending != current:  # another conversation is open: it stays open
            return gr.skip(), gr.skip(), current, gr.update(choices=choices, value=current or None), *closed
        return [], "", "", gr.update(choices=choices, value=None), *closed

    # -- export and import ------------------------------------------------------

    def export(self, conversation_id: str, fmt: str, request: gr.Request) -> str | None:
        """A file to download: the open conversation as Markdown or JSON."""
        if not conversation_id:
            raise user_error(text("sidebar.export_nothing", request_language(request)))
        user_id = self.user(request)
        row = self.app.repo.get_conversation(user_id, conversation_id)
        body = exporting.render(row, self.app.repo.messages(user_id, conversation_id), fmt)
        name = f"{_file_stem(row.title)}.{'json' if fmt == 'json' else 'md'}"
        return str(write_private(user_download_dir(user_id), name, body))

    def import_conversation(self, file: Any, request: gr.Request) -> tuple[Any, ...]:
        """Chatbot, notice, id, sidebar, rename box: the imported conversation, opened."""
        user_id = self.user(request)
        lang = request_language(request)
        path = uploaded_path(file)
        try:
            raw = Path(path or "").read_text(encoding="utf-8")
            cid = exporting.import_conversation(self.app.repo, user_id, raw)
        except (OSError, UnicodeDecodeError, exporting.ImportRejected) as exc:
            return gr.skip(), f"⚠️ {text('sidebar.import_failed', lang)}: {exc}", *(gr.skip(),) * 3
        row = self.app.repo.get_conversation(user_id, cid)
        sidebar = gr.update(choices=self.conversation_choices(user_id), value=cid)
        return to_chatbot(self.app.repo.messages(user_id, cid), lang), "", cid, sidebar, row.title

    # -- preferences --------------------------------------------------------------

    def save_preferences(
        self,
        prefs: dict[str, Any] | None,
        system_prompt: str,
        temperature: float,
        max_tokens: float,
        reply_language: str,
        request: gr.Request,
    ) -> tuple[dict[str, Any], str]:
        """The browser's stored preferences, and a line saying which settings now shape replies."""
        saved = {
            **(prefs or {}),
            "system_prompt": system_prompt or "",
            "temperature": float(temperature),
            "max_tokens": int(max_tokens),
            "reply_language": reply_language or "auto",
        }
        return saved, settings_effect(saved, request_language(request))

    def keep_demo(self, prefs: dict[str, Any] | None) -> tuple[dict[str, Any], Any, Any]:
        return {**(prefs or {}), "keep_demo": True}, gr.update(visible=False), gr.update(visible=False)

    # -- documents ------------------------------------------------------------

    def open_upload(
        self,
        user_id: int,
        path: str | None,
        lang: str,
        password: str | None,
        backend: str | None,
        conversation_id: str,
        reading: PageProgress | None = None,
        ocr_reading: PageProgress | None = None,
    ) -> SummaryJob:
        if not path:
            raise AppError("no_file")
        if not Path(path).exists():
            raise user_error(UPLOAD_GONE)
        upload = Upload(
            Path(path),
            user_id,
            password=password or None,
            language=lang or "auto",
            backend=backend or None,
            conversation_id=conversation_id or None,
        )
        return self.app.documents.open_upload(upload, reading, ocr_reading)

    def preview(
        self, file: Any, lang: str, password: str, backend: str | None, request: gr.Request
    ) -> Iterator[str]:
        """Pages read so far, then the plan and any injection warning, as soon as a file is uploaded;
        nothing runs. Reading happens in a worker so that the page count can be shown meanwhile."""
        ui_lang = request_language(request)
        path = uploaded_path(file)
        if not path:
            yield ""
            return
        read = [0, 0]
        stage = ["summarize.reading"]
        found: list[SummaryJob | BaseException] = []

        def report(done: int, total: int) -> None:
            read[:] = [done, total]

        def report_ocr(done: int, total: int) -> None:
            stage[0] = "summarize.ocr"
            report(done, total)

        def work() -> None:
            try:
                job = self.open_upload(
                    self.user(request),
                    path,
                    lang,
                    password,
                    backend,
                    "",
                    report,
                    report_ocr,
                )
                job.events.close()
                found.append(job)
            except BaseException as exc:  # handed to the generator, which renders it
                found.append(exc)

        worker = threading.Thread(target=work, name="plan", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(PREVIEW_TICK_S)
            if worker.is_alive() and read[1]:
                yield text(stage[0], ui_lang, done=read[0], total=read[1])
        result = found[0]
        if isinstance(result, USER_ERRORS):
            yield f"⚠️ {error_text(result, request)}"
            return
        if isinstance(result, BaseException):
            raise result
        job = result
        lines = [injection_warning(job.findings, ui_lang, literal)]
        lines.append(f"**{text('summarize.plan', ui_lang)}:** {plan_text(job.plan, ui_lang)}")
        lines.append(ocr_text(job.document.ocr_confidence, ui_lang))
        yield "\n\n".join(filter(None, lines))

    def summarize(
        self,
        file: Any,
        lang: str,
        password: str,
        backend: str | None,
        conversation_id: str,
        request: gr.Request,
    ) -> Iterator[tuple[Any, Any, Any, Any, Any]]:
        """Status (plan, step, tokens, ETA), the text being written, download, conversation id, sidebar.

        Cancel, or a closed tab, closes this generator and so the job's events: the run stops.
        """
        user_id = self.user(request)
        ui_lang = request_language(request)
        try:
            job = self.open_upload(user_id, uploaded_path(file), lang, password, backend, conversation_id)
        except USER_ERRORS as exc:
            yield f"⚠️ {error_text(exc, request)}", gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        remove_upload(str(uploaded_path(file)))  # its text is in hand; a wrong password keeps the file
        view = SummaryView(ui_lang, warning=injection_warning(job.findings, ui_lang, literal))
        try:
            with closing(job.events):
                for _ in throttled(view.fed(job.events), urgent=urgent_event):
                    if view.finished is None:
                        yield view.status(), view.pass_text, gr.skip(), gr.skip(), gr.skip()
        except USER_ERRORS as exc:
            failed = "\n\n".join(filter(None, [view.warning, f"⚠️ {error_text(exc, request)}"]))
            yield failed, gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        if view.finished is None:
            return
        outcome = view.finished.outcome
        yield (
            view.status(),
            outcome.result.summary,
            write_markdown(user_id, job.document, outcome.result.summary),
            outcome.conversation_id,
            gr.update(choices=self.conversation_choices(user_id), value=outcome.conversation_id),
        )

    def summary_cancelled(self, request: gr.Request) -> str:
        return text("summarize.cancelled", request_language(request))

    def _summarize_to_chat(
        self,
        user_id: int,
        path: str,
        conversation_id: str,
        history: Messages,
        lang: str,
        backend: str | None,
        request: gr.Request,
    ) -> Iterator[ChatOutputs]:
        """A PDF dropped in the chat box: the plan, progress and the text being written stream into the
        chat, then the summary replaces them."""
        ui_lang = request_language(request)
        try:
            job = self.open_upload(user_id, path, lang, None, backend, conversation_id)
        except USER_ERRORS as exc:
            yield gr.skip(), gr.skip(), f"⚠️ {error_text(exc, request)}", conversation_id, gr.skip(), False
            return
        remove_upload(path)
        doc = job.document
        shown = [*history, {"role": "user", "content": f"📄 {literal(doc.filename)} ({doc.page_count})"}]
        view = SummaryView(ui_lang, warning=injection_warning(job.findings, ui_lang, literal))
        before = {cid for _, cid in self.conversation_choices(user_id)}
        try:
            with closing(job.events):
                for _ in throttled(view.fed(job.events), urgent=urgent_event):
                    if view.finished is not None:
                        break
                    body = "\n\n".join(filter(None, [view.status(), view.pass_text]))
                    reply = {"role": "assistant", "content": body}
                    sidebar: Any = gr.skip()
                    if not conversation_id:  # the run's new conversation is listed as soon as it exists
                        choices = self.conversation_choices(user_id)
                        created = [cid for _, cid in choices if cid not in before]
                        if created:
                            conversation_id = created[0]
                            sidebar = gr.update(choices=choices, value=conversation_id)
                    yield (
                        {"text": "", "files": []},
                        [*shown, reply],
                        view.warning,
                        conversation_id,
                        sidebar,
                        False,
                    )
        except USER_ERRORS as exc:
            notice = "\n\n".join(filter(None, [view.warning, f"⚠️ {error_text(exc, request)}"]))
            yield gr.skip(), shown, notice, conversation_id, gr.skip(), False
            return
        if view.finished is None:
            return
        cid = view.finished.outcome.conversation_id
        final = [*shown, {"role": "assistant", "content": view.summary}]
        sidebar = gr.update(choices=self.conversation_choices(user_id), value=cid)
        yield gr.skip(), final, view.warning, cid, sidebar, False

    # -- chat ---------------------------------------------------------------

    def send(
        self,
        message: Any,
        conversation_id: str,
        history: Messages,
        editing: bool,
        system_prompt: str,
        temperature: float,
        max_tokens: float,
        reply_language: str,
        backend: str | None,
        request: gr.Request,
    ) -> Iterator[ChatOutputs]:
        user_id = self.user(request)
        content = message_text(message)
        files = [
            p
            for p in map(uploaded_path, (message or {}).get("files", []) if isinstance(message, dict) else [])
            if p
        ]
        if files:
            for path in files:
                yield from self._summarize_to_chat(
                    user_id, path, conversation_id, history, reply_language, backend, request
                )
            return
        settings = _settings(system_prompt, temperature, max_tokens, reply_language, backend)
        history = list(history or [])
        if editing and conversation_id:
            while history and history[-1].get("role") == "assistant":
                history.pop()
            if history:
                history.pop()
            stream = self.app.chat.edit_last(user_id, conversation_id, content, settings)
        else:
            stream = self.app.chat.send(user_id, conversation_id or None, content, settings)
        history.append({"role": "user", "content": content})
        yield from self._run(user_id, stream, history, conversation_id, message, request)

    def regenerate(
        self,
        conversation_id: str,
        system_prompt: str,
        temperature: float,
        max_tokens: float,
        reply_language: str,
        backend: str | None,
        request: gr.Request,
    ) -> Iterator[ChatOutputs]:
        settings = _settings(system_prompt, temperature, max_tokens, reply_language, backend)
        yield from self._redo(conversation_id, settings, request, continue_it=False)

    def continue_reply(
        self,
        conversation_id: str,
        system_prompt: str,
        temperature: float,
        max_tokens: float,
        reply_language: str,
        backend: str | None,
        request: gr.Request,
    ) -> Iterator[ChatOutputs]:
        """Pick an interrupted reply up where it stopped (after a Stop or a crash)."""
        settings = _settings(system_prompt, temperature, max_tokens, reply_language, backend)
        yield from self._redo(conversation_id, settings, request, continue_it=True)

    def _redo(
        self, conversation_id: str, settings: ChatSettings, request: gr.Request, continue_it: bool
    ) -> Iterator[ChatOutputs]:
        """Answer the last user message again, or extend the interrupted last reply."""
        user_id = self.user(request)
        if not conversation_id:
            yield (gr.skip(),) * 6
            return
        rows = self.app.repo.messages(user_id, conversation_id)
        if continue_it:
            stream = self.app.chat.continue_last(user_id, conversation_id, settings)
        else:
            stream = self.app.chat.regenerate(user_id, conversation_id, settings)
        # The pane shows everything before the reply being (re)written.
        while rows and rows[-1].role == "assistant":
            rows.pop()
        shown = to_chatbot(rows, request_language(request))
        yield from self._run(user_id, stream, shown, conversation_id, None, request)

    def edit_last(self, conversation_id: str, request: gr.Request) -> tuple[Any, Any]:
        """Put the last user message back in the box; the next send replaces it."""
        user_id = self.user(request)
        if not conversation_id:
            return gr.skip(), False
        rows = self.app.repo.messages(user_id, conversation_id)
        last = next((r for r in reversed(rows) if r.role == "user"), None)
        if last is None:
            return gr.skip(), False
        return {"text": last.content, "files": []}, True

    def _run(
        self,
        user_id: int,
        stream: Updates,
        history: Messages,
        conversation_id: str,
        message: Any,
        request: gr.Request,
    ) -> Iterator[ChatOutputs]:
        """Drive one exchange. Stop closes this generator, and so the service's, which saves the partial.

        A failure is rendered once, in the notice, in the browser's language.
        """
        lang = request_language(request)
        shown = [*history, {"role": "assistant", "content": ""}]
        keep_box = gr.skip()
        update: ChatUpdate | None = None
        try:
            with closing(stream):
                first = True
                for update in throttled(stream, urgent=lambda u: u.urgent):
                    shown[-1] = {"role": "assistant", "content": live_view(update, lang)}
                    sidebar = gr.skip()
                    if first or update.done:
                        sidebar = gr.update(
                            choices=self.conversation_choices(user_id), value=update.conversation_id
                        )
                    notice = _notice(update, lang)
                    visible = shown if update.reply or not update.done else shown[:-1]
                    yield (
                        {"text": "", "files": []} if first else gr.skip(),
                        visible,
                        notice,
                        update.conversation_id,
                        sidebar,
                        False,
                    )
                    first = False
        except NotFound as exc:
            yield keep_box, [], error_text(exc, request), "", gr.skip(), False
        except USER_ERRORS as exc:
            if update is None:  # raised before the first update: the chat pane is unchanged
                yield (
                    keep_box,
                    gr.skip(),
                    f"⚠️ {error_text(exc, request)}",
                    conversation_id,
                    gr.skip(),
                    gr.skip(),
                )
                return
            visible = shown if update.reply else shown[:-1]  # the partial reply stays, as it is stored
            sidebar = gr.update(choices=self.conversation_choices(user_id), value=update.conversation_id)
            yield gr.skip(), visible, f"⚠️ {error_text(exc, request)}", update.conversation_id, sidebar, False

    def title(
        self,
        conversation_id: str,
        system_prompt: str,
        temperature: float,
        max_tokens: float,
        reply_language: str,
        backend: str | None,
        request: gr.Request,
    ) -> Any:
        """Sidebar list once a new conversation has its title (run after the reply's event ended).

        The selection is left as it is: by the time the model has made the title, the user may
        have opened another conversation, and moving the selection back would hide that."""
        if not conversation_id:
            return gr.skip()
        user_id = self.user(request)
        settings = _settings(system_prompt, temperature, max_tokens, reply_language, backend)
        try:
            if self.app.chat.title_conversation(user_id, conversation_id, settings) is None:
                return gr.skip()
        except NotFound:
            return gr.skip()
        return gr.update(choices=self.conversation_choices(user_id))

    def stopped(self, conversation_id: str, request: gr.Request) -> str:
        """The notice after Stop: the reply is kept as it is, and Continue can finish it."""
        return text("chat.stopped_offer", request_language(request))


def backend_label(row: dict[str, object]) -> str:
    """ "● local · SmolLM2… · 8K context": health, model and context window at a glance."""
    dot = "🟢" if row["healthy"] else "🔴"
    window = int(str(row.get("context_window") or 0))
    # Numbers only, so that the label reads the same in every interface language.
    context = f"{window // 1024}K" if window >= 1024 else "?"
    return f"{dot} {row['name']} · {row['model'] or row['kind']} · {context}"


def uploaded_path(file: Any) -> str | None:
    """A path from a gr.File value, a FileData dict, or a MultimodalTextbox file entry."""
    if file is None:
        return None
    if isinstance(file, str):
        return file
    if isinstance(file, dict):
        return str(file.get("path") or "") or None
    return str(getattr(file, "path", "") or getattr(file, "name", "")) or None


def write_markdown(user_id: int, doc: Document, summary: str) -> str:
    """The summary as a Markdown file in the user's private download folder."""
    name = f"{Path(doc.filename).stem}-{doc.sha256[:8]}-summary.md"
    return str(write_private(user_download_dir(user_id), name, f"# {doc.filename}\n\n{summary}\n"))


def settings_effect(prefs: dict[str, Any], lang: str) -> str:
    """What the user changed from the defaults that the next reply follows, in one line."""
    parts = []
    pinned = prefs.get("reply_language") or "auto"
    if pinned in LANGUAGE_NAMES:
        parts.append(text("settings.effect_language", lang, language=LANGUAGE_NAMES[pinned][1]))
    if str(prefs.get("system_prompt") or "").strip():
        parts.append(text("settings.effect_system_prompt", lang))
    if int(prefs.get("max_tokens") or 0) != SETTING_DEFAULTS["max_tokens"]:
        parts.append(text("settings.effect_max_tokens", lang, n=int(prefs["max_tokens"])))
    return " · ".join(parts)


def _file_stem(title: str) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in title.strip())[:60].strip("-")
    return stem or "conversation"


def _notice(update: ChatUpdate, lang: str) -> str:
    lines = []
    if update.dropped_turns:
        key = "chat.dropped_turns_one" if update.dropped_turns == 1 else "chat.dropped_turns"
        lines.append(text(key, lang, n=update.dropped_turns))
    if update.nothing_added:  # Continue would otherwise seem to have done nothing
        lines.append(text("chat.nothing_added", lang))
    return "\n\n".join(lines)


def _settings(
    system_prompt: str, temperature: float, max_tokens: float, reply_language: str, backend: str | None
) -> ChatSettings:
    return ChatSettings(
        system_prompt=system_prompt or "",
        temperature=float(temperature),
        max_tokens=int(max_tokens),
        reply_language=reply_language or None,
        backend=backend or None,
        auto_title=False,  # the page titles a new conversation in an event of its own
    )
