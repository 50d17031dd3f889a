"""`llamadesk serve`: checks the exposure rules, then runs the Gradio app."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
import webbrowser
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from sqlalchemy import make_url
from starlette.middleware import Middleware

from app.config import LOOPBACK_HOSTS, Settings
from app.core import App
from ui import layout, markup, openai_routes
from ui.exit_codes import ExitCode
from ui.files import private_root
from ui.guard import DEFAULT_UPLOAD_QUOTA, EdgePolicy, Guard
from ui.i18n import i18n

QUEUE_MAX_SIZE = 512
# Gradio's queue loop polls every millisecond while it has nothing to start: 3–4% of a core
# taken from the model while it generates (measured per thread), and 1,000 wake-ups a second
# on an idle laptop. Polling every 5 ms costs a new request at most 5 ms.
QUEUE_POLL_S = 0.005
# After every event Gradio rebuilds its API-page metrics in pandas from up to 10,000 recorded
# events: 5% of the server's CPU at 32 chats, growing with uptime. Every 250 events, over the
# last 1,000, keeps the metrics and drops the cost.
ANALYTICS_EVERY_EVENTS = 250
ANALYTICS_MAX_EVENTS = 1000
# Gradio keeps a copy of every component's config (about 100 KB here) for each session it has
# seen, and an API call without a session hash is a new session: at Gradio's default of 10,000
# sessions, a script calling /chat would grow the server by about 1 GB.
SESSION_CAPACITY = 1000
# By default Gradio sends every waiting client a new queue estimate each time any event
# starts: 32 chats arriving together made about 240 such messages before their first tokens.
# Once a second is enough for a queue position.
STATUS_UPDATE_S = 1.0
# Gradio runs at most max_threads events at once (40 by default), and a streaming chat holds
# one for its whole reply: without room for every remote chat, the 41st would wait.
MAX_THREADS = layout.CHAT_LIMIT + 16
# Uploads and summary downloads older than an hour are deleted, checked every 10 minutes; an
# upload is removed sooner, once its text is stored.
CACHE_LIFETIME_S = 3600
CACHE_SWEEP_S = 600
# System fonts only: the default theme fetches its fonts from Google, a request to another
# origin on every page load (and none of the page's business offline).
THEME = gr.themes.Soft(
    font=["ui-sans-serif", "system-ui", "sans-serif"],
    font_mono=["ui-monospace", "Consolas", "monospace"],
)


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 7860
    auth: bool = False
    insecure_no_auth: bool = False
    open_browser: bool = False
    window: bool = False
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    upload_quota: int = DEFAULT_UPLOAD_QUOTA
    cache_lifetime_s: int = CACHE_LIFETIME_S
    cache_sweep_s: int = CACHE_SWEEP_S


class ExposureRefused(ValueError):
    pass


def check_exposure(options: ServeOptions) -> None:
    """A non-loopback bind without sign-in would publish every conversation; TLS needs both files."""
    if bool(options.ssl_certfile) != bool(options.ssl_keyfile):
        raise ExposureRefused("--ssl-certfile and --ssl-keyfile go together: give both, or neither")
    if options.host not in LOOPBACK_HOSTS and not options.auth and not options.insecure_no_auth:
        raise ExposureRefused(
            f"refusing to serve on {options.host} without --auth: anyone on the network could read every "
            "conversation. Add --auth (accounts: llamadesk users add NAME), or --insecure-no-auth."
        )


def launch(app: App, options: ServeOptions, *, block: bool = True) -> tuple[gr.Blocks, str]:
    """Start the server; with block=False it runs in the background (tests)."""
    check_exposure(options)
    skip_absent_matplotlib()
    private_root()  # before the page is built: Gradio's components read it as their cache
    demo = layout.build(app, auth=options.auth)
    markup.harden(demo)
    demo.delete_cache = (options.cache_sweep_s, options.cache_lifetime_s)
    policy = EdgePolicy(auth=options.auth, upload_quota=options.upload_quota)
    demo.queue(
        default_concurrency_limit=layout.CHAT_LIMIT,
        max_size=QUEUE_MAX_SIZE,
        status_update_rate=STATUS_UPDATE_S,
    )
    tune_queue(demo)
    _, url, _ = demo.launch(
        server_name=options.host,
        server_port=options.port,
        share=False,
        auth=_authenticator(app) if options.auth else None,
        auth_message="Sign in to llamadesk",
        prevent_thread_lock=True,
        quiet=True,
        max_file_size="200mb",
        ssl_certfile=options.ssl_certfile,
        ssl_keyfile=options.ssl_keyfile,
        # Only Gradio's start-up request to itself on 127.0.0.1: a self-signed or public-name
        # certificate cannot verify there, and clients still verify as they choose.
        ssl_verify=False,
        allowed_paths=[],
        blocked_paths=_database_dirs(app),
        # Gradio adds its own routes to this app after these: /v1 is served by the same server and port.
        app_kwargs={
            "middleware": [Middleware(Guard, llamadesk=app, policy=policy)],
            "routes": openai_routes.routes(app, auth=options.auth),
        },
        max_threads=MAX_THREADS,
        state_session_capacity=SESSION_CAPACITY,
        footer_links=["api", "settings"],
        i18n=i18n(),
        css=layout.css(),
        head=layout.head(),
        theme=THEME,
        mcp_server=True,  # at /gradio_api/mcp/: the tools of ui/mcp_tools.py
    )
    if block and not _open_view(url, options):
        demo.block_thread()
    return demo, url


def _database_dirs(app: App) -> list[str]:
    """The SQLite file's folder, never served (unless the private upload folder lies inside it)."""
    url = make_url(app.db.url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return []
    folder = Path(url.database).expanduser().resolve().parent
    return [] if private_root().is_relative_to(folder) else [str(folder)]


QUEUE_KNOBS: dict[str, float] = {
    "sleep_when_free": QUEUE_POLL_S,
    "ANAYLTICS_CACHE_FREQUENCY": ANALYTICS_EVERY_EVENTS,  # sic: Gradio's spelling
    "ANALYTICS_MAX_EVENTS": ANALYTICS_MAX_EVENTS,
}


def tune_queue(demo: gr.Blocks) -> list[str]:
    """Apply QUEUE_KNOBS to the queue; returns the knobs this Gradio lacks (nothing is set for them)."""
    queue = getattr(demo, "_queue", None)
    missing = [name for name in QUEUE_KNOBS if not hasattr(queue, name)]
    for name, value in QUEUE_KNOBS.items():
        if name not in missing:
            setattr(queue, name, type(getattr(queue, name))(value))
    return missing


def skip_absent_matplotlib() -> bool:
    """Make `import matplotlib` fail at once when it is not installed; True when it is absent.

    Gradio imports matplotlib around every step of every event, a streamed update included.
    Without it, each failed import searches the whole sys.path again: about 0.5 ms per update,
    9% of the server's CPU with 32 streams. A None entry in sys.modules is Python's own way to
    record a module as unavailable.
    """
    if "matplotlib" in sys.modules:
        return sys.modules["matplotlib"] is None
    if importlib.util.find_spec("matplotlib") is not None:
        return False
    sys.modules["matplotlib"] = None  # type: ignore[assignment]
    return True


def _authenticator(app: App):  # type: ignore[no-untyped-def]
    from app.users import verify_password

    # Gradio awaits a coroutine here but calls a plain function on its event loop, where each
    # argon2 check (tens of ms by design) would freeze every user's stream while someone logs in.
    async def check(username: str, password: str) -> bool:
        return await asyncio.to_thread(verify_password, app.repo, username, password)

    return check


def _open_view(url: str, options: ServeOptions) -> bool:
    """Open the browser or a native window; True once a native window was shown and closed."""
    print(f"llamadesk is running at {url}", file=sys.stderr)
    if options.window:
        from ui.window import open_window

        if open_window(url):
            return True
    if options.open_browser or options.window:
        webbrowser.open(url)
    return False


def _load_default_model(app: App) -> None:
    """Load the weights before the page is served, and say so: an 8B model takes a while."""
    spec = app.settings.backend(None)
    started = time.monotonic()
    print(f"llamadesk: loading {spec.model or spec.url or 'the demo model'} ({spec.kind})…", file=sys.stderr)
    health = app.backends.get().health()
    state = "ready" if health.ok else f"not available: {health.detail}"
    print(f"llamadesk: {spec.name} {state} ({time.monotonic() - started:.1f} s)", file=sys.stderr)


def _report_recovered(replies: int) -> None:
    message = f"llamadesk: {replies} reply(s) cut off by a crash are marked interrupted"
    print(message, file=sys.stderr, flush=True)


def serve(settings: Settings, options: ServeOptions) -> int:
    try:
        check_exposure(options)
    except ExposureRefused as exc:
        print(f"llamadesk: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    app = App.open(settings)
    if options.auth and not any(app.repo.password_hash(u) for u in app.repo.list_users()):
        print("llamadesk: --auth needs at least one account: llamadesk users add NAME", file=sys.stderr)
        app.close()
        return ExitCode.BAD_INPUT
    _load_default_model(app)
    if app.recovered_replies:
        _report_recovered(app.recovered_replies)
    app.heartbeat.keep_sweeping(_report_recovered)
    try:
        launch(app, options)
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
    return ExitCode.OK
