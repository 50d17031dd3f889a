"""Accounts for `serve --auth`: argon2id password hashes stored in the database."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.core import LOCAL_USER
from storage.repo import Repository

MIN_PASSWORD_CHARS = 8
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
