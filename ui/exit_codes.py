"""The command line's exit codes (the CLI contract) and the error that carries one."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    BAD_INPUT = 2  # a bad file, flag or argument: one clear line on stderr, no traceback
    BACKEND = 3  # the backend is unavailable or failed
    CANCELLED = 130  # Ctrl-C or SIGTERM


class CliError(Exception):
    """Ends a command with one line on stderr (or one JSON object with --json) and an exit code."""

    def __init__(self, code: str, message: str, exit_code: ExitCode) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code
