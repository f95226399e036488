"""Every task has an owner: the only module that creates tasks (tests/unit/test_layering.py enforces it).

``start`` creates a task for a caller that owns it outright (awaits it, or cancels it): a hook run under its
timeout, a shared health check, the ASGI lifespan, the driver under ``lameduck.wrap``. ``Tracker`` owns the rest.
Three kinds of task live in a Tracker:
- *work*: WebSockets (and, under ``lameduck.wrap``, requests) registered by the ASGI middleware while they
  run, and tracked background tasks started with ``spawn``. (Under ``lameduck serve`` the engine's own task set
  stands for the requests: see ``Frontend.pending``.) The drain waits for all of it; the deadline cancels what is left.
- *service* tasks: lameduck's own (drain watcher, watchdog, date ticker). Cancelled when the service stops.
- WebSocket closers: how to send close 1001 to each open WebSocket at the end of the lame-duck window.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from lameduck.core.ledger import Kind, Ledger, Result
from lameduck.errors import ShuttingDownError
from lameduck.runtime.events import emit

T = TypeVar("T")

#: Service tasks are lameduck's own and stop at once when cancelled; this only bounds a surprise. It comes out
#: of the margin after cleanup, as does the frontends' final close (servers/uvicorn.py _STOP_WAIT).
_SERVICE_STOP_WAIT = 0.2


def start(coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
    """Create a task that the caller owns: it must await it or cancel it (nothing else will)."""
    return asyncio.get_running_loop().create_task(coro, name=name)


async def together(*coros: Coroutine[Any, Any, Any], name: str) -> list[Any]:
    """Run coroutines concurrently and return their results in order, like a TaskGroup with plain awaits.

    If one raises (or the caller is cancelled), the others are cancelled *and awaited* before the error
    propagates, so no task outlives the call and no exception goes unretrieved.
    """
    tasks = [start(coro, name=f"{name}.{i}") for i, coro in enumerate(coros)]
    try:
        return [await task for task in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Tracker:
    """Owns the tasks of one running service."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        #: Tasks running app code for a WebSocket (or a request, under ``lameduck.wrap``); added by the middleware.
        self.app_tasks: set[asyncio.Task[Any]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._service: set[asyncio.Task[Any]] = set()
        self._closers: dict[asyncio.Task[Any], Callable[[], Coroutine[Any, Any, None]]] = {}
        #: Set at the drain deadline: cancellations from now on are lameduck's, and count as aborted.
        self.aborting = False
        #: Set once the drain is over (cleanup running): new background work is refused.
        self.closed = False
        #: Set when open WebSockets were asked to close: one accepted later is closed right after its accept.
        self.websockets_closing = False

    # -- tracked background work (public through lameduck.spawn) -------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Run ``coro`` as background work the drain waits for and the deadline cancels."""
        if self.closed:
            coro.close()
            raise ShuttingDownError("the drain is over; background work started now would race the cleanup hooks")
        loop = asyncio.get_running_loop()  # raises outside the loop's thread, before anything is counted
        task = loop.create_task(self._run_tracked(coro), name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _run_tracked(self, coro: Coroutine[Any, Any, T]) -> T:
        # Counted from its first step: a task cancelled before it ever ran was never in flight.
        self.ledger.begin(Kind.TASK)
        result = Result.COMPLETED
        try:
            return await coro
        except asyncio.CancelledError:
            result = Result.ABORTED if self.aborting else Result.FAILED
            raise
        except Exception:
            result = Result.FAILED
            emit("task.failed", "tracked background task raised", level=logging.ERROR, exc_info=True)
            raise
        finally:
            self.ledger.end(Kind.TASK, result)

    # -- lameduck's own tasks -------------------------------------------------------------------------------

    def service(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro, name=f"lameduck:{name}")
        self._service.add(task)
        task.add_done_callback(self._service_done)
        return task

    def _service_done(self, task: asyncio.Task[Any]) -> None:
        self._service.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            emit("service.failed", f"{task.get_name()} died", level=logging.ERROR, exc_info=exc)

    async def stop_services(self) -> None:
        for task in list(self._service):
            task.cancel()
        if self._service:
            await asyncio.wait(list(self._service), timeout=_SERVICE_STOP_WAIT)

    # -- WebSockets -----------------------------------------------------------------------------------------

    def add_closer(self, task: asyncio.Task[Any], closer: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._closers[task] = closer

    def remove_closer(self, task: asyncio.Task[Any]) -> None:
        self._closers.pop(task, None)

    def close_websockets(self) -> int:
        """Ask every open WebSocket to close with 1001 (going away); returns how many were asked."""
        self.websockets_closing = True
        closers = list(self._closers.values())
        for closer in closers:
            self.service(closer(), name="websocket-close")
        return len(closers)

    # -- the drain ------------------------------------------------------------------------------------------

    def work(self) -> set[asyncio.Task[Any]]:
        """Accepted work still running: requests, WebSockets and background tasks."""
        return self.app_tasks | self._background

    def cancel(self, tasks: set[asyncio.Task[Any]]) -> None:
        """Cancel ``tasks`` as lameduck's deadline: the middleware and ``spawn`` count them as aborted."""
        self.aborting = True
        self.closed = True
        for task in tasks:
            task.cancel("lameduck: drain deadline")
