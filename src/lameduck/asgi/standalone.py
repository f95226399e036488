"""``lameduck.wrap(app)``: lameduck's lifecycle inside a server you start yourself (``uvicorn app:app``).

The wrapper starts a lameduck driver during ASGI lifespan startup and chains its signal handler in front of
the server's (installed with ``signal.signal``, as uvicorn does). On the first SIGTERM/SIGINT you get the
readiness flip, the lame-duck window with ``Connection: close``, the bounded drain of requests and tracked
tasks (cancelled with a 503 at the deadline), cleanup hooks with timeouts and the summary line. When the window
ends, the signal is handed to the server, which then closes its listener and idle connections its own way.

What you lose compared with ``lameduck serve`` (README "Running under your own uvicorn"): new connections that
were queued when the listener closes are reset, not refused; connections opened during the window get no grace
before being closed; requests the server accepted but had not yet handed to the app are invisible to the drain;
startup cannot be aborted by SIGTERM; and the exit code is the server's (uvicorn: killed by SIGTERM, 143, or 0
as PID 1), not lameduck's 0/1/3.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from lameduck.asgi.middleware import LameduckMiddleware
from lameduck.asgi.stack import build
from lameduck.asgi.types import ASGIApp, Receive, Scope, Send
from lameduck.config import Settings
from lameduck.runtime import api, events, signals, tracking
from lameduck.runtime.driver import Driver
from lameduck.runtime.hooks import DEFAULT, Registry


class _ServerHandoff:
    """A frontend with no listener of its own: "close the listener" means "tell the server to shut down"."""

    name = "server"

    def __init__(self, handlers: dict[int, Any]) -> None:
        self._handlers = handlers
        self._handed_off = False

    async def start(self) -> None:
        return None

    def addresses(self) -> list[str]:
        return []

    def begin_lame_duck(self) -> None:
        return None

    async def close_listener(self, deadline: float) -> None:
        if self._handed_off:
            return
        self._handed_off = True
        handler = self._handlers.get(signal.SIGTERM)
        if callable(handler):
            handler(signal.SIGTERM, None)

    def close_idle(self) -> int:
        return 0

    def pending(self) -> set[asyncio.Task[Any]]:
        return set()

    async def stop(self) -> None:
        return None


class Wrapped:
    """The ASGI app ``wrap`` returns."""

    def __init__(self, app: ASGIApp, settings: Settings, registry: Registry) -> None:
        self.app = app
        self.settings = settings
        self.registry = registry
        self.driver: Driver | None = None
        self._inner: LameduckMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if self._inner is None:  # the server runs without lifespan: nothing was started
            await self.app(scope, receive, send)
            return
        await self._inner(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        events.configure(self.settings.log_format, self.settings.log_level)
        # The server's own task set is out of reach here, so the middleware tracks each request's task.
        driver = self.driver = Driver(self.settings, self.registry, track_requests=True)
        # The server's lifespan state: it copies this dict into every request's scope.
        stack = build(self.app, driver, self.settings, probes_on_app_port=True, state=scope.get("state"))
        self._inner = stack.middleware
        restore, handlers = signals.install(asyncio.get_running_loop(), driver.request_stop, chain=True)
        driver.frontends.append(_ServerHandoff(handlers))
        api._set_current(driver)
        # Owned here: the driver runs for the life of the server and is awaited at lifespan shutdown.
        run = tracking.start(driver.run(stack.startup, restore_signals=restore), name="lameduck:driver")
        await driver.started_event.wait()
        if (error := driver.lifecycle.startup_error) is not None:
            await send({"type": "lifespan.startup.failed", "message": error})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown: the server has closed its listener and drained
        if not driver.lifecycle.is_stopping():
            driver.request_stop("server")  # the server stopped for its own reasons (e.g. --limit-max-requests)
        try:
            async with asyncio.timeout(driver.budget.total):
                await run
        finally:
            stack.lifespan.abort()
            api._set_current(None)
        await send({"type": "lifespan.shutdown.complete"})


def wrap(app: ASGIApp, *, registry: Registry | None = None, **settings: Any) -> ASGIApp:
    """Wrap ``app`` for a server you start yourself; settings as for ``lameduck.run`` (and ``LAMEDUCK_*``).

    The server must run the ASGI lifespan (uvicorn does by default). See this module's docstring for what
    ``lameduck serve`` does that the wrapper cannot.
    """
    config = Settings.load(settings, os.environ)
    return Wrapped(app, config, registry or DEFAULT)
