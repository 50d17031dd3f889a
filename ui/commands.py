"""The subcommands of ``llamadesk`` (see the CLI contract in the design); ui/cli.py parses and dispatches."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from app import exporting
from app.chat import ChatSettings, ChatUpdate, InputRejected
from app.config import (
    VLLM_API_KEY_ENV,
    ConfigError,
    Settings,
    load_settings,
    with_local_model,
    with_remote,
    with_timeout,
)
from app.core import App
from app.documents import Document, ExtractionCancelled
from app.language import LanguageRejected, language_setting
from app.summarize import SummaryCancelled
from backends.base import BackendError, ModelFileError
from storage.repo import NotFound, clean_text
from ui.exit_codes import CliError, ExitCode

# --debug shows what the app and its engines log, llama.cpp's own log included (backends/llamacpp.py).
APP_LOGGER = "llamadesk"


def run(args: argparse.Namespace) -> int:
    """Run one parsed command; every failure the user can act on becomes a CliError."""
    if args.debug:
        _log_engine_to_stderr()
    _clean_text_args(args)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, InputRejected, NotFound, LanguageRejected, ModelFileError) as exc:
        raise CliError(getattr(exc, "code", "bad_input"), str(exc), ExitCode.BAD_INPUT) from exc
    except BackendError as exc:
        raise CliError(exc.code, str(exc), ExitCode.BACKEND) from exc
    except (SummaryCancelled, ExtractionCancelled):
        print("cancelled; finished chunks are cached and a rerun resumes there", file=sys.stderr)
        return ExitCode.CANCELLED


def _clean_text_args(args: argparse.Namespace) -> None:
    """Text typed by the user, cleaned once here: undecodable argv bytes arrive as lone surrogates."""
    for name in ("message", "system", "name"):
        value = getattr(args, name, None)
        if isinstance(value, str):
            setattr(args, name, clean_text(value))


def _log_engine_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(APP_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def settings_from(args: argparse.Namespace) -> Settings:
    settings = load_settings(getattr(args, "config", None))
    if getattr(args, "model", None) or getattr(args, "ctx", None):
        settings = with_local_model(settings, getattr(args, "model", None), getattr(args, "ctx", None))
    if getattr(args, "vllm_url", None):
        settings = with_remote(settings, args.vllm_url, api_key=os.environ.get(VLLM_API_KEY_ENV))
    if getattr(args, "vllm_timeout", None):
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
    if final.status == "error":
        raise CliError(
            final.error_code or "backend_error", final.error or "the backend failed", ExitCode.BACKEND
        )
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
        back = "\r" if self.drawn else ""
        print(f"{back}[{done}/{total}] {what[:60]:<60}", end="", file=sys.stderr, flush=True)
        self.drawn = True

    def end(self) -> None:
        if self.drawn:
            print(file=sys.stderr)
            self.drawn = False


def _read_pdf(path: str, password: str | None, progress: _ProgressLine | None = None) -> Document:
    from app.documents import DocumentError, extract_pdf

    def pages(done: int, total: int) -> None:
        if progress is not None:
            progress.show(done, total, "pages read")

    try:
        return extract_pdf(Path(path), password=password, progress=pages)
    except DocumentError as exc:
        raise CliError(exc.code, str(exc), ExitCode.BAD_INPUT) from exc
    except OSError as exc:
        raise CliError("not_pdf", f"cannot read {path}: {exc.strerror or exc}", ExitCode.BAD_INPUT) from exc
    finally:
        if progress is not None:
            progress.end()


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
    lang = language_setting(args.lang)
    settings = settings_from(args)
    progress = _ProgressLine()
    doc = _read_pdf(args.file, args.password, progress)
    for warning in doc.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    app = App.open(settings)
    try:
        plan = app.documents.plan(doc, args.backend)
        print(f"plan: {plan.describe()}", file=sys.stderr)
        outcome = app.documents.summarize(
            app.local_user_id(),
            doc,
            language_setting=lang,
            backend_name=args.backend,
            plan=plan,
            progress=progress.show,
        )
    finally:
        progress.end()
        app.close()
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
                },
            },
            ensure_ascii=False,
        )
    )
    return ExitCode.OK


def cmd_conversations(args: argparse.Namespace) -> int:
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
