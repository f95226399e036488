"""The composition root: settings + app + driver + uvicorn frontends = a running service.

``run()`` is the Python API behind ``lameduck serve``: it validates settings (``ConfigError`` before any port
is bound), imports the app, binds the sockets, runs the driver on an event loop and returns the exit code. It
never calls ``sys.exit``; the CLI does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

from uvicorn.importer import ImportFromStringError, import_from_string

from lameduck.asgi.stack import build
from lameduck.asgi.types import ASGIApp
from lameduck.config import Settings
from lameduck.core.outcome import ExitCode, Outcome
from lameduck.errors import AppLoadError, ConfigError, StartupError
from lameduck.runtime import api, events
from lameduck.runtime.driver import Driver
from lameduck.runtime.events import emit
from lameduck.runtime.hooks import DEFAULT, Registry
from lameduck.servers import listener
from lameduck.servers.uvicorn import UvicornFrontend, uvicorn_config


def load_app(target: str, *, factory: bool) -> ASGIApp:
    """Import ``MODULE:ATTR`` (calling it when ``factory``).

    ``AppLoadError`` when the path is wrong (a usage error), ``StartupError`` when the app's own import raised.
    """
    try:
        app = import_from_string(target)
    except ImportFromStringError as exc:
        raise AppLoadError(str(exc)) from None
    except ModuleNotFoundError as exc:
        raise AppLoadError(f"importing {target}: {exc}") from exc
    except Exception as exc:
        raise StartupError(f"importing {target} raised {type(exc).__name__}: {exc}") from exc
    if factory:
        try:
            app = app()
        except TypeError as exc:
            raise AppLoadError(f"--factory: calling {target} failed: {exc}") from None
    if not callable(app):
        raise AppLoadError(f"{target} is a {type(app).__name__}, not an ASGI application")
    return app  # type: ignore[no-any-return]


def run(
    app: ASGIApp | str | None = None,
    *,
    registry: Registry | None = None,
    env: Mapping[str, str] | None = None,
    on_finished: Callable[[Outcome], None] | None = None,
    **settings: Any,
) -> int:
    """Serve ``app`` (an ASGI app or ``"MODULE:ATTR"``) until SIGTERM/SIGINT; return the exit code.

    ``settings`` are the CLI flags' names (``port=0``, ``lame_duck=5``, ``drain_timeout=20``); ``LAMEDUCK_*``
    environment variables fill in what is not given (``env`` replaces ``os.environ``, for tests).
    ``on_finished`` is called with the outcome right after the summary line is logged. Raises
    ``ConfigError`` (invalid settings, nothing bound) or ``AppLoadError``; returns ``ExitCode`` values otherwise.
    """
    values = dict(settings)
    if isinstance(app, str):
        values["app"] = app
    config = Settings.load(values, os.environ if env is None else env)
    events.configure(config.log_format, config.log_level)
    if app is None or isinstance(app, str):
        if config.app is None:
            raise ConfigError("APP", "must be MODULE:ATTR (or pass an app object to lameduck.run)")
        app = load_app(config.app, factory=config.factory)
    try:
        sockets = _bind(config)
    except OSError as exc:
        emit("startup.failed", f"cannot listen: {exc}", level=logging.ERROR, host=config.host, port=config.port)
        events.flush()
        return int(ExitCode.STARTUP_FAILED)
    loop_factory = uvicorn_config(app, config, access_log=False).get_loop_factory()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        outcome = runner.run(serve(app, config, sockets, registry or DEFAULT, on_finished=on_finished))
    return int(outcome.exit_code)


def _bind(config: Settings) -> list[socket.socket]:
    sockets = [listener.bind(config.host, config.port, config.backlog)]
    if config.probe_port is not None:
        try:
            sockets.append(listener.bind(config.probe_host or config.host, config.probe_port, 64))
        except OSError:
            sockets[0].close()
            raise
    return sockets


async def serve(
    app: ASGIApp,
    config: Settings,
    sockets: list[socket.socket],
    registry: Registry,
    *,
    on_finished: Callable[[Outcome], None] | None = None,
) -> Outcome:
    """Run one service on already-bound ``sockets`` (app first, then the probe socket if any)."""
    driver = Driver(config, registry)
    driver.on_finished = on_finished
    stack = build(app, driver, config, probes_on_app_port=config.probes_on_app_port())
    driver.frontends.append(
        UvicornFrontend(
            "app",
            stack.middleware,
            config,
            sockets[0],
            driver.tracker,
            access_log=config.access_log,
            state=stack.lifespan.state,
        )
    )
    if len(sockets) > 1:
        driver.probe_frontends.append(
            UvicornFrontend("probes", stack.probes, config, sockets[1], driver.tracker, access_log=False)
        )

    api._set_current(driver)
    try:
        return await driver.run(stack.startup)
    finally:
        stack.lifespan.abort()
        api._set_current(None)
