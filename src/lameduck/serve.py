"""The composition root: settings + app + worker + driver + uvicorn frontends = a running service.

``run()`` is the Python API behind ``lameduck serve`` and ``lameduck work``: it validates settings
(``ConfigError`` before any port is bound), imports the app and/or the worker, binds the sockets, runs the driver
on an event loop and returns the exit code. It never calls ``sys.exit``; the CLI does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from uvicorn.importer import ImportFromStringError, import_from_string

from lameduck.asgi.probes import Probes
from lameduck.asgi.stack import build
from lameduck.asgi.types import ASGIApp, Receive, Scope, Send
from lameduck.config import Settings
from lameduck.core.outcome import ExitCode, Outcome
from lameduck.errors import AppLoadError, ConfigError, StartupError
from lameduck.runtime import api, events
from lameduck.runtime.driver import Driver
from lameduck.runtime.events import emit
from lameduck.runtime.hooks import DEFAULT, Registry
from lameduck.servers import listener
from lameduck.servers.uvicorn import UvicornFrontend, uvicorn_config

if TYPE_CHECKING:
    from lameduck.workers.broker import Broker
    from lameduck.workers.worker import Worker


def _import(target: str) -> Any:
    """``MODULE:ATTR``: ``AppLoadError`` when the path is wrong (a usage error), ``StartupError`` when the
    module's own import raised (the app is broken, not the command line)."""
    try:
        return import_from_string(target)
    except ImportFromStringError as exc:
        raise AppLoadError(str(exc)) from None
    except ModuleNotFoundError as exc:
        raise AppLoadError(f"importing {target}: {exc}") from exc
    except Exception as exc:
        raise StartupError(f"importing {target} raised {type(exc).__name__}: {exc}") from exc


def load_app(target: str, *, factory: bool) -> ASGIApp:
    """Import ``MODULE:ATTR`` (calling it when ``factory``).

    ``AppLoadError`` when the path is wrong (a usage error), ``StartupError`` when the app's own import raised.
    """
    app = _import(target)
    if factory:
        try:
            app = app()
        except TypeError as exc:
            raise AppLoadError(f"--factory: calling {target} failed: {exc}") from None
    if not callable(app):
        raise AppLoadError(f"{target} is a {type(app).__name__}, not an ASGI application")
    return app  # type: ignore[no-any-return]


def load_worker(target: str) -> Worker:
    """Import ``MODULE:ATTR`` naming a ``lameduck.Worker``; errors as for ``load_app``."""
    from lameduck.workers.worker import Worker

    worker = _import(target)
    if not isinstance(worker, Worker):
        raise AppLoadError(f"{target} is a {type(worker).__name__}, not a lameduck.Worker")
    if not worker.handlers:
        raise AppLoadError(f"{target} has no handlers: decorate functions with @worker.handler(queue)")
    return worker


def run(
    app: ASGIApp | str | None = None,
    *,
    worker: Worker | str | None = None,
    registry: Registry | None = None,
    env: Mapping[str, str] | None = None,
    on_finished: Callable[[Outcome], None] | None = None,
    **settings: Any,
) -> int:
    """Serve ``app`` and/or run ``worker`` until SIGTERM/SIGINT; return the exit code.

    ``app``: an ASGI app or ``"MODULE:ATTR"``. ``worker``: a ``lameduck.Worker`` or ``"MODULE:ATTR"``; with an
    app, both share one budget, one readiness and one summary line; without one (``lameduck work``), only the
    probes listen, on ``--probe-port`` or else ``--port``. ``settings`` are the CLI flags' names (``port=0``,
    ``lame_duck=5``, ``concurrency=4``); ``LAMEDUCK_*`` environment variables fill in what is not given (``env``
    replaces ``os.environ``, for tests). ``on_finished`` is called with the outcome right after the summary line.
    Raises ``ConfigError`` (invalid settings, nothing bound) or ``AppLoadError``; returns ``ExitCode`` values.
    """
    values = dict(settings)
    if isinstance(app, str):
        values["app"] = app
    if isinstance(worker, str):
        values["worker"] = worker
    environ = os.environ if env is None else env
    work_only = app is None and not values.get("app") and not environ.get("LAMEDUCK_APP")
    config = Settings.load(values, environ, work_only=work_only)
    events.configure(config.log_format, config.log_level)
    if work_only and worker is None and config.worker is None:
        raise ConfigError("WORKER", "must be MODULE:ATTR (or pass an app or a worker to lameduck.run)")
    asgi_app: ASGIApp | None = None
    if not work_only:
        if app is None or isinstance(app, str):
            if config.app is None:
                raise ConfigError("APP", "must be MODULE:ATTR (or pass an app object to lameduck.run)")
            asgi_app = load_app(config.app, factory=config.factory)
        else:
            asgi_app = app
    if worker is None or isinstance(worker, str):
        worker = load_worker(config.worker) if config.worker is not None else None
    broker: Broker | None = None
    if worker is not None:  # the worker machinery loads only when asked for: serve alone stays lean
        from lameduck.workers.broker import DEFAULT_URL, open_broker

        broker = open_broker(config.broker or worker.broker or DEFAULT_URL)
    try:
        sockets = _bind(config, http=not work_only)
    except OSError as exc:
        emit("startup.failed", f"cannot listen: {exc}", level=logging.ERROR, host=config.host, port=config.port)
        events.flush()
        return int(ExitCode.STARTUP_FAILED)
    loop_factory = uvicorn_config(asgi_app or _no_app, config, access_log=False).get_loop_factory()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        outcome = runner.run(
            serve(
                asgi_app,
                config,
                sockets,
                registry or DEFAULT,
                on_finished=on_finished,
                worker=worker,
                broker=broker,
            )
        )
    return int(outcome.exit_code)


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("lameduck work serves only the probes")


def _bind(config: Settings, *, http: bool = True) -> list[socket.socket]:
    if not http:  # lameduck work: the probes are all there is to serve
        port = config.probe_port if config.probe_port is not None else config.port
        return [listener.bind(config.probe_host or config.host, port, 64)]
    sockets = [listener.bind(config.host, config.port, config.backlog)]
    if config.probe_port is not None:
        try:
            sockets.append(listener.bind(config.probe_host or config.host, config.probe_port, 64))
        except OSError:
            sockets[0].close()
            raise
    return sockets


async def serve(
    app: ASGIApp | None,
    config: Settings,
    sockets: list[socket.socket],
    registry: Registry,
    *,
    on_finished: Callable[[Outcome], None] | None = None,
    worker: Worker | None = None,
    broker: Broker | None = None,
) -> Outcome:
    """Run one service on already-bound ``sockets`` (app first, then the probe socket if any; without an app,
    the probe socket only) with ``worker`` consuming from ``broker`` if given."""
    driver = Driver(config, registry)
    driver.on_finished = on_finished
    if worker is not None and broker is not None:
        from lameduck.workers.runner import Runner

        driver.intakes.append(
            Runner(
                worker,
                broker,
                driver,
                concurrency=config.concurrency,
                lease=config.lease,
                poll_interval=config.poll_interval,
            )
        )
    stack = None if app is None else build(app, driver, config, probes_on_app_port=config.probes_on_app_port())
    if stack is None:
        driver.probe_frontends.append(
            UvicornFrontend("probes", Probes(driver, config), config, sockets[0], driver.tracker, access_log=False)
        )
    else:
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
        return await driver.run(_started if stack is None else stack.startup)
    finally:
        if stack is not None:
            stack.lifespan.abort()
        api._set_current(None)


async def _started() -> None:
    """``lameduck work`` has no app lifespan: startup is the worker's connect and subscribe."""
