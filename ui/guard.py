"""The server's edge: every HTTP request passes here before Gradio sees it.

Gradio trusts whoever names a session hash, an event id or a file path: its cancel route needs no
sign-in, its deep-link route snapshots any session, and its file route serves any upload to any
signed-in user. This ASGI middleware
- checks the sign-in cookie against the sessions table (account id, credential version, expiry)
  and hides a cookie that is no longer valid from Gradio;
- throttles sign-ins per account and per address, and logs each failure;
- records who owns each session hash, event and upload, and refuses anyone else's;
- refuses routes llamadesk does not use (deep-link snapshots, streamed inputs, URL proxying);
- cleans lone UTF-16 surrogates out of every JSON body, once, for every endpoint;
- sets a Content-Security-Policy, so that the page itself fetches nothing from other origins.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from app.core import App
from app.login_throttle import LoginThrottle
from app.users import SignedIn, end_session, session_user, start_session
from storage.repo import storable_text
from ui.files import Owners, download_owner, upload_key, upload_usage

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("llamadesk.auth")

API = "/gradio_api"
TOKEN_COOKIE = "access-token-"
MAX_JSON_BODY = 64 * 1024 * 1024  # a long conversation's history travels with each chat event
MAX_LOGIN_BODY = 64 * 1024
DEFAULT_UPLOAD_QUOTA = 1024 * 1024 * 1024
CSP = "; ".join(
    [
        "default-src 'self'",
        # Gradio's page runs inline bootstrap code; scripts still only come from this server.
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "media-src 'self' data: blob:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "frame-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_LONE_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SESSION_PATH = re.compile(rf"^{API}/(?:heartbeat|stream)/([^/]+)")
_CALL_RESULT = re.compile(rf"^{API}/call/(?:v2/)?[^/]+/([^/]+)$")
_CALL_START = re.compile(rf"^{API}/(?:call/(?:v2/)?|run/|api/)[^/]+/?$")


@dataclass
class EdgePolicy:
    """What the guard enforces; ``auth`` False means one local user owns everything."""

    auth: bool
    upload_quota: int = DEFAULT_UPLOAD_QUOTA
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    sessions: Owners = field(default_factory=Owners)
    events: Owners = field(default_factory=Owners)
    uploads: Owners = field(default_factory=Owners)


class Refused(Exception):
    def __init__(self, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or []


class Guard:
    def __init__(self, app: ASGIApp, *, llamadesk: App, policy: EdgePolicy) -> None:
        self.app = app
        self.llamadesk = llamadesk
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send)
        try:
            await self._route(scope, receive, send)
        except Refused as refused:
            await _answer(send, refused.status, {"detail": refused.detail}, refused.headers)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if _unused_route(path, method):
            raise Refused(404, "Not Found")
        user = self._signed_in(scope) if self.policy.auth else None
        if method == "POST" and path.rstrip("/") == "/login" and self.policy.auth:
            await self._login(scope, receive, send)
            return
        if path.rstrip("/") == "/logout" and user is not None:
            self._logout(scope, user)
        if path.startswith(f"{API}/file=") or path.startswith(f"{API}/file/"):
            self._check_file_route(path, user)
        owner = user.user_id if user else None
        if self.policy.auth:
            self._check_session_route(scope, owner)
        if method == "POST" and path == f"{API}/upload":
            await self._upload(scope, receive, send, owner)
            return
        if method != "POST" or not (_is_json(scope) or _names_event(path)):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, MAX_JSON_BODY)
        data = _clean_json(body)
        if data is not None and self.policy.auth:
            self._check_json(path, data, owner)
        if data is not None and _LONE_SURROGATE_ESCAPE.search(body):
            body = json.dumps(data, ensure_ascii=False).encode("utf-8")
            _set_header(scope, b"content-length", str(len(body)).encode())
        capture = self.policy.auth and owner is not None and _starts_event(path)
        if capture and owner is not None:
            send = _capture_event_id(send, self.policy.events, owner)
        await self.app(scope, _replay(body, receive), send)

    # -- who is asking --------------------------------------------------------------------------

    def _signed_in(self, scope: Scope) -> SignedIn | None:
        """The account of a live session cookie; a cookie that is not live is removed from the request."""
        tokens = _token_cookies(scope)
        if not tokens:
            return None
        for token in tokens.values():
            user = session_user(self.llamadesk.repo, token)
            if user is not None:
                return user
        _drop_token_cookies(scope)
        return None

    def _logout(self, scope: Scope, user: SignedIn) -> None:
        everywhere = parse_qs(scope.get("query_string", b"").decode()).get("all_session", ["true"])
        if everywhere[0].lower() != "false":
            self.llamadesk.repo.end_user_sessions(user.user_id)
            return
        for token in _token_cookies(scope).values():
            end_session(self.llamadesk.repo, token)

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive, MAX_LOGIN_BODY)
        form = parse_qs(body.decode("utf-8", "replace"))
        account = (form.get("username") or [""])[0].strip()
        address = str((scope.get("client") or ("?", 0))[0])
        wait = self.policy.throttle.wait_s(account, address)
        if wait > 0:
            log.warning("sign-in refused for %r from %s: throttled for %.0f s", account, address, wait)
            seconds = str(max(1, round(wait + 0.5)))
            raise Refused(
                429,
                f"Too many sign-in attempts. Try again in {seconds} s.",
                [(b"retry-after", seconds.encode())],
            )

        async def hold_start(message: Message) -> None:
            if message["type"] == "http.response.start":
                token = _set_cookie_token(message)
                ok = message["status"] == 200 and token is not None
                if ok and token is not None and start_session(self.llamadesk.repo, token, account) is None:
                    ok = False  # removed between the password check and now
                    message = {"type": "http.response.start", "status": 400, "headers": []}
                if ok:
                    self.policy.throttle.succeeded(account, address)
                else:
                    self.policy.throttle.failed(account, address)
                    log.warning("failed sign-in for %r from %s", account, address)
            await send(message)

        await self.app(scope, _replay(body, receive), hold_start)

    # -- whose is it ----------------------------------------------------------------------------

    def _check_session_route(self, scope: Scope, owner: int | None) -> None:
        """Heartbeats, queue streams and media streams name a session hash: only its owner's."""
        path = scope["path"]
        hashes: list[str] = []
        if match := _SESSION_PATH.match(path):
            hashes.append(match.group(1))
        if path == f"{API}/queue/data":
            hashes += parse_qs(scope.get("query_string", b"").decode()).get("session_hash", [])
        result = _CALL_RESULT.match(path) if scope["method"] == "GET" else None
        if result and not self._owns(self.policy.events, result.group(1), owner):
            raise Refused(404, "Not Found")
        for session_hash in hashes:
            if not self._owns(self.policy.sessions, session_hash, owner, claim=True):
                raise Refused(404, "Not Found")

    def _check_json(self, path: str, data: Any, owner: int | None) -> None:
        if path == f"{API}/cancel":
            session_hash = str(data.get("session_hash") or "") if isinstance(data, dict) else ""
            event_id = data.get("event_id") if isinstance(data, dict) else None
            if owner is None:
                raise Refused(401, "Not authenticated")
            if not self._owns(self.policy.sessions, session_hash, owner):
                raise Refused(404, "Not Found")
            if event_id and not self._owns(self.policy.events, str(event_id), owner):
                raise Refused(404, "Not Found")
            return
        joining = path == f"{API}/queue/join" and isinstance(data, dict)
        session_hash = str(data.get("session_hash") or "") if joining else ""
        if joining and not self._owns(self.policy.sessions, session_hash, owner, claim=True):
            raise Refused(404, "Not Found")
        for file_path in _file_paths(data):
            if owner is None or not self._may_read(file_path, owner):
                raise Refused(403, "File not allowed.")

    def _owns(self, owners: Owners, key: str, user_id: int | None, claim: bool = False) -> bool:
        if user_id is None or not key:
            return False
        return owners.claim(key, user_id) if claim else owners.owner(key) == user_id

    def _may_read(self, file_path: str, user_id: int) -> bool:
        real = Path(os.path.realpath(file_path))
        return (
            download_owner(real) == user_id or self.policy.uploads.owner(upload_key(real, user_id)) == user_id
        )

    def _check_file_route(self, path: str, user: SignedIn | None) -> None:
        target = unquote(path.split("file=", 1)[1] if "file=" in path else path.split("/file/", 1)[1])
        if "://" in target:
            raise Refused(404, "Not Found")  # the server fetches no URL on a page's behalf
        if not self.policy.auth:
            return
        if user is None or not self._may_read(target, user.user_id):
            raise Refused(404, "Not Found")

    # -- uploads --------------------------------------------------------------------------------

    async def _upload(self, scope: Scope, receive: Receive, send: Send, owner: int | None) -> None:
        """Uploads count against the owner's quota and are recorded as theirs."""
        user_id = owner if self.policy.auth else self.llamadesk.local_user_id()
        if user_id is None:
            await self.app(scope, receive, send)  # Gradio answers 401
            return
        used = upload_usage(self.policy.uploads, user_id)
        incoming = int(_header(scope, b"content-length") or 0)
        if used + incoming > self.policy.upload_quota:
            raise Refused(413, _quota_message(self.policy.upload_quota))
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        if start is not None and start["status"] == 200:
            paths = [Path(os.path.realpath(p)) for p in json.loads(body)]
            for real in paths:
                self.policy.uploads.claim(upload_key(real, user_id), user_id)
            if upload_usage(self.policy.uploads, user_id) > self.policy.upload_quota:
                for real in paths:
                    self.policy.uploads.forget(upload_key(real, user_id))
                    real.unlink(missing_ok=True)
                raise Refused(413, _quota_message(self.policy.upload_quota))
        for message in held:
            await send(message)


def _quota_message(quota: int) -> str:
    return f"Upload quota reached ({quota // (1024 * 1024)} MB per user); summarized files are removed."


def _unused_route(path: str, method: str) -> bool:
    if path.rstrip("/") == f"{API}/deep_link":
        return True  # snapshots of any session's UI; llamadesk has no deep links
    if path.startswith(f"{API}/stream/") and method == "POST":
        return True  # streamed inputs (webcam, microphone); none here
    return path.startswith(f"{API}/proxy=")


def _starts_event(path: str) -> bool:
    return path == f"{API}/queue/join" or bool(_CALL_START.match(path))


def _names_event(path: str) -> bool:
    """Routes whose JSON body FastAPI reads even without a JSON content type: always checked."""
    return path == f"{API}/cancel" or _starts_event(path)


def _file_paths(data: Any) -> list[str]:
    """Every path a request names as a file (Gradio's FileData: any dict with a "path" string)."""
    found: list[str] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("path"), str):
                found.append(item["path"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _clean_json(body: bytes) -> Any:
    """The parsed body with lone surrogates replaced, or None when it is not JSON."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return None
    return _clean(data) if _LONE_SURROGATE_ESCAPE.search(body) else data


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


# -- ASGI plumbing --------------------------------------------------------------------------------


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _set_header(scope: Scope, name: bytes, value: bytes) -> None:
    scope["headers"] = [(k, v) for k, v in scope.get("headers", []) if k.lower() != name] + [(name, value)]


def _is_json(scope: Scope) -> bool:
    return "json" in (_header(scope, b"content-type") or "").lower()


def _cookie_pairs(header: str) -> list[tuple[str, str]]:
    pairs = []
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            pairs.append((name, value.strip().strip('"')))
    return pairs


def _token_cookies(scope: Scope) -> dict[str, str]:
    return {n: v for n, v in _cookie_pairs(_header(scope, b"cookie") or "") if n.startswith(TOKEN_COOKIE)}


def _drop_token_cookies(scope: Scope) -> None:
    kept = []
    for part in (_header(scope, b"cookie") or "").split(";"):
        if not part.strip().startswith(TOKEN_COOKIE):
            kept.append(part.strip())
    _set_header(scope, b"cookie", "; ".join(p for p in kept if p).encode("latin-1"))


def _set_cookie_token(start: Message) -> str | None:
    for key, value in start.get("headers", []):
        if key.lower() == b"set-cookie":
            name, token = _cookie_pairs(value.decode("latin-1").split(";", 1)[0])[0]
            if name.startswith(TOKEN_COOKIE) and token:
                return token
    return None


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refused(413, "Request too large.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, rest: Receive) -> Receive:
    """The body already read, then the client's own messages: a streaming route (MCP, /v1) waits on
    them for the real disconnect, and a made-up one would end its response at once."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await rest()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _with_security_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            names = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


def _capture_event_id(send: Send, events: Owners, user_id: int) -> Send:
    """Record the owner of the event id that Gradio hands back for a new event."""
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                try:
                    event_id = json.loads(b"".join(chunks)).get("event_id")
                except (ValueError, AttributeError):
                    event_id = None
                if event_id:
                    events.claim(str(event_id), user_id)
        await send(message)

    return wrapped


async def _answer(
    send: Send, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
