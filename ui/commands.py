"""The subcommands of ``llamadesk`` (see the CLI contract in the design); ui/cli.py parses and dispatches."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from app import exporting
from app.chat import ChatSettings, ChatUpdate
from app.config import (
    VLLM_API_KEY_ENV,
    Settings,
    load_settings,
    with_local_model,
    with_remote,
    with_timeout,
)
from app.core import App
from app.documents import Document
from app.errors import USER_ERRORS, Cancelled, render
from app.language import language_setting
from app.uploads import Upload, read_upload
from backends.base import BackendError, ModelFileError
from storage.repo import storable_text
from ui import interrupts
from ui.exit_codes import CliError, ExitCode
from ui.summary_view import SummaryView, injection_warning, progress_text

# --debug shows what the app and its engines log, llama.cpp's own log included (backends/llamacpp.py).
APP_LOGGER = "llamadesk"


def run(args: argparse.Namespace) -> int:
    """Run one parsed command; every failure the user can act on becomes a CliError."""
    if args.debug:
        _log_engine_to_stderr()
    _clean_text_args(args)
    try:
        return COMMANDS[args.command](args)
    except Cancelled:
        print("cancelled; finished chunks are cached and a rerun resumes there", file=sys.stderr)
        return ExitCode.CANCELLED
    except ModelFileError as exc:  # a bad model file is bad input, not a backend that failed
        raise CliError(exc.code, str(exc), ExitCode.BAD_INPUT) from exc
    except BackendError as exc:
        raise CliError(exc.code, str(exc), ExitCode.BACKEND) from exc
    except USER_ERRORS as exc:  # rendered from the one message table, in English
        raise CliError(getattr(exc, "code", "bad_input"), render(exc), ExitCode.BAD_INPUT) from exc


def _clean_text_args(args: argparse.Namespace) -> None:
    """Text typed by the user, cleaned once here: undecodable argv bytes arrive as lone surrogates."""
    for name in ("message", "system", "name"):
        value = getattr(args, name, None)
        if isinstance(value, str):
            setattr(args, name, storable_text(value))


def _log_engine_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(APP_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def settings_from(args: argparse.Namespace) -> Settings:
    settings = load_settings(getattr(args, "config", None))
    # `is not None`: a 0 is bad input that must reach the validators, not a missing flag.
    if getattr(args, "model", None) or getattr(args, "ctx", None) is not None:
        settings = with_local_model(settings, getattr(args, "model", None), getattr(args, "ctx", None))
    if getattr(args, "vllm_url", None):
        settings = with_remote(settings, args.vllm_url, api_key=os.environ.get(VLLM_API_KEY_ENV))
    if getattr(args, "vllm_timeout", None) is not None:
        settings = with_timeout(settings, args.vllm_timeout)
    if getattr(args, "db", None):
        settings = replace(settings, db_url=args.db)
    if getattr(args, "backend", None):
        settings.backend(args.backend)  # an unknown name is bad input, never a silent fallback
    return settings


def _open_app(args: argparse.Namespace) -> App:
    return App.open(settings_from(args))


# -- commands -------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)  # bad flags fail before Gradio takes seconds to import
    from ui.server import ServeOptions, serve

    if args.backend:
        settings = replace(settings, default_backend=args.backend)
    options = ServeOptions(
        host=args.host or settings.host,
        port=args.port or settings.port,
        auth=args.auth,
        insecure_no_auth=args.insecure_no_auth,
        open_browser=args.open,
        window=args.window,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    return serve(settings, options)


def cmd_chat(args: argparse.Namespace) -> int:
    if args.max_tokens < 1:  # llama.cpp would read 0 or less as "until the context is full"
        raise CliError(
            "bad_input", f"--max-tokens must be at least 1, not {args.max_tokens}", ExitCode.BAD_INPUT
        )
    text = sys.stdin.read() if args.message == "-" else args.message
    lang = language_setting(args.lang) if args.lang else None
    app = _open_app(args)
    try:
        settings = ChatSettings(
            system_prompt=args.system,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            reply_language=lang,
            backend=args.backend,
        )
        user_id = app.local_user_id()
        if args.conversation:
            app.repo.get_conversation(user_id, args.conversation)
        stream = app.chat.send(user_id, args.conversation, text, settings)
        final = _drain(stream, None if args.json else sys.stdout)
    finally:
        app.close()
    if args.json:
        print(json.dumps(_chat_json(final), ensure_ascii=False))
    else:
        print()
        if final.dropped_turns:
            print(f"({final.dropped_turns} older messages left out to fit the context)", file=sys.stderr)
    return ExitCode.OK


def _drain(stream: Any, out: TextIO | None) -> ChatUpdate:
    """Run the exchange to its end, echoing new text as it arrives."""
    final: ChatUpdate | None = None
    shown = 0
    try:
        for update in stream:
            interrupts.checkpoint()
            if out is not None and len(update.reply) > shown:
                out.write(update.reply[shown:])
                out.flush()
                shown = len(update.reply)
            final = update
    finally:
        stream.close()  # on Ctrl-C: the partial reply is stored as interrupted before the model is freed
    assert final is not None
    return final


def _chat_json(update: ChatUpdate) -> dict[str, object]:
    return {
        "conversation_id": update.conversation_id,
        "message_id": update.reply_message_id,
        "reply": update.reply,
        "language": update.language,
        "backend": update.backend,
        "model": update.model,
        "prompt_tokens": update.prompt_tokens,
        "completion_tokens": update.completion_tokens,
        "ttft_s": round(update.ttft_s, 4) if update.ttft_s is not None else None,
        "elapsed_s": round(update.elapsed_s, 4),
    }


class _ProgressLine:
    """One self-overwriting progress line on stderr, ended only if one was drawn."""

    def __init__(self) -> None:
        self.drawn = False

    def show(self, done: int, total: int, what: str) -> None:
        self.line(f"[{done}/{total}] {what[:60]}")

    def line(self, text: str) -> None:
        back = "\r" if self.drawn else ""
        print(f"{back}{text:<80}", end="", file=sys.stderr, flush=True)
        self.drawn = True

    def end(self) -> None:
        if self.drawn:
            print(file=sys.stderr)
            self.drawn = False


def _read_pdf(path: str, password: str | None) -> Document:
    return read_upload(Path(path), password=password)


def cmd_extract(args: argparse.Namespace) -> int:
    from app.documents import extract_json

    doc = _read_pdf(args.file, args.password)
    if args.json:
        print(json.dumps(extract_json(doc), ensure_ascii=False))
        return ExitCode.OK
    for warning in doc.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for number, text in enumerate(doc.pages, start=1):
        print(f"--- page {number} ---\n{text}")
    return ExitCode.OK


def cmd_summarize(args: argparse.Namespace) -> int:
    """The one document pipeline, rendered on stderr (warnings, plan, progress) and stdout (the summary)."""
    lang = language_setting(args.lang)
    settings = settings_from(args)
    progress = _ProgressLine()
    app = App.open(settings)
    try:
        upload = Upload(
            Path(args.file), app.local_user_id(), password=args.password, language=lang, backend=args.backend
        )
        try:
            job = app.documents.open_upload(
                upload,
                lambda done, total: progress.show(done, total, "pages read"),
                lambda done, total: progress.show(done, total, "scanned pages read by OCR (Tesseract)"),
            )
        finally:
            progress.end()
        doc = job.document
        for warning in doc.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        view = SummaryView("en", warning=injection_warning(job.findings, "en"))
        if view.warning:
            print(view.warning, file=sys.stderr)
        print(f"plan: {job.plan.describe()}", file=sys.stderr)
        with closing(job.events):  # Ctrl-C closes it: the reply is stored as interrupted
            for _ in view.fed(job.events):
                if view.progress is not None and view.finished is None:
                    progress.line(progress_text(view.progress, "en"))
    finally:
        progress.end()
        app.close()
    if view.finished is None:
        raise AssertionError("a summary stream ends with Finished or an exception")
    outcome = view.finished.outcome
    result = outcome.result
    if not args.json:
        print(result.summary)
        return ExitCode.OK
    print(
        json.dumps(
            {
                "summary": result.summary,
                "language": result.language,
                "strategy": result.strategy,
                "conversation_id": outcome.conversation_id,
                "backend": outcome.plan.backend,
                "model": outcome.plan.model,
                "chunks": result.chunks,
                "tokens_processed": result.tokens_processed,
                "elapsed_s": round(result.elapsed_s, 3),
                "citations": [{"pages": [first, last]} for first, last in result.citations],
                "document": {
                    "sha256": doc.sha256,
                    "pages": doc.page_count,
                    "tokens": outcome.document_tokens,
                    "language": doc.language,
                    "ocr_confidence": {str(page): score for page, score in doc.ocr_confidence.items()},
                },
            },
            ensure_ascii=False,
        )
    )
    return ExitCode.OK


def cmd_conversations(args: argparse.Namespace) -> int:
    if args.format == "jsonl-sft" and args.action == "export" and not args.id:
        return _export_training_data(args)
    app = _open_app(args)
    try:
        user_id = app.local_user_id()
        if args.action == "list":
            rows = app.repo.list_conversations(user_id, limit=10_000)
            if args.json:
                listing = [exporting.conversation_summary(r) for r in rows]
                print(json.dumps({"conversations": listing}, ensure_ascii=False))
            for row in [] if args.json else rows:
                print(f"{row.id}  {row.updated_at:%Y-%m-%d %H:%M}  {row.language:5}  {row.title}")
            return ExitCode.OK
        if not args.id:
            raise CliError(
                "bad_input", f"conversations {args.action} needs a conversation ID", ExitCode.BAD_INPUT
            )
        conversation = app.repo.get_conversation(user_id, args.id)
        if args.action in ("mark", "unmark"):
            app.repo.set_marked(user_id, args.id, args.action == "mark")
            print(f"{args.action}ed {args.id} for the training-data export", file=sys.stderr)
            return ExitCode.OK
        if args.action == "delete":
            app.repo.delete_conversation(user_id, args.id)
            if args.json:
                print(json.dumps({"deleted": args.id}))
            print(f"deleted {args.id}", file=sys.stderr)
            return ExitCode.OK
        messages = app.repo.messages(user_id, args.id)
        fmt = "json" if args.json else args.format
        print(exporting.render(conversation, messages, fmt))
        return ExitCode.OK
    finally:
        app.close()


def _export_training_data(args: argparse.Namespace) -> int:
    since = _date_flag(args.since) if args.since else None
    only = exporting.SftFilter(backend=args.backend, since=since, marked_only=args.marked)
    report = exporting.SftReport()
    app = _open_app(args)
    try:
        rows = exporting.sft_rows(app.repo, app.local_user_id(), only, report)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as out:
                count = exporting.write_jsonl(rows, out)
        else:
            count = exporting.write_jsonl(rows, sys.stdout)
    finally:
        app.close()
    skipped = f", {report.skipped_documents} summaries of over-long documents left out" * bool(
        report.skipped_documents
    )
    print(
        f"exported {count} rows: {report.conversations} conversations, {report.summaries} summaries{skipped}",
        file=sys.stderr,
    )
    return ExitCode.OK


def _date_flag(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        message = f"--since takes a date like 2026-12-01, not {value!r}"
        raise CliError("bad_input", message, ExitCode.BAD_INPUT) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_backends(args: argparse.Namespace) -> int:
    from app.registry import BackendRegistry

    registry = BackendRegistry(settings_from(args))
    try:
        rows = [registry.describe(name) for name in registry.names]
    finally:
        registry.close()
    if args.json:
        print(json.dumps({"default": registry.default_name, "backends": rows}, ensure_ascii=False))
        return ExitCode.OK
    for row in rows:
        dot = "●" if row["healthy"] else "○"
        default = " (default)" if row["name"] == registry.default_name else ""
        print(f"{dot} {row['name']}{default}  {row['kind']}  {row['model']}  context {row['context_window']}")
        if not row["healthy"]:
            print(f"    {row['detail']}")
        if row.get("warning"):
            print(f"    {row['warning']}")
    return ExitCode.OK


def cmd_users(args: argparse.Namespace) -> int:
    from app.users import UserError, add_user, change_password, validate_username

    app = _open_app(args)
    try:
        if args.action == "list":
            for name in app.repo.list_users():
                if app.repo.password_hash(name):
                    print(name)
            return ExitCode.OK
        if not args.name:
            raise CliError("bad_input", f"users {args.action} needs a user NAME", ExitCode.BAD_INPUT)
        if args.action == "key":
            return _print_new_key(app, args.name)
        try:
            if args.action == "remove":
                validate_username(args.name)
                if not app.repo.remove_user(args.name):
                    raise CliError("not_found", f"no user {args.name!r}", ExitCode.BAD_INPUT)
                print(f"removed {args.name} and their conversations", file=sys.stderr)
                return ExitCode.OK
            if args.action == "passwd":
                change_password(app.repo, validate_username(args.name), _read_password())
                print(f"changed the password of {args.name}; their sessions have ended", file=sys.stderr)
                return ExitCode.OK
            add_user(app.repo, args.name, _read_password())
        except UserError as exc:
            raise CliError("bad_input", str(exc), ExitCode.BAD_INPUT) from exc
        print(f"added {args.name}", file=sys.stderr)
        return ExitCode.OK
    finally:
        app.close()


def _print_new_key(app: App, username: str) -> int:
    from app.api_keys import UnknownUser, create_key

    try:
        key = create_key(app.repo, username)
    except UnknownUser as exc:
        raise CliError("not_found", str(exc), ExitCode.BAD_INPUT) from exc
    print(key)
    print(f"a new API key for {username}: it is shown only this once", file=sys.stderr)
    return ExitCode.OK


def _read_password() -> str:
    """From the terminal without echo, or the first line of piped stdin."""
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise CliError("bad_input", "the passwords differ", ExitCode.BAD_INPUT)
        return first
    return sys.stdin.readline().rstrip("\r\n")


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "chat": cmd_chat,
    "conversations": cmd_conversations,
    "backends": cmd_backends,
    "users": cmd_users,
    "summarize": cmd_summarize,
    "extract": cmd_extract,
}
