"""Thin Gradio handlers: read the widgets, call app/ services, shape the result for the widgets."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from app.chat import ChatSettings, ChatUpdate, InputRejected, Updates
from app.config import UnknownBackend
from app.core import App
from app.documents import Document, DocumentError
from app.formats import read_document
from app.injection import detect_injection
from app.language import ERROR_CODES, error_text
from app.models import ModelSourceError, download_gguf, register_local_model
from app.models import Progress as ModelProgress
from app.throttle import throttled
from backends.base import BackendError
from storage.repo import MessageRow, NotFound
from ui.errors import user_error
from ui.files import remove_upload, user_download_dir, write_private
from ui.i18n import text
from ui.identity import user_id_for
from ui.markup import literal

Messages = list[dict[str, Any]]
UPLOAD_GONE = "This upload was already read and then removed from the server; upload the file again."
_PROGRESS = gr.Progress()
# Outputs of a chat event: textbox, chatbot, notice, conversation id, sidebar list, edit mode.
ChatOutputs = tuple[Any, Any, Any, Any, Any, Any]


def to_chatbot(rows: Sequence[MessageRow]) -> Messages:
    return [
        {"role": r.role, "content": r.content}
        for r in rows
        if r.role in ("user", "assistant") and r.content
    ]


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

    def search(self, query: str, request: gr.Request) -> Any:
        user_id = self.user(request)
        if not query.strip():
            return gr.update(choices=self.conversation_choices(user_id), value=None)
        seen: dict[str, str] = {}
        for hit in self.app.repo.search(user_id, query, limit=50):
            seen.setdefault(hit.conversation_id, f"{hit.title} — {hit.snippet}"[:120])
        return gr.update(choices=[(label, cid) for cid, label in seen.items()], value=None)

    def open_conversation(self, conversation_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Chatbot, notice, id, rename box, reply-language pin and backend of the picked conversation."""
        if not conversation_id:
            return (gr.skip(),) * 6
        user_id = self.user(request)
        try:
            conversation = self.app.repo.get_conversation(user_id, conversation_id)
        except NotFound:
            return [], text("errors.not_found"), "", "", gr.skip(), gr.skip()
        rows = self.app.repo.messages(user_id, conversation_id)
        notice = ""
        if rows and rows[-1].role == "assistant" and rows[-1].status == "interrupted":
            notice = text("chat.interrupted_offer", _ui_lang(conversation.language))
        backend = conversation.backend if conversation.backend in self.app.backends.names else gr.skip()
        return (
            to_chatbot(rows),
            notice,
            conversation_id,
            conversation.title,
            conversation.reply_language,
            backend,
        )

    def new_chat(self) -> tuple[Any, Any, Any, Any, Any]:
        """Chatbot, notice, current id, sidebar selection, edit mode."""
        return [], "", "", gr.update(value=None), False

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

    def delete(self, conversation_id: str, request: gr.Request) -> tuple[Any, Any, Any, Any]:
        """Chatbot, notice, current id, sidebar list."""
        user_id = self.user(request)
        if conversation_id:
            self.app.repo.delete_conversation(user_id, conversation_id)
        return [], "", "", gr.update(choices=self.conversation_choices(user_id), value=None)

    # -- documents ------------------------------------------------------------

    def summarize(
        self,
        file: Any,
        lang: str,
        password: str,
        backend: str | None,
        conversation_id: str,
        request: gr.Request,
        progress: gr.Progress = _PROGRESS,
    ) -> Iterator[tuple[Any, Any, Any, Any, Any]]:
        """Plan + progress text, summary, download, conversation id, sidebar."""
        user_id = self.user(request)
        doc = load_document(uploaded_path(file), password)
        warning = injection_warning(doc)
        stream = self.app.documents.summarize_stream(
            user_id,
            doc,
            language_setting=lang or "auto",
            backend_name=backend or None,
            conversation_id=conversation_id or None,
        )
        plan = ""
        with closing(stream):
            for event in stream:
                if event.kind == "plan":
                    plan = event.text
                if event.kind in ("plan", "progress"):
                    progress((event.done, max(1, event.total)), desc=event.text)
                    status = progress_markdown(plan, event.done, event.total, event.text)
                    yield (
                        "\n\n".join(filter(None, [warning, status])),
                        gr.skip(),
                        gr.skip(),
                        gr.skip(),
                        gr.skip(),
                    )
                elif event.kind == "error":
                    raise user_error(event.text)
                elif event.outcome is not None:
                    outcome = event.outcome
                    done = f"**{text('summarize.plan')}:** {plan} · {outcome.result.elapsed_s:.1f} s"
                    yield (
                        "\n\n".join(filter(None, [warning, done])),
                        outcome.result.summary,
                        write_markdown(user_id, doc, outcome.result.summary),
                        outcome.conversation_id,
                        gr.update(choices=self.conversation_choices(user_id), value=outcome.conversation_id),
                    )

    def _summarize_to_chat(
        self, user_id: int, path: str, conversation_id: str, history: Messages, lang: str, backend: str | None
    ) -> Iterator[ChatOutputs]:
        """A PDF dropped in the chat box: the plan and progress stream into the chat, then the summary."""
        doc = load_document(path, None)
        shown = [
            *history,
            {"role": "user", "content": f"📄 {literal(doc.filename)} ({doc.page_count} pages)"},
        ]
        warning = injection_warning(doc)
        stream = self.app.documents.summarize_stream(
            user_id,
            doc,
            language_setting=lang or "auto",
            backend_name=backend,
            conversation_id=conversation_id or None,
        )
        plan = ""
        with closing(stream):
            for event in stream:
                plan = event.text if event.kind == "plan" else plan
                if event.kind == "error":
                    yield gr.skip(), shown, f"⚠️ {event.text}", conversation_id, gr.skip(), False
                    return
                if event.outcome is None:
                    status = progress_markdown(plan, event.done, event.total, event.text)
                    reply = {"role": "assistant", "content": status}
                    yield (
                        {"text": "", "files": []},
                        [*shown, reply],
                        warning,
                        conversation_id,
                        gr.skip(),
                        False,
                    )
                    continue
                cid = event.outcome.conversation_id
                final = [*shown, {"role": "assistant", "content": event.outcome.result.summary}]
                sidebar = gr.update(choices=self.conversation_choices(user_id), value=cid)
                yield gr.skip(), final, warning, cid, sidebar, False

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
                    user_id, path, conversation_id, history, reply_language, backend
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
        yield from self._run(user_id, stream, history, conversation_id, message)

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
        yield from self._run(user_id, stream, to_chatbot(rows), conversation_id, None)

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
    ) -> Iterator[ChatOutputs]:
        """Drive one exchange. Stop closes this generator, and so the service's, which saves the partial."""
        shown = [*history, {"role": "assistant", "content": ""}]
        keep_box = gr.skip()
        try:
            with closing(stream):
                first = True
                for update in throttled(stream, urgent=lambda u: u.urgent):
                    shown[-1] = {"role": "assistant", "content": update.reply}
                    sidebar = gr.skip()
                    if first or update.done:
                        sidebar = gr.update(
                            choices=self.conversation_choices(user_id), value=update.conversation_id
                        )
                    notice = _notice(update)
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
        except InputRejected as exc:  # raised before the first update, so the chat pane is unchanged
            notice = error_text("en", exc.code) if exc.code in ERROR_CODES else str(exc)
            yield keep_box, gr.skip(), f"⚠️ {notice}", conversation_id, gr.skip(), gr.skip()
        except (BackendError, UnknownBackend) as exc:  # before anything was stored: the text stays in the box
            notice = error_text("en", exc.code, detail=str(exc)) if exc.code in ERROR_CODES else str(exc)
            yield keep_box, gr.skip(), f"⚠️ {notice}", conversation_id, gr.skip(), gr.skip()
        except NotFound:
            yield keep_box, [], text("errors.not_found"), "", gr.skip(), False


def backend_label(row: dict[str, object]) -> str:
    """ "● local · SmolLM2… · 8K context": health, model and context window at a glance."""
    dot = "🟢" if row["healthy"] else "🔴"
    window = int(str(row.get("context_window") or 0))
    # Numbers only, so that the label reads the same in every interface language.
    context = f"{window // 1024}K" if window >= 1024 else "?"
    return f"{dot} {row['name']} · {row['model'] or row['kind']} · {context}"


def load_document(path: str | None, password: str | None) -> Document:
    """Read a PDF or another supported document for the UI; failures become a gr.Error in the user's words."""
    if not path:
        raise user_error(text("summarize.upload"))
    if not Path(path).exists():
        raise user_error(UPLOAD_GONE)
    try:
        doc = read_document(Path(path), Path(path).name, password or None)
    except DocumentError as exc:
        raise user_error(f"{text('documents.' + exc.code)} ({exc})") from exc
    except OSError as exc:
        raise user_error(text("documents.not_pdf")) from exc
    remove_upload(path)  # its text is in hand and stored by the summary; a wrong password keeps it
    return doc


def uploaded_path(file: Any) -> str | None:
    """A path from a gr.File value, a FileData dict, or a MultimodalTextbox file entry."""
    if file is None:
        return None
    if isinstance(file, str):
        return file
    if isinstance(file, dict):
        return str(file.get("path") or "") or None
    return str(getattr(file, "path", "") or getattr(file, "name", "")) or None


def injection_warning(doc: Document) -> str:
    findings = detect_injection(doc.text)
    if not findings:
        return ""
    # The document's own words are quoted as text: they are what the warning is about.
    return f"⚠️ {text('summarize.injection_warning')} (“{literal(findings[0].snippet[:80])}”)"


def progress_markdown(plan: str, done: int, total: int, what: str) -> str:
    bar = "▰" * done + "▱" * max(0, total - done)
    return f"**{text('summarize.plan')}:** {plan}\n\n{bar} {done}/{total} · {what}"


def write_markdown(user_id: int, doc: Document, summary: str) -> str:
    """The summary as a Markdown file in the user's private download folder."""
    name = f"{Path(doc.filename).stem}-{doc.sha256[:8]}-summary.md"
    return str(write_private(user_download_dir(user_id), name, f"# {doc.filename}\n\n{summary}\n"))


def _notice(update: ChatUpdate) -> str:
    parts = []
    if update.error:
        parts.append(f"⚠️ {update.error}")
    if update.dropped_turns:
        parts.append(error_text(update.language, "dropped_turns", n=update.dropped_turns))
    return "\n\n".join(parts)


def _settings(
    system_prompt: str, temperature: float, max_tokens: float, reply_language: str, backend: str | None
) -> ChatSettings:
    return ChatSettings(
        system_prompt=system_prompt or "",
        temperature=float(temperature),
        max_tokens=int(max_tokens),
        reply_language=reply_language or None,
        backend=backend or None,
    )


def _ui_lang(lang: str) -> str:
    return lang if lang and lang != "auto" else "en"
