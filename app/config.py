"""Settings: the TOML file, then LLAMADESK_* environment variables, then CLI flags.

A config file names backends and the default one::

    default_backend = "local"

    [server]
    host = "127.0.0.1"
    port = 7860

    [backends.local]
    kind = "llamacpp"
    model = "~/models/Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    ctx = 16384

    [backends.node]
    kind = "vllm"
    url = "http://gpu-node:8000"
    api_key = "..."       # the key given to `serve-vllm --api-key`
    timeout_s = 300       # how long a reply may go silent while the server makes no progress
    parallel = 16         # optional cap on requests at once; by default the server's own figure
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs

APP_NAME = "llamadesk"
LOCAL_BACKEND = "local"
REMOTE_BACKEND = "vllm"
BACKEND_KINDS = ("llamacpp", "vllm")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
VLLM_API_KEY_ENV = "LLAMADESK_VLLM_API_KEY"
VLLM_TIMEOUT_ENV = "LLAMADESK_VLLM_TIMEOUT"


class ConfigError(ValueError):
    """The configuration cannot be used; the message says what to fix."""

    code = "bad_input"


class UnknownBackend(ConfigError):
    """A backend name that is not configured (any more); the message names the configured ones."""

    code = "unknown_backend"


@dataclass(frozen=True)
class BackendSpec:
    name: str
    kind: str
    model: str | None = None  # a GGUF path for llamacpp, a served model id for vllm
    ctx: int | None = None
    url: str | None = None
    api_key: str | None = None
    timeout_s: float | None = None
    parallel: int | None = None


@dataclass(frozen=True)
class Settings:
    db_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    backends: tuple[BackendSpec, ...] = (BackendSpec(LOCAL_BACKEND, "llamacpp"),)
    default_backend: str = LOCAL_BACKEND
    auth: bool = False
    insecure_no_auth: bool = False
    max_file_mb: int = 200
    config_path: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def backend(self, name: str | None) -> BackendSpec:
        wanted = name or self.default_backend
        for spec in self.backends:
            if spec.name == wanted:
                return spec
        names = ", ".join(s.name for s in self.backends)
        raise UnknownBackend(f"unknown backend {wanted!r}; configured: {names}")


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME))


def default_config_path() -> Path:
    return config_dir() / "config.toml"


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    file = Path(path or env.get("LLAMADESK_CONFIG") or default_config_path()).expanduser()
    settings = Settings()
    if path and not file.is_file():
        raise ConfigError(f"config file not found: {file}")
    if file.is_file():
        settings = _from_toml(file)
    return _from_env(settings, env)


def _from_toml(file: Path) -> Settings:
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {file}: {exc}") from exc
    server = data.get("server", {})
    specs = tuple(_spec(name, body) for name, body in data.get("backends", {}).items())
    settings = Settings(config_path=file)
    if specs:
        settings = replace(
            settings, backends=specs, default_backend=str(data.get("default_backend", specs[0].name))
        )
    settings = replace(
        settings,
        db_url=data.get("db") or settings.db_url,
        host=str(server.get("host", settings.host)),
        port=int(server.get("port", settings.port)),
    )
    settings.backend(None)  # the default must name a configured backend
    return settings


def _spec(name: str, body: dict[str, object]) -> BackendSpec:
    kind = str(body.get("kind", ""))
    if kind not in BACKEND_KINDS:
        raise ConfigError(f"backend {name!r}: kind must be one of {', '.join(BACKEND_KINDS)}")
    if kind == "vllm" and not body.get("url"):
        raise ConfigError(f"backend {name!r}: a vllm backend needs url")
    ctx = body.get("ctx")
    timeout = body.get("timeout_s")
    parallel = body.get("parallel")
    return BackendSpec(
        name=name,
        kind=kind,
        model=str(Path(str(body["model"])).expanduser())
        if kind == "llamacpp" and body.get("model")
        else (str(body["model"]) if body.get("model") else None),
        ctx=int(str(ctx)) if ctx else None,
        url=str(body["url"]) if body.get("url") else None,
        api_key=str(body["api_key"]) if body.get("api_key") else None,
        timeout_s=_positive(f"backend {name!r}: timeout_s", float(str(timeout))) if timeout else None,
        parallel=int(_positive(f"backend {name!r}: parallel", int(str(parallel)))) if parallel else None,
    )


def _positive(what: str, value: float) -> float:
    if value <= 0:
        raise ConfigError(f"{what} must be more than 0")
    return value


def _from_env(settings: Settings, env: dict[str, str]) -> Settings:
    if env.get("LLAMADESK_DB"):
        settings = replace(settings, db_url=env["LLAMADESK_DB"])
    if env.get("LLAMADESK_HOST"):
        settings = replace(settings, host=env["LLAMADESK_HOST"])
    if env.get("LLAMADESK_PORT"):
        settings = replace(settings, port=int(env["LLAMADESK_PORT"]))
    if env.get("LLAMADESK_MODEL") or env.get("LLAMADESK_CTX"):
        settings = with_local_model(
            settings, env.get("LLAMADESK_MODEL"), _int_or_none(env.get("LLAMADESK_CTX"))
        )
    if env.get("LLAMADESK_VLLM_URL"):
        settings = with_remote(settings, env["LLAMADESK_VLLM_URL"], api_key=env.get(VLLM_API_KEY_ENV))
    if env.get(VLLM_TIMEOUT_ENV):
        settings = with_timeout(settings, float(env[VLLM_TIMEOUT_ENV]))
    return settings


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value else None


def with_local_model(settings: Settings, model: str | None, ctx: int | None) -> Settings:
    """Point the local backend at a GGUF file and/or a context size (``--model``, ``--ctx``)."""
    if model is not None:
        path = Path(model).expanduser()
        if path.suffix.lower() != ".gguf" or not path.is_file():
            raise ConfigError(f"--model must be an existing .gguf file: {path}")
        model = str(path.resolve())
    if ctx is not None and ctx < 256:
        raise ConfigError("--ctx must be at least 256")
    local = next(
        (s for s in settings.backends if s.kind == "llamacpp"), BackendSpec(LOCAL_BACKEND, "llamacpp")
    )
    updated = replace(local, model=model or local.model, ctx=ctx or local.ctx)
    others = tuple(s for s in settings.backends if s.name != local.name)
    return replace(settings, backends=(updated, *others))


def with_remote(settings: Settings, url: str, *, api_key: str | None = None) -> Settings:
    """Add an ad-hoc vLLM backend for this run (``--vllm-url``) and make it the default."""
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--vllm-url must start with http:// or https://: {url}")
    name = REMOTE_BACKEND if all(s.name != REMOTE_BACKEND for s in settings.backends) else "vllm-url"
    spec = BackendSpec(name=name, kind="vllm", url=url, api_key=api_key or None)
    return replace(settings, backends=(*settings.backends, spec), default_backend=name)


def with_timeout(settings: Settings, timeout_s: float) -> Settings:
    """Set every vLLM backend's stall timeout (``--vllm-timeout``)."""
    _positive("--vllm-timeout", timeout_s)
    specs = tuple(replace(s, timeout_s=timeout_s) if s.kind == "vllm" else s for s in settings.backends)
    return replace(settings, backends=specs)
