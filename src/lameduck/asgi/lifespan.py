"""ASGI lifespan, run by lameduck instead of the server so that it can be bounded and aborted.

uvicorn's lifespan shutdown has no timeout and its startup cannot be interrupted by SIGTERM (SHUTDOWN.md §5).
Here startup runs in a task the driver can cancel, and shutdown is one of the cleanup hooks, bounded by its
deadline. Apps that do not speak lifespan (they raise on the ``lifespan`` scope before sending anything) are
treated as having nothing to start, like uvicorn's ``--lifespan auto``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from lameduck.asgi.types import ASGIApp, Message
from lameduck.errors import StartupError
from lameduck.runtime import tracking
from lameduck.runtime.events import emit


class Lifespan:
    """Drive the lifespan protocol of one app: ``startup()``, later ``shutdown()``."""

    def __init__(self, app: ASGIApp, *, state: dict[str, Any] | None = None) -> None:
        self.app = app
        #: The lifespan state (ASGI ``scope["state"]``); the server gives each request a shallow copy.
        self.state: dict[str, Any] = {} if state is None else state
        self.supported = True
        self.started = False
        self._receive: asyncio.Queue[Message] = asyncio.Queue()
        self._startup_done = asyncio.Event()
        self._shutdown_done = asyncio.Event()
        self._failure: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Run the app's startup; raise ``StartupError`` if it fails. Cancelling this aborts the app's startup."""
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        # The app's lifespan coroutine lives as long as the app; it is owned here and cancelled by abort().
        self._task = tracking.start(self._main(scope), name="lameduck:lifespan")
        await self._receive.put({"type": "lifespan.startup"})
        try:
            await self._startup_done.wait()
        except asyncio.CancelledError:
            self.abort()
            raise
        if self._failure is not None:
            raise StartupError(self._failure)
        self.started = self.supported

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the app; the caller bounds the wait."""
        if not self.started or self._task is None or self._task.done():
            return
        await self._receive.put({"type": "lifespan.shutdown"})
        try:
            await self._shutdown_done.wait()
        except asyncio.CancelledError:
            self.abort()
            raise
        if self._failure is not None:
            raise RuntimeError(f"lifespan shutdown failed: {self._failure}")

    def abort(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel("lameduck: lifespan aborted")

    async def _main(self, scope: dict[str, Any]) -> None:
        sent_anything = False

        async def send(message: Message) -> None:
            nonlocal sent_anything
            sent_anything = True
            kind = message["type"]
            if kind == "lifespan.startup.complete":
                self._startup_done.set()
            elif kind == "lifespan.startup.failed":
                self._failure = message.get("message") or "lifespan.startup.failed"
                self._startup_done.set()
            elif kind == "lifespan.shutdown.complete":
                self._shutdown_done.set()
            elif kind == "lifespan.shutdown.failed":
                self._failure = message.get("message") or "lifespan.shutdown.failed"
                self._shutdown_done.set()

        try:
            await self.app(scope, self._receive.get, send)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if not sent_anything and not self._startup_done.is_set():
                self.supported = False
                emit(
                    "lifespan.unsupported",
                    f"app does not support lifespan ({type(exc).__name__}); continuing",
                    level=logging.DEBUG,
                )
            else:
                self._failure = f"{type(exc).__name__}: {exc}"
                emit("lifespan.error", "lifespan raised", level=logging.ERROR, exc_info=exc)
        finally:
            self._startup_done.set()
            self._shutdown_done.set()
