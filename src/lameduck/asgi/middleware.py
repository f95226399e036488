"""The per-request half of graceful shutdown, as pure ASGI middleware (Starlette's pure-middleware model).

For every HTTP request and WebSocket it: answers probes (when they share the app port), registers the running
task so the drain can wait for it and the deadline can cancel it, counts it in the ledger, adds
``Connection: close`` once the lame-duck window has begun, and turns lameduck's own cancellation into a
503 with ``Connection: close`` when no response has started. This is the hot path: no logging, no allocation
beyond one closure, and probe lookup is a frozenset membership test.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lameduck.asgi.probes import Probes, _respond
from lameduck.asgi.types import ASGIApp, Message, Receive, Scope, Send
from lameduck.core.ledger import Kind, Result
from lameduck.core.phases import Phase
from lameduck.runtime.driver import Driver

_CLOSE = (b"connection", b"close")
#: Close code 1001 "going away": RFC 6455 §7.4.1, a server going down.
GOING_AWAY = 1001


def _with_connection_close(message: Message) -> Message:
    headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"connection"]
    headers.append(_CLOSE)
    return {**message, "headers": headers}


class LameduckMiddleware:
    """Wrap an ASGI app for a lameduck ``Driver``; ``state`` is the lifespan state shared with requests."""

    def __init__(self, app: ASGIApp, driver: Driver, *, probes: Probes | None, state: dict[str, Any]) -> None:
        self.app = app
        self.driver = driver
        self.probes = probes
        self.probe_paths = probes.paths if probes is not None else frozenset()
        self.state = state
        self.tracker = driver.tracker
        self.ledger = driver.lifecycle.ledger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if scope["path"] in self.probe_paths and self.probes is not None:
                await self.probes(scope, receive, send)
                return
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:  # lifespan is driven by lameduck.asgi.lifespan; anything else passes through
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        driver = self.driver
        phase = driver.lifecycle.phase
        if phase is Phase.STARTING or self.tracker.aborting:
            await _respond(
                send,
                503,
                b"starting\n" if phase is Phase.STARTING else b"stopping\n",
                extra=[(b"retry-after", b"1"), _CLOSE],
            )
            return
        if self.state:
            scope["state"] = self.state.copy()
        task = asyncio.current_task()
        assert task is not None
        requests = self.tracker.requests
        requests.add(task)
        self.ledger.begin(Kind.REQUEST)
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if driver.connection_close:
                    message = _with_connection_close(message)
            await send(message)

        result = Result.COMPLETED
        try:
            await self.app(scope, receive, send_wrapper)
        except asyncio.CancelledError:
            if not self.tracker.aborting:
                result = Result.FAILED
                raise
            # lameduck's drain deadline: the handler has seen CancelledError; answer for it if we still can.
            result = Result.ABORTED
            task.uncancel()
            if not started:
                await _respond(send, 503, b"aborted: server shutting down\n", extra=[_CLOSE])
        except BaseException:
            result = Result.FAILED
            raise
        finally:
            requests.discard(task)
            self.ledger.end(Kind.REQUEST, result)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        phase = self.driver.lifecycle.phase
        if phase is not Phase.READY and phase is not Phase.DRAINING:
            # Starting, or past the lame-duck window: refuse the handshake (the server answers 403).
            await send({"type": "websocket.close", "code": GOING_AWAY})
            return
        if self.state:
            scope["state"] = self.state.copy()
        task = asyncio.current_task()
        assert task is not None
        accepted = closed = False
        lock = asyncio.Lock()  # the app and the closer must not interleave frames

        async def send_wrapper(message: Message) -> None:
            nonlocal accepted, closed
            async with lock:
                if message["type"] == "websocket.accept":
                    accepted = True
                elif message["type"] == "websocket.close":
                    closed = True
                await send(message)

        async def close_going_away() -> None:
            nonlocal closed
            async with lock:
                if accepted and not closed:
                    closed = True
                    await send({"type": "websocket.close", "code": GOING_AWAY, "reason": "server shutting down"})

        self.tracker.requests.add(task)
        self.tracker.add_closer(task, close_going_away)
        self.ledger.begin(Kind.WEBSOCKET)
        result = Result.COMPLETED
        try:
            await self.app(scope, receive, send_wrapper)
        except asyncio.CancelledError:
            if not self.tracker.aborting:
                result = Result.FAILED
                raise
            result = Result.ABORTED
            task.uncancel()
        except BaseException:
            result = Result.FAILED
            raise
        finally:
            self.tracker.requests.discard(task)
            self.tracker.remove_closer(task)
            self.ledger.end(Kind.WEBSOCKET, result)
