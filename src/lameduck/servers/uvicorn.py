"""uvicorn as lameduck's embedded engine: its HTTP/WebSocket protocols, lameduck's shutdown.

uvicorn's own shutdown closes the listener and idle connections in one step the instant the signal arrives, and
re-raises the signal after ``serve()`` (SHUTDOWN.md §2, §5). So lameduck does not call ``serve()``: it uses
``Server.startup(sockets=...)`` to create the asyncio servers on sockets lameduck bound, and carries out each
shutdown step itself. The uvicorn internals touched here, each pinned by tests/integration/test_uvicorn_pins.py:

- ``Server.startup(sockets)`` and ``Server.servers`` (the asyncio servers),
- ``Server.server_state.connections`` (protocol instances) and their ``shutdown()`` method, which closes an
  idle connection and marks a busy one ``keep_alive = False`` so it closes after its response,
- ``Server.server_state.tasks`` (one task per request being served),
- a protocol's ``cycle`` (None or with ``response_complete``/``keep_alive``) and ``transport``, to tell idle from
  busy connections,
- ``Server.on_tick(0)``, which refreshes the cached ``Date`` header (uvicorn's main loop, which we do not run,
  calls it every second),
- ``Server.lifespan`` (set to ``LifespanOff``, whose ``state`` dict uvicorn copies into each request's scope;
  lameduck runs the lifespan itself and puts its state there).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import weakref
from typing import Any

import uvicorn
from uvicorn.lifespan.off import LifespanOff

from lameduck.asgi.types import ASGIApp
from lameduck.config import Settings
from lameduck.runtime import tracking
from lameduck.runtime.events import emit
from lameduck.runtime.tracking import Tracker
from lameduck.servers import listener

#: uvicorn refreshes its Date header once a second.
_DATE_TICK = 1.0
#: A connection opened after the lame-duck window began (or taken from the accept queue as the listener
#: closed) has a client that is about to send its request: it gets this long to do so before it counts as idle.
FRESH_GRACE = 0.5
#: An idle keep-alive connection that sent a response less than this long ago is *warm*: its client is most
#: likely between two requests (a pooled client sends the next one within a round trip), so closing it now
#: would race that request. It gets as long again to send it; any request that comes is served with
#: ``Connection: close``. Connections idle for longer close at once, so hundreds of idle clients cost nothing.
WARM = 0.05
#: Longest wait for the asyncio servers to report closed at the very end.
_STOP_WAIT = 0.2
#: How often fresh connections are re-checked during that grace (a bounded poll: uvicorn has no hook for
#: "first bytes arrived").
_FRESH_POLL = 0.01


def uvicorn_config(app: ASGIApp, settings: Settings, *, access_log: bool) -> uvicorn.Config:
    """A uvicorn ``Config`` for ``app``: lifespan off (lameduck runs it), logging left to lameduck."""
    return uvicorn.Config(
        app,
        lifespan="off",
        interface="asgi3",
        http=settings.http,
        loop=settings.loop,
        log_config=None,
        access_log=access_log,
        timeout_keep_alive=settings.keep_alive_timeout,
        backlog=settings.backlog,
    )


class UvicornFrontend:
    """One listening socket served by uvicorn's protocols."""

    def __init__(
        self,
        name: str,
        app: ASGIApp,
        settings: Settings,
        sock: socket.socket,
        tracker: Tracker,
        *,
        access_log: bool,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.sock = sock
        self.tracker = tracker
        self.config = uvicorn_config(app, settings, access_log=access_log)
        self.config.load()
        self.server = uvicorn.Server(self.config)
        self.server.lifespan = LifespanOff(self.config)
        if state is not None:
            # lameduck runs the lifespan; uvicorn hands each request a copy of this dict as scope["state"].
            self.server.lifespan.state = state
        self._address = _format(sock.getsockname())
        self._closed = False
        #: Connections open when the lame-duck window began: at its end, the idle ones close at once.
        self._before: weakref.WeakSet[Any] = weakref.WeakSet()
        self._graces: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.server.startup(sockets=[self.sock])
        self.tracker.service(self._tick_date(), name=f"{self.name}-date")

    def addresses(self) -> list[str]:
        return [self._address]

    async def _tick_date(self) -> None:
        while True:
            await self.server.on_tick(0)
            await asyncio.sleep(_DATE_TICK)

    async def close_listener(self, deadline: float) -> None:
        if self._closed:
            return
        how = await listener.quiesce(self.sock, deadline)
        if how != "drained":
            emit(
                "listener.quiesce",
                f"accept queue: {how}; closing anyway",
                level=logging.WARNING,
                frontend=self.name,
                result=how,
            )
        self._close_servers()

    def _close_servers(self) -> None:
        for server in self.server.servers:
            server.close()
        self._closed = True

    def begin_lame_duck(self) -> None:
        self._before = weakref.WeakSet(self.server.server_state.connections)
        # Requests already running answer with Connection: close too (uvicorn adds the header for a cycle that
        # is not keep-alive); requests that start from now on get it from the middleware.
        for connection in self._before:
            cycle = getattr(connection, "cycle", None)
            if cycle is not None and not cycle.response_complete:
                cycle.keep_alive = False

    def close_idle(self) -> int:
        closed = 0
        fresh = []
        warm = []
        for connection in list(self.server.server_state.connections):
            if not hasattr(connection, "cycle"):
                continue  # a WebSocket: uvicorn's shutdown() would send 1012; the middleware sends 1001
            if _is_idle(connection):
                if connection not in self._before or listener.unread_bytes(connection.transport) > 0:
                    fresh.append(connection)  # its request is on its way (or already in the socket buffer)
                    continue
                if listener.sent_within(connection.transport, WARM):
                    warm.append(connection)
                    continue
            closed += _is_idle(connection)
            connection.shutdown()  # idle: closed now; busy: keep_alive=False, closes after its response
        if fresh:
            self._graces.append(
                self.tracker.service(self._close_after(fresh, FRESH_GRACE), name=f"{self.name}-fresh-grace")
            )
        if warm:
            self._graces.append(self.tracker.service(self._close_after(warm, WARM), name=f"{self.name}-warm-grace"))
        return closed

    async def _close_after(self, connections: list[Any], grace: float) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + grace
        # uvicorn has no "first bytes arrived" hook to wait on: a bounded poll for at most ``grace``.
        while loop.time() < until and any(_is_idle(c) and not c.transport.is_closing() for c in connections):  # noqa: ASYNC110
            await asyncio.sleep(_FRESH_POLL)
        for connection in connections:
            connection.shutdown()  # idle: closed now; busy: closes after its response

    def pending(self) -> set[asyncio.Task[Any]]:
        tasks = set(self.server.server_state.tasks)
        tasks.update(grace for grace in self._graces if not grace.done())
        return tasks

    async def stop(self) -> None:
        if not self._closed:
            self._close_servers()
        for connection in list(self.server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()  # the last step: unflushed bytes to a client that stopped reading are dropped
        # From 3.12 wait_closed() also waits for connections; they were all aborted just above.
        waits = [tracking.start(server.wait_closed(), name=f"{self.name}-closed") for server in self.server.servers]
        if waits:
            await asyncio.wait(waits, timeout=_STOP_WAIT)
            for wait in waits:
                wait.cancel()


def _is_idle(connection: Any) -> bool:
    return connection.cycle is None or bool(connection.cycle.response_complete)


def _format(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)
