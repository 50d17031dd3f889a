"""The ``llamadesk`` command line: its arguments, signals, exit codes and error output.

The commands live in ui/commands.py. They are imported only once Ctrl-C is handled here, so an
interrupt during start-up ends the process with "cancelled" and exit code 130, like one at any
other time, and never with a traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from backends.base import DEFAULT_OPTIONS
from ui import interrupts
from ui.exit_codes import CliError, ExitCode

CANCELLED_MESSAGE = "cancelled"


class _Parser(argparse.ArgumentParser):
    """A bad argument is bad input like any other: one line, or one JSON object with --json."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("llamadesk").strip()
        raise CliError("bad_input", f"{command}: {message}" if command else message, ExitCode.BAD_INPUT)


def _global_flags(parser: argparse.ArgumentParser, suppress: bool) -> None:
    # The same flags work before and after the subcommand; SUPPRESS keeps a
    # subparser from overwriting a value given before it.
    default: Any = argparse.SUPPRESS if suppress else None
    flag: Any = argparse.SUPPRESS if suppress else False
    parser.add_argument("--model", metavar="PATH.gguf", default=default, help="a local GGUF model")
    parser.add_argument(
        "--ctx", type=int, metavar="N", default=default, help="context window of the local model"
    )
    parser.add_argument(
        "--vllm-url",
        metavar="URL",
        default=default,
        help="use a vLLM server for this run (its API key, if any, from $LLAMADESK_VLLM_API_KEY)",
    )
    parser.add_argument(
        "--vllm-timeout",
        type=float,
        metavar="S",
        default=default,
        help="fail a vLLM reply after S seconds of silence while the server makes no progress",
    )
    parser.add_argument("--db", metavar="URL", default=default, help="SQLAlchemy database URL")
    parser.add_argument("--config", metavar="FILE", default=default, help="TOML config file")
    parser.add_argument(
        "--debug", action="store_true", default=flag, help="also print llama.cpp's own log on stderr"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="llamadesk", description="Chat in your language and summarize long documents with Llama 3.1."
    )
    _global_flags(parser, suppress=False)
    sub = parser.add_subparsers(dest="command")
    common = _Parser(add_help=False)
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
    chat.add_argument(
        "--max-tokens", type=int, default=DEFAULT_OPTIONS.max_tokens, metavar="N", help="at least 1"
    )
    chat.add_argument("--temperature", type=float, default=DEFAULT_OPTIONS.temperature)
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
    users.add_argument("action", choices=["add", "remove", "list", "passwd", "key"])
    users.add_argument("name", nargs="?")

    # Listed for --help; its own flags are parsed by backends.launcher (see _serve_vllm).
    sub.add_parser("serve-vllm", help="start vLLM with the 405B FP8 recipe (GPU node)", add_help=False)
    return parser


def _serve_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--backend", metavar="NAME", help="the default backend for this run")
    parser.add_argument("--auth", action="store_true", help="require sign-in (accounts: llamadesk users)")
    parser.add_argument(
        "--insecure-no-auth", action="store_true", help="allow a non-loopback host without --auth"
    )
    parser.add_argument("--ssl-certfile", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--ssl-keyfile", metavar="FILE", help="the certificate's private key (PEM)")
    view = parser.add_mutually_exclusive_group()
    view.add_argument("--open", action="store_true", help="open the browser")
    view.add_argument("--window", action="store_true", help="open a native window (needs llamadesk[desktop])")


# -- entry point ----------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
    interrupts.install()
    try:
        return _run(argv)
    except KeyboardInterrupt:
        print(CANCELLED_MESSAGE, file=sys.stderr)
        return ExitCode.CANCELLED
    except CliError as exc:
        return _fail(exc, as_json)
    finally:
        _forget_unhandled_interrupt()  # a Ctrl-C handled anywhere below, serve's included


def _forget_unhandled_interrupt() -> None:
    """Let a handled Ctrl-C end in exit code 130, not in death by SIGINT.

    CPython 3.11 marks a Ctrl-C that lands inside ``exec()`` of a string (dataclasses does that while
    modules load) as unhandled even once it is caught, and kills the process with SIGINT at exit.
    Evaluating a string resets that mark.
    """
    exec("None")


def _run(argv: list[str]) -> int:
    parser = build_parser()
    vllm_args = serve_vllm_args(parser, argv)
    if vllm_args is not None:
        return _serve_vllm(vllm_args)
    args = parser.parse_args(argv)
    if args.command is None:  # the laptop mode: serve on loopback and open the browser
        args = parser.parse_args([*argv, "serve", "--open"])
    from ui import commands  # after the signal set-up: see the module docstring

    interrupts.checkpoint()
    return commands.run(args)


def serve_vllm_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str] | None:
    """The launcher's arguments when the command is serve-vllm, else None.

    serve-vllm passes everything after it to vLLM's recipe, so argparse must not see it; the app's
    global flags before it (``--vllm-url X``) mean nothing to the node and are skipped.
    """
    actions = parser._actions
    takes_value = {flag for action in actions if action.nargs is None for flag in action.option_strings}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "serve-vllm":
            return list(argv[i + 1 :])
        if not arg.startswith("-"):
            return None  # another command
        i += 2 if arg in takes_value else 1
    return None


def _serve_vllm(argv: list[str]) -> int:
    from backends import launcher

    try:
        spec, args = launcher.parse_spec(argv)
    except launcher.LaunchArgumentError as exc:
        raise CliError("bad_input", str(exc).removeprefix("llamadesk "), ExitCode.BAD_INPUT) from exc
    if args.dry_run:
        print(shlex.join(launcher.build_command(spec, launcher.find_entry() or ("vllm", "serve"))))
        return ExitCode.OK
    outcome = launcher.launch(spec, wait_s=args.wait_s)
    return {
        launcher.Outcome.STOPPED: ExitCode.OK,
        launcher.Outcome.NOT_INSTALLED: ExitCode.BAD_INPUT,
        launcher.Outcome.FAILED: ExitCode.BACKEND,
        launcher.Outcome.CANCELLED: ExitCode.CANCELLED,
    }[outcome]


def _fail(exc: CliError, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": {"code": exc.code, "message": str(exc)}}, ensure_ascii=False))
    print(f"llamadesk: {exc}", file=sys.stderr)
    return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
