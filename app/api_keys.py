"""API keys for the OpenAI-compatible /v1 routes: random, shown once, stored as SHA-256 only.

A key is 256 random bits, so a fast hash is as safe as a slow one here, and every API request
checks one (argon2 would add tens of milliseconds to each).
"""

from __future__ import annotations

import hashlib
import secrets

from storage.repo import Repository

KEY_PREFIX = "ldk-"
SHOWN_PREFIX_CHARS = 12


class UnknownUser(ValueError):
    code = "bad_input"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(repo: Repository, username: str) -> str:
    """A new key for an existing account; the caller shows it once, it is never readable again."""
    user_id = repo.user_id(username)
    if user_id is None:
        raise UnknownUser(f"no user {username!r} (add one with: llamadesk users add NAME)")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    repo.add_api_key(user_id, _digest(key), key[:SHOWN_PREFIX_CHARS])
    return key


def user_for_key(repo: Repository, key: str) -> int | None:
    """The owner of a key, or None for a key that was never issued (or whose account is gone)."""
    if not key.startswith(KEY_PREFIX):
        return None
    return repo.user_for_api_key(_digest(key))


def bearer_key(authorization: str) -> str:
    """The key of an `Authorization: Bearer KEY` header value; "" when it holds none."""
    scheme, _, key = authorization.partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""
