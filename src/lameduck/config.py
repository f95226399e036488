"""Settings, declared once.

``SETTINGS`` is the single table: each row gives the flag, the environment variable, the default, the allowed
range and the help. The CLI parser, environment parsing, validation, ``lameduck serve --help`` and the README's
configuration table (``markdown_table()``; tests/unit/test_readme.py keeps the README in sync) all derive from
it. Validation raises ``ConfigError`` naming the flag and the allowed range, before anything is bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from lameduck.core.budget import (
    DEFAULT_CLEANUP,
    KUBERNETES_GRACE,
    KUBERNETES_LAME_DUCK,
    Budget,
)
from lameduck.errors import ConfigError

ENV_PREFIX = "LAMEDUCK_"
AUTO = "auto"

Parser = Callable[[Any], Any]


def _seconds(lo: float, hi: float, *, auto: bool = False, none_ok: bool = False) -> Parser:
    def parse(raw: Any) -> Any:
        if auto and (raw is None or str(raw).strip().lower() == AUTO):
            return None
        if none_ok and (raw is None or str(raw).strip() == ""):
            return None
        value = float(raw)  # ValueError on junk; reported with the allowed range
        if not math.isfinite(value) or not lo <= value <= hi:
            raise ValueError
        return value

    return parse


def _integer(lo: int, hi: int, *, none_ok: bool = False) -> Parser:
    def parse(raw: Any) -> Any:
        if none_ok and (raw is None or str(raw).strip() == ""):
            return None
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError
        if isinstance(raw, int):
            value = raw
        elif isinstance(raw, float):
            value = int(raw)  # whole floats only: fractional ones were rejected above
        else:
            value = int(str(raw).strip())
        if not lo <= value <= hi:
            raise ValueError
        return value

    return parse


def _choice(*choices: str) -> Parser:
    def parse(raw: Any) -> Any:
        value = str(raw).strip().lower()
        if value not in choices:
            raise ValueError
        return value

    return parse


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError


def _path(raw: Any) -> str:
    value = str(raw).strip()
    if not value.startswith("/") or " " in value or "?" in value:
        raise ValueError
    return value


#: URL schemes of the queue backends (lameduck.workers.broker maps each to its module).
BROKER_SCHEMES = ("sqlite", "postgresql", "postgres", "redis", "rediss", "amqp", "amqps", "memory")


def _broker_url(raw: Any) -> str | None:
    if raw is None or str(raw).strip() == "":
        return None
    value = str(raw).strip()
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in BROKER_SCHEMES or not rest:
        raise ValueError
    return value


def _target(raw: Any) -> str | None:
    if raw is None or str(raw).strip() == "":
        return None
    value = str(raw).strip()
    module, sep, attr = value.partition(":")
    if not sep or not module or not attr or " " in value:
        raise ValueError
    return value


def _text(raw: Any) -> str:
    value = str(raw).strip()
    if not value:
        raise ValueError
    return value


def _optional_text(raw: Any) -> str | None:
    return None if raw is None or str(raw).strip() == "" else str(raw).strip()


#: What ``--help`` shows for a value (seconds unless listed).
_METAVARS = {
    "host": "HOST",
    "port": "PORT",
    "probe_port": "PORT",
    "probe_host": "HOST",
    "live_path": "PATH",
    "ready_path": "PATH",
    "startup_path": "PATH",
    "backlog": "N",
    "http": "{auto,h11,httptools}",
    "loop": "{auto,asyncio,uvloop}",
    "log_format": "{text,json}",
    "log_level": "{debug,info,warning,error}",
    "worker": "MODULE:ATTR",
    "broker": "URL",
    "concurrency": "N",
    "init": "{auto,off}",
}


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the settings table."""

    name: str
    parse: Parser
    default: Any
    allowed: str
    help: str
    positional: bool = False
    boolean: bool = False

    @property
    def flag(self) -> str:
        return self.name.upper() if self.positional else "--" + self.name.replace("_", "-")

    @property
    def metavar(self) -> str:
        return _METAVARS.get(self.name, "SECONDS")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def shown_default(self) -> str:
        if self.default is None:
            return "(none)"
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        if isinstance(self.default, float):
            return f"{self.default:g}"
        return str(self.default)


SETTINGS: tuple[Setting, ...] = (
    Setting("app", _text, None, "MODULE:ATTR", "the ASGI application to serve", positional=True),
    Setting("factory", _boolean, False, "on/off", "treat MODULE:ATTR as a factory returning the app", boolean=True),
    Setting("host", _text, "127.0.0.1", "an address", "address to listen on (0.0.0.0 or :: in containers)"),
    Setting("port", _integer(0, 65535), 8000, "0..65535", "port to listen on (0 picks a free port)"),
    Setting(
        "grace",
        _seconds(0.001, 3600),
        KUBERNETES_GRACE,
        "0.001 ≤ s ≤ 3600",
        "the platform's grace period: seconds from SIGTERM to SIGKILL (Kubernetes "
        "terminationGracePeriodSeconds, default 30; Docker and Cloud Run: 10)",
    ),
    Setting(
        "lame_duck",
        _seconds(0, 3600, auto=True),
        AUTO,
        "auto or 0 ≤ s ≤ grace",
        f"seconds to keep serving after SIGTERM while load balancers catch up; auto = "
        f"{KUBERNETES_LAME_DUCK:g} when KUBERNETES_SERVICE_HOST is set, else 0",
    ),
    Setting(
        "drain_timeout",
        _seconds(0, 3600, auto=True),
        AUTO,
        "auto or 0 ≤ s ≤ 3600",
        "seconds in-flight work may take after the listener closes; auto = grace - lame-duck - cleanup - margin",
    ),
    Setting(
        "cleanup_timeout",
        _seconds(0, 600),
        DEFAULT_CLEANUP,
        "0 ≤ s ≤ 600",
        "budget for lifespan shutdown and cleanup hooks together (each hook also has its own timeout)",
    ),
    Setting(
        "startup_timeout",
        _seconds(0.001, 3600),
        60.0,
        "0.001 ≤ s ≤ 3600",
        "lifespan startup and startup checks must finish within this, or the process exits 3",
    ),
    Setting(
        "probe_port",
        _integer(0, 65535, none_ok=True),
        None,
        "0..65535, ≠ port",
        "serve the probes on this port instead of the app port (the app port then serves only the app)",
    ),
    Setting("probe_host", _optional_text, None, "an address", "address for --probe-port (default: --host)"),
    Setting("live_path", _path, "/health/live", "a path", "liveness probe path"),
    Setting("ready_path", _path, "/health/ready", "a path", "readiness probe path"),
    Setting("startup_path", _path, "/health/startup", "a path", "startup probe path"),
    Setting(
        "probe_verbose",
        _boolean,
        False,
        "on/off",
        "probe bodies name failing checks and their errors (off: a single word, nothing an attacker can use)",
        boolean=True,
    ),
    Setting(
        "watchdog",
        _seconds(0, 600),
        10.0,
        "0 ≤ s ≤ 600",
        "liveness fails after the event loop was blocked longer than this (0 turns the watchdog off)",
    ),
    Setting(
        "keep_alive_timeout",
        _integer(1, 3600),
        5,
        "1..3600 seconds",
        "close keep-alive connections idle this long (keep it above your load balancer's idle timeout)",
    ),
    Setting("backlog", _integer(1, 65535), 2048, "1..65535", "listen backlog (the kernel caps it at somaxconn)"),
    Setting("http", _choice("auto", "h11", "httptools"), "auto", "auto|h11|httptools", "HTTP/1.1 parser"),
    Setting("loop", _choice("auto", "asyncio", "uvloop"), "auto", "auto|asyncio|uvloop", "event loop"),
    Setting("access_log", _boolean, False, "on/off", "log every request (uvicorn's access log)", boolean=True),
    Setting(
        "worker",
        _target,
        None,
        "MODULE:ATTR",
        "a lameduck.Worker to run in the same process (serve); the worker to run (work)",
    ),
    Setting(
        "broker",
        _broker_url,
        None,
        "a sqlite://, postgresql://, redis://, amqp:// or memory:// URL",
        "where the worker's jobs live; default: the Worker's own, else sqlite:///lameduck-jobs.sqlite3",
    ),
    Setting("concurrency", _integer(1, 10000), 10, "1..10000", "jobs handled at once (the broker's prefetch)"),
    Setting(
        "lease",
        _seconds(0.1, 3600),
        10.0,
        "0.1 ≤ s ≤ 3600",
        "a claimed job is someone else's to run this long after its worker stops extending it (every lease/3)",
    ),
    Setting(
        "poll_interval",
        _seconds(0.01, 60),
        1.0,
        "0.01 ≤ s ≤ 60",
        "longest wait between claims when the queue is empty (PostgreSQL and Redis wake earlier on new jobs)",
    ),
    Setting(
        "init",
        _choice("auto", "off"),
        "auto",
        "auto|off",
        "as PID 1 (a container without an init), run the service as a child and act as its init: reap orphaned "
        "zombies (Python reaps none), forward each signal to the service once, hand it the terminal (docker run "
        "-it); auto = only when PID 1 (under tini, docker run --init or shareProcessNamespace lameduck is not PID 1, "
        "and runs the service itself); off = the service itself is PID 1 (to debug it, or when something inspects "
        "PID 1 directly)",
    ),
    Setting("log_format", _choice("text", "json"), "text", "text|json", "log format; json gives one object per line"),
    Setting(
        "log_level",
        _choice("debug", "info", "warning", "error"),
        "info",
        "debug|info|warning|error",
        "log level",
    ),
)

BY_NAME: Mapping[str, Setting] = {s.name: s for s in SETTINGS}
#: Settings that mean nothing without an app: ``lameduck work`` does not offer them.
HTTP_ONLY = frozenset({"app", "factory", "worker", "access_log", "backlog", "keep_alive_timeout"})


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated settings. Build with ``Settings.load`` so that every rule in ``SETTINGS`` applies."""

    app: str | None = None
    factory: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    grace: float = KUBERNETES_GRACE
    lame_duck: float | None = None  # None: auto
    drain_timeout: float | None = None  # None: auto (derived)
    cleanup_timeout: float = DEFAULT_CLEANUP
    startup_timeout: float = 60.0
    probe_port: int | None = None
    probe_host: str | None = None
    live_path: str = "/health/live"
    ready_path: str = "/health/ready"
    startup_path: str = "/health/startup"
    probe_verbose: bool = False
    watchdog: float = 10.0
    keep_alive_timeout: int = 5
    backlog: int = 2048
    http: str = "auto"
    loop: str = "auto"
    access_log: bool = False
    log_format: str = "text"
    log_level: str = "info"
    worker: str | None = None
    broker: str | None = None
    concurrency: int = 10
    lease: float = 10.0
    poll_interval: float = 1.0
    init: str = "auto"  # acted on before the settings are loaded: lameduck.runtime.pid1.wants_init
    # Resolved by ``load``, not settings of their own.
    in_kubernetes: bool = False
    #: ``lameduck work``: no HTTP listener, so nothing needs a lame-duck window.
    work_only: bool = False

    @classmethod
    def load(
        cls,
        values: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        work_only: bool = False,
    ) -> Settings:
        """Validate ``values`` (flags or keyword arguments) over ``env`` (``LAMEDUCK_*``) over the defaults.

        Raises ``ConfigError`` naming the first invalid setting and its allowed range.
        """
        values = dict(values or {})
        env = env or {}
        unknown = sorted(set(values) - set(BY_NAME))
        if unknown:
            raise ConfigError(unknown[0], f"unknown setting (known: {', '.join(BY_NAME)})")
        parsed: dict[str, Any] = {}
        for setting in SETTINGS:
            if values.get(setting.name) is not None:
                raw, source = values[setting.name], setting.flag
            elif setting.env in env:
                raw, source = env[setting.env], setting.env
            else:
                raw, source = setting.default, None
            if source is None and raw is None:
                parsed[setting.name] = None
                continue
            try:
                parsed[setting.name] = setting.parse(raw)
            except (ValueError, TypeError):
                name = setting.flag if source in (None, setting.flag) else f"{setting.flag} ({setting.env})"
                raise ConfigError(name, f"must be {setting.allowed} (got {raw!r})") from None
        parsed["in_kubernetes"] = bool(env.get("KUBERNETES_SERVICE_HOST"))
        parsed["work_only"] = work_only
        settings = cls(**parsed)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Rules across settings; the budget check shows its arithmetic."""
        if self.probe_port is not None and self.probe_port != 0 and self.probe_port == self.port:
            raise ConfigError("--probe-port", f"must differ from --port (both {self.port})")
        paths = [self.live_path, self.ready_path, self.startup_path]
        if len(set(paths)) != len(paths):
            raise ConfigError("--live-path", f"probe paths must be distinct (got {', '.join(paths)})")
        if self.lame_duck is not None and self.lame_duck > self.grace:
            raise ConfigError("--lame-duck", f"must be auto or 0 ≤ s ≤ grace {self.grace:g} (got {self.lame_duck:g})")
        self.budget()

    @property
    def lame_duck_seconds(self) -> float:
        if self.lame_duck is not None:
            return self.lame_duck
        return KUBERNETES_LAME_DUCK if self.in_kubernetes and not self.work_only else 0.0

    def lame_duck_reason(self) -> str:
        if self.lame_duck is not None:
            return "set explicitly"
        if self.work_only:
            return "auto: no HTTP listener for load balancers to drain (lameduck work), so 0 s"
        if self.in_kubernetes:
            return f"auto: KUBERNETES_SERVICE_HOST is set, so {KUBERNETES_LAME_DUCK:g} s for endpoint removal"
        return "auto: not under Kubernetes, so 0 s"

    def budget(self) -> Budget:
        return Budget.plan(
            grace=self.grace,
            lame_duck=self.lame_duck_seconds,
            drain=self.drain_timeout,
            cleanup=self.cleanup_timeout,
        )

    def probes_on_app_port(self) -> bool:
        return self.probe_port is None


def markdown_table() -> str:
    """The README's configuration table, derived from ``SETTINGS``."""
    rows = ["| flag | env var | default | allowed | meaning |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        rows.append(f"| `{s.flag}` | `{s.env}` | {s.shown_default} | {s.allowed} | {s.help} |")
    return "\n".join(rows)


_RESOLVED = {"in_kubernetes", "work_only"}
assert {f.name for f in fields(Settings)} - _RESOLVED == set(BY_NAME), "SETTINGS and Settings disagree"
