"""Typed errors: a code and the values its message needs, rendered once by each frontend.

A service raises; it never formats a message for a user. The code names an entry `errors.<code>` of
the message table (app.messages), in every UI language; the CLI prints the English one.
"""

from __future__ import annotations

from collections.abc import Mapping

from app import messages
from app.config import ConfigError
from app.language import LanguageRejected
from backends.base import BackendError, ContextOverflow
from storage.repo import NotFound


class AppError(Exception):
    """A failure the user can act on. `params` fill the message; `detail` (English, technical) is
    appended in parentheses when the message has no place for it."""

    code = "failed"

    def __init__(self, code: str | None = None, **params: object) -> None:
        self.code = code or type(self).code
        self.params: dict[str, object] = params
        super().__init__(render(self))

    @property
    def message(self) -> str:
        return str(self)

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class Cancelled(AppError):
    """The user (or a client that went away) stopped the work; finished parts are kept."""

    code = "cancelled"


# What a user can act on, as opposed to a bug: frontends render these and print no traceback.
USER_ERRORS: tuple[type[Exception], ...] = (AppError, BackendError, NotFound, LanguageRejected, ConfigError)


def code_and_params(exc: BaseException) -> tuple[str, Mapping[str, object]]:
    if isinstance(exc, AppError):
        return exc.code, exc.params
    if isinstance(exc, ContextOverflow) and exc.prompt_tokens and exc.context_window:
        detail = f"{exc.prompt_tokens} tokens needed, the window holds {exc.context_window}"
        return exc.code, {"detail": detail}
    if isinstance(exc, BackendError):
        return exc.code, {"detail": str(exc)}
    if isinstance(exc, NotFound):
        return "not_found", {}
    code = getattr(exc, "code", None)  # typed errors of modules below this one (app.language)
    if isinstance(code, str) and messages.has(f"errors.{code}"):
        return code, getattr(exc, "params", None) or {"detail": str(exc)}
    return "failed", {"detail": str(exc) or type(exc).__name__}


def render(exc: BaseException, lang: str | None = messages.FALLBACK) -> str:
    """The one-line message for `exc` in `lang`, from the message table."""
    code, params = code_and_params(exc)
    key = f"errors.{code}" if messages.has(f"errors.{code}") else "errors.failed"
    text = messages.text(key, lang, **params)
    detail = str(params.get("detail") or "").strip()
    if detail and "{detail}" not in messages.template(key) and detail not in text:
        text = f"{text} ({detail})"
    return " ".join(text.split())
