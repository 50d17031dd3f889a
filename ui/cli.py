"""The ``llamadesk`` command line (see the CLI contract in the design)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from app import exporting
from app.chat import ChatSettings, ChatUpdate, InputRejected
from app.config import ConfigError, Settings, load_settings, with_local_model, with_remote
from app.core import App
from app.documents import Document, ExtractionCancelled
from app.language import SUPPORTED, normalize_code
from app.summarize import SummaryCancelled
from backends.base import BackendError
from storage.repo import NotFound

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_BACKEND = 3
EXIT_CANCELLED = 130


class CliError(Exception):
    def __init__(self, code: str, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code


# -- parsing ------------------------------------------------------------------


def _global_flags(parser: argparse.ArgumentParser, suppress: bool) -> None:
    # The same flags work before and after the subcommand; SUPPRESS keeps a
    # subparser from overwriting a value given before it.
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument("--model", metavar="PATH.gguf", default=default, help="a local GGUF model")
    parser.add_argument(
        "--ctx", type=int, metavar="N", default=default, help="context window of the local model"
    )
    parser.add_argument("--vllm-url", metavar="URL", default=default, help="use a vLLM server for this run")
    parser.add_argument("--db", metavar="URL", default=default, help="SQLAlchemy database URL")
    parser.add_argument("--config", metavar="FILE", default=default, help="TOML config file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llamadesk", description="Chat in your language and summarize long documents with Llama 3.1."
    )
    _global_flags(parser, suppress=False)
    sub = parser.add_subparsers(dest="command")
    common = argparse.ArgumentParser(add_help=False)
    _global_flags(common, suppress=True)

    serve = sub.add_parser("serve", parents=[common], help="run the web app (the default)")
    _serve_flags(serve)

    chat = sub.add_parser("chat", parents=[common], help="send one message and print the reply")
    chat.add_argument("message", help="the message; - reads it from stdin")
    chat.add_argument("--conversation", metavar="ID", help="continue this conversation")
    chat.add_argument("--backend", metavar="NAME")
    chat.add_argument(
        "--lang", default=None, metavar="auto|CODE", help="reply language; pins it for the conversation"
    )
    chat.add_argument("--max-tokens", type=int, default=1024, metavar="N")
    chat.add_argument("--temperature", type=float, default=0.7)
    chat.add_argument("--system", default="", help="system prompt")
    chat.add_argument("--json", action="store_true")

    summarize = sub.add_parser("summarize", parents=[common], help="summarize a PDF of any length")
    summarize.add_argument("file", metavar="FILE.pdf")
    summarize.add_argument("--lang", default="auto", metavar="auto|CODE", help="summary language")
    summarize.add_argument("--backend", metavar="NAME")
    summarize.add_argument("--password", metavar="PW", help="for an encrypted PDF")
    summarize.add_argument("--json", action="store_true")

    extract = sub.add_parser("extract", parents=[common], help="the text of a PDF, page by page (no model)")
    extract.add_argument("file", metavar="FILE.pdf")
    extract.add_argument("--password", metavar="PW")
    extract.add_argument("--json", action="store_true")

    conv = sub.add_parser(
        "conversations", parents=[common], help="list, show, export or delete conversations"
    )
    conv.add_argument("action", choices=["list", "show", "export", "delete", "mark", "unmark"])
    conv.add_argument("id", nargs="?")
    conv.add_argument("--format", choices=["md", "json", "jsonl-sft"], default="md")
    conv.add_argument("--json", action="store_true")
    training = conv.add_argument_group("training data (export --format jsonl-sft)")
    training.add_argument("--backend", metavar="NAME", help="only replies of this backend or model")
    training.add_argument("--since", metavar="DATE", help="only conversations started on or after DATE")
    training.add_argument("--marked", action="store_true", help="only conversations marked for training")
    training.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")

    backends = sub.add_parser("backends", parents=[common], help="configured backends and their health")
    backends.add_argument("--json", action="store_true")

    users = sub.add_parser("users", parents=[common], help="accounts for serve --auth")
    users.add_argument("action", choices=["add", "remove", "list", "key"])
    users.add_argument("name", nargs="?")

    sub.add_parser("serve-vllm", help="start vLLM with the 405B FP8 recipe (GPU node)", add_help=False)
    return parser


def _serve_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--backend", metavar="NAME")
    parser.add_argument("--auth", action="store_true", help="require sign-in (accounts: llamadesk users)")
    parser.add_argument(
        "--insecure-no-auth", action="store_true", help="allow a non-loopback host without --auth"
    )
    view = parser.add_mutually_exclusive_group()
    view.add_argument("--open", action="store_true", help="open the browser")
    view.add_argument("--window", action="store_true", help="open a native window (needs llamadesk[desktop])")


def settings_from(args: argparse.Namespace) -> Settings:
    settings = load_settings(getattr(args, "config", None))
    if getattr(args, "model", None) or getattr(args, "ctx", None):
        settings = with_local_model(settings, getattr(args, "model", None), getattr(args, "ctx", None))
    if getattr(args, "vllm_url", None):
        settings = with_remote(settings, args.vllm_url)
    if getattr(args, "db", None):
        settings = replace(settings, db_url=args.db)
    return settings


# -- entry point ----------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve-vllm"]:
        from backends import launcher

        return launcher.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # the laptop mode: serve on loopback and open the browser
        args = parser.parse_args([*argv, "serve", "--open"])
    handler = COMMANDS[args.command]
    as_json = bool(getattr(args, "json", False))
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except CliError as exc:
        return _fail(exc.code, str(exc), exc.exit_code, as_json)
    except (ConfigError, InputRejected, NotFound) as exc:
        return _fail(getattr(exc, "code", "bad_input"), str(exc), EXIT_BAD_INPUT, as_json)
    except BackendError as exc:
        return _fail(exc.code, str(exc), EXIT_BACKEND, as_json)
    except (SummaryCancelled, ExtractionCancelled):
        print("cancelled; finished chunks are cached and a rerun resumes there", file=sys.stderr)
        return EXIT_CANCELLED


def _fail(code: str, message: str, exit_code: int, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False))
    print(f"llamadesk: {message}", file=sys.stderr)
    return exit_code


def _open_app(args: argparse.Namespace) -> App:
    return App.open(settings_from(args))


# -- commands -------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from ui.server import ServeOptions, serve

    settings = settings_from(args)
    options = ServeOptions(
        host=args.host or settings.host,
        port=args.port or settings.port,
        auth=args.auth,
        insecure_no_auth=args.insecure_no_auth,
        open_browser=args.open,
        window=args.window,
        backend=args.backend,
    )
    return serve(settings, options)


def cmd_chat(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.message == "-" else args.message
    lang = _language_flag(args.lang) if args.lang else None
    app = _open_app(args)
    try:
        if args.backend:
            app.settings.backend(args.backend)
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
        raise CliError(final.error_code or "backend_error", final.error or "the backend failed", EXIT_BACKEND)
    if args.json:
        print(json.dumps(_chat_json(final), ensure_ascii=False))
    else:
        print()
        if final.dropped_turns:
            print(f"({final.dropped_turns} older messages left out to fit the context)", file=sys.stderr)
    return EXIT_OK


def _drain(stream: Any, out: TextIO | None) -> ChatUpdate:
    """Run the exchange to its end, echoing new text as it arrives."""
    final: ChatUpdate | None = None
    shown = 0
    for update in stream:
        if out is not None and len(update.reply) > shown:
            out.write(update.reply[shown:])
            out.flush()
            shown = len(update.reply)
        final = update
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


def _read_pdf(path: str, password: str | None) -> Document:
    from app.documents import DocumentError
    from app.formats import read_document

    try:
        return read_document(Path(path), password=password)
    except DocumentError as exc:
        raise CliError(exc.code, str(exc), EXIT_BAD_INPUT) from exc
    except OSError as exc:
        raise CliError("not_pdf", f"cannot read {path}: {exc.strerror or exc}", EXIT_BAD_INPUT) from exc


def cmd_extract(args: argparse.Namespace) -> int:
    from app.documents import extract_json

    doc = _read_pdf(args.file, args.password)
    if args.json:
        print(json.dumps(extract_json(doc), ensure_ascii=False))
        return EXIT_OK
    for warning in doc.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for number, text in enumerate(doc.pages, start=1):
        print(f"--- page {number} ---\n{text}")
    return EXIT_OK


def cmd_summarize(args: argparse.Namespace) -> int:
    lang = _language_flag(args.lang)
    doc = _read_pdf(args.file, args.password)
    for warning in doc.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    app = _open_app(args)
    try:
        if args.backend:
            app.settings.backend(args.backend)
        plan = app.documents.plan(doc, args.backend)
        print(f"plan: {plan.describe()}", file=sys.stderr)
        outcome = app.documents.summarize(
            app.local_user_id(),
            doc,
            language_setting=lang,
            backend_name=args.backend,
            plan=plan,
            progress=_progress_line,
        )
    finally:
        print(file=sys.stderr)
        app.close()
    result = outcome.result
    if not args.json:
        print(result.summary)
        return EXIT_OK
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
    return EXIT_OK


def _progress_line(done: int, total: int, what: str) -> None:
    print(f"\r[{done}/{total}] {what[:60]:<60}", end="", file=sys.stderr, flush=True)


def cmd_conversations(args: argparse.Namespace) -> int:
    if args.format == "jsonl-sft" and args.action == "export" and not args.id:
        return _export_training_data(args)
    app = _open_app(args)
    try:
        user_id = app.local_user_id()
        if args.action == "list":
            rows = app.repo.list_conversations(user_id, limit=10_000)
            if args.json:
                print(json.dumps([exporting.conversation_summary(r) for r in rows], ensure_ascii=False))
            for row in [] if args.json else rows:
                print(f"{row.id}  {row.updated_at:%Y-%m-%d %H:%M}  {row.language:5}  {row.title}")
            return EXIT_OK
        if not args.id:
            raise CliError(
                "bad_input", f"conversations {args.action} needs a conversation ID", EXIT_BAD_INPUT
            )
        conversation = app.repo.get_conversation(user_id, args.id)
        if args.action in ("mark", "unmark"):
            app.repo.set_marked(user_id, args.id, args.action == "mark")
            print(f"{args.action}ed {args.id} for the training-data export", file=sys.stderr)
            return EXIT_OK
        if args.action == "delete":
            app.repo.delete_conversation(user_id, args.id)
            print(f"deleted {args.id}", file=sys.stderr)
            return EXIT_OK
        messages = app.repo.messages(user_id, args.id)
        fmt = "json" if args.json else args.format
        print(exporting.render(conversation, messages, fmt))
        return EXIT_OK
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
    return EXIT_OK


def _date_flag(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CliError(
            "bad_input", f"--since takes a date like 2026-12-01, not {value!r}", EXIT_BAD_INPUT
        ) from exc
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
        return EXIT_OK
    for row in rows:
        dot = "●" if row["healthy"] else "○"
        default = " (default)" if row["name"] == registry.default_name else ""
        print(f"{dot} {row['name']}{default}  {row['kind']}  {row['model']}  context {row['context_window']}")
        if not row["healthy"]:
            print(f"    {row['detail']}")
    return EXIT_OK


def _language_flag(value: str) -> str:
    if value == "auto":
        return value
    code = normalize_code(value)
    if code is None:
        supported = ", ".join(SUPPORTED)
        message = f"--lang must be auto or one of {supported}, not {value!r}"
        raise CliError("bad_input", message, EXIT_BAD_INPUT)
    return code


def cmd_users(args: argparse.Namespace) -> int:
    from app.users import UserError, add_user, validate_username

    app = _open_app(args)
    try:
        if args.action == "list":
            for name in app.repo.list_users():
                if app.repo.password_hash(name):
                    print(name)
            return EXIT_OK
        if not args.name:
            raise CliError("bad_input", f"users {args.action} needs a user NAME", EXIT_BAD_INPUT)
        if args.action == "key":
            return _print_new_key(app, args.name)
        try:
            if args.action == "remove":
                validate_username(args.name)
                if not app.repo.remove_user(args.name):
                    raise CliError("bad_input", f"no user {args.name!r}", EXIT_BAD_INPUT)
                print(f"removed {args.name} and their conversations", file=sys.stderr)
                return EXIT_OK
            add_user(app.repo, args.name, _read_password())
        except UserError as exc:
            raise CliError("bad_input", str(exc), EXIT_BAD_INPUT) from exc
        print(f"added {args.name}", file=sys.stderr)
        return EXIT_OK
    finally:
        app.close()


def _print_new_key(app: App, username: str) -> int:
    from app.api_keys import UnknownUser, create_key

    try:
        key = create_key(app.repo, username)
    except UnknownUser as exc:
        raise CliError("bad_input", str(exc), EXIT_BAD_INPUT) from exc
    print(key)
    print(f"a new API key for {username}: it is shown only this once", file=sys.stderr)
    return EXIT_OK


def _read_password() -> str:
    """From the terminal without echo, or the first line of piped stdin."""
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise CliError("bad_input", "the passwords differ", EXIT_BAD_INPUT)
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


if __name__ == "__main__":
    sys.exit(main())
