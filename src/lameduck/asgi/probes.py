"""The probe endpoints: liveness, readiness and startup, as a tiny ASGI app.

Bodies are one word by default (``ok``, ``draining``): no stack traces, hostnames or dependency names unless
``--probe-verbose`` is on. Responses are never cached and never kept alive while the service is stopping.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from lameduck.asgi.types import Receive, Scope, Send
from lameduck.config import Settings
from lameduck.runtime.driver import Driver

Answer = Callable[[], Awaitable[tuple[bool, str, list[dict[str, Any]]]]]


class Probes:
    """``GET``/``HEAD`` on the three probe paths; 404 elsewhere (only reached on a dedicated probe port)."""

    def __init__(self, driver: Driver, settings: Settings) -> None:
        self.driver = driver
        self.verbose = settings.probe_verbose
        self.routes: dict[str, Answer] = {
            settings.live_path: driver.liveness,
            settings.ready_path: driver.readiness,
            settings.startup_path: driver.started,
        }
        self.paths = frozenset(self.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        answer = self.routes.get(scope["path"])
        if answer is None:
            await _respond(send, 404, b"not found\n")
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", extra=[(b"allow", b"GET, HEAD")])
            return
        ok, status, failed = await answer()
        body = verbose_body(ok, status, failed, self.driver) if self.verbose else status.encode() + b"\n"
        content_type = b"application/json" if self.verbose else b"text/plain; charset=utf-8"
        extra = [(b"connection", b"close")] if self.driver.connection_close else []
        await _respond(
            send,
            200 if ok else 503,
            b"" if scope["method"] == "HEAD" else body,
            content_type=content_type,
            extra=extra,
            length=len(body),
        )


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"text/plain; charset=utf-8",
    extra: list[tuple[bytes, bytes]] | None = None,
    length: int | None = None,
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body) if length is None else length).encode()),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def verbose_body(ok: bool, status: str, failed: list[dict[str, Any]], driver: Driver) -> bytes:
    """The probe body when ``--probe-verbose`` is on: phase, counts and failing checks."""
    stats = driver.lifecycle.statistics(driver.now())
    return json.dumps(
        {
            "ok": ok,
            "status": status,
            "phase": str(stats.phase),
            "in_flight": stats.ledger.total_in_flight,
            "deadline_in": stats.deadline_in,
            "failed_checks": failed,
            "kinds": {str(k): v for k, v in stats.ledger.in_flight.items() if v},
        }
    ).encode()
