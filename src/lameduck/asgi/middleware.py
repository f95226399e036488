"""The per-request half of graceful shutdown, as pure ASGI middleware (Starlette's pure-middleware model).

For every HTTP request and WebSocket it: answers probes (when they share the app port), counts the work in the
ledger, adds ``Connection: close`` once the lame-duck window has begun, refuses work before startup completes
and once cleanup has begun (503), and turns lameduck's own cancellation into a 503 with ``Connection: close``
when no response has started. WebSockets (and, under ``lameduck.wrap``, requests) are registered with the
tracker so the drain can wait for them and the deadline can cancel them; under ``lameduck serve`` uvicorn's
own task set serves for requests. While ``lameduck serve`` is simply serving, a request costs one bool read
and three counter increments here: no logging, no allocation, no task bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextlib

from lameduck.asgi.probes import Probes, _respond
from lameduck.asgi.types import ASGIApp, Message, Receive, Scope, Send
from lameduck.core.ledger import Kind, Result
from lameduck.core.phases import Phase
from lameduck.runtime.driver import Driver

_CLOSE = (b"connection", b"close")
#: Close code 1001 "going away": RFC 6455 §7.4.1, a server going down.
GOING_AWAY = 1001
_GOING_AWAY_CLOSE = {"type": "websocket.close", "code": GOING_AWAY, "reason": "server shutting down"}


def _closing(send: Send) -> Send:
    """``send`` that adds ``Connection: close`` to the response (replacing any ``Connection`` header)."""

    async def send_closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"connection"]
            headers.append(_CLOSE)
            message = {**message, "headers": headers}
        await send(message)

    return send_closing


class LameduckMiddleware:
    """Wrap an ASGI app for a lameduck ``Driver``.

    The lifespan state reaches requests through the server (uvicorn copies it into each ``scope["state"]``).
    """

    def __init__(self, app: ASGIApp, driver: Driver, *, probes: Probes | None) -> None:
        self.app = app
        self.driver = driver
        self.probes = probes
        self.probe_paths = probes.paths if probes is not None else frozenset()
        self.tracker = driver.tracker
        self.ledger = driver.lifecycle.ledger
        self.requests = self.ledger.tally(Kind.REQUEST)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The hot path (bench/throughput.py holds it to ≥ 0.97 of bare uvicorn): one type test, one frozenset
        # test, one bool read and three slot increments. The request's task is not tracked here: the engine's task
        # set is what the deadline cancels (Frontend.pending), and requests already running when the lame-duck
        # window begins get Connection: close from the engine (Frontend.begin_lame_duck), so ``send`` is only
        # wrapped for requests that start after it.
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        if scope["path"] in self.probe_paths:
            await self.probes(scope, receive, send)  # type: ignore[misc]  # paths are empty without probes
            return
        task = None
        if not self.driver.plain:
            driver = self.driver
            if driver.refusing:
                await self._refuse(send)
                return
            if driver.connection_close:
                send = _closing(send)
            if driver.track_requests:
                task = asyncio.current_task()
                self.tracker.app_tasks.add(task)  # type: ignore[arg-type]
        requests = self.requests
        requests.in_flight += 1
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            requests.in_flight -= 1
            if not self.tracker.aborting:
                requests.failed += 1
                raise
            # lameduck's drain deadline: the handler has seen CancelledError; answer for it if we still can.
            requests.aborted += 1
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            with contextlib.suppress(RuntimeError):  # the server refuses a second response start
                await _respond(send, 503, b"aborted: server shutting down\n", extra=[_CLOSE])
        except BaseException:
            requests.in_flight -= 1
            requests.failed += 1
            raise
        else:
            requests.in_flight -= 1
            requests.completed += 1
        finally:
            if task is not None:
                self.tracker.app_tasks.discard(task)

    async def _refuse(self, send: Send) -> None:
        starting = self.driver.lifecycle.phase is Phase.STARTING
        await _respond(
            send,
            503,
            b"starting\n" if starting else b"stopping\n",
            extra=[(b"retry-after", b"1"), _CLOSE],
        )

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:  # lifespan is driven by lameduck.asgi.lifespan; anything else passes through
            await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        phase = self.driver.lifecycle.phase
        if phase is not Phase.READY and phase is not Phase.DRAINING:
            # Starting, or past the lame-duck window: refuse the handshake (the server answers 403).
            await send({"type": "websocket.close", "code": GOING_AWAY})
            return
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
                if accepted and not closed and self.tracker.websockets_closing:
                    # Accepted after the close round (the app awaited something first): close it now.
                    closed = True
                    await send(dict(_GOING_AWAY_CLOSE))

        async def close_going_away() -> None:
            nonlocal closed
            async with lock:
                if accepted and not closed:
                    closed = True
                    await send(dict(_GOING_AWAY_CLOSE))

        self.tracker.app_tasks.add(task)
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
            self.tracker.app_tasks.discard(task)
            self.tracker.remove_closer(task)
            self.ledger.end(Kind.WEBSOCKET, result)
