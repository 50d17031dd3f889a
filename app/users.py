"""Accounts for `serve --auth`: argon2id password hashes stored in the database."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.core import LOCAL_USER
from storage.repo import Repository

MIN_PASSWORD_CHARS = 8
# A sign-in lasts a week; a password change or removing the account ends it sooner.
SESSION_LIFETIME = timedelta(days=7)
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_hasher = PasswordHasher()
# Verifying against this keeps a missing user as slow as a wrong password (no user enumeration by timing).
_DUMMY_HASH = _hasher.hash("llamadesk-no-such-user")


class UserError(ValueError):
    code = "bad_input"


def validate_username(username: str) -> str:
    if not _USERNAME.match(username) or username == LOCAL_USER:
        raise UserError(
            f"invalid user name {username!r}: use 1-64 letters, digits, '_', '.', '@' or '-'"
            f" (and not {LOCAL_USER!r})"
        )
    return username


def add_user(repo: Repository, username: str, password: str) -> int:
    validate_username(username)
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    try:
        return repo.add_user(username, _hasher.hash(password))
    except ValueError as exc:
        raise UserError(f"user {username!r} already exists") from exc


def verify_password(repo: Repository, username: str, password: str) -> bool:
    stored = repo.password_hash(username) if _USERNAME.match(username or "") else None
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def change_password(repo: Repository, username: str, password: str) -> None:
    """New password; every session of the account ends with the old one."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if not repo.set_password(username, _hasher.hash(password)):
        raise UserError(f"no such user: {username!r}")


# -- sign-in sessions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    user_id: int
    username: str


def _token_hash(token: str) -> str:
    # Only the hash is stored: a copy of the database holds no cookie that works.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def start_session(
    repo: Repository, token: str, username: str, lifetime: timedelta = SESSION_LIFETIME
) -> int | None:
    """Record a new sign-in's cookie token; the account's id, or None if it no longer exists."""
    return repo.create_session(_token_hash(token), username, datetime.now(UTC) + lifetime)


def session_user(repo: Repository, token: str) -> SignedIn | None:
    """Who a cookie token signs in, if its session is live for the same account and credentials."""
    found = repo.session_user(_token_hash(token))
    return SignedIn(*found) if found else None


def end_session(repo: Repository, token: str) -> None:
    repo.end_session(_token_hash(token))
