"""The benchmark ASGI app: plain ASGI, no framework, identical under both servers.

- ``GET /``            a tiny 200 response (``ok\\n``)
- ``GET /sleep?ms=N``  answers after ``N`` milliseconds (0 ≤ N ≤ 10000)
- ``POST /orders``     reads the body and answers 201 with its length (a non-idempotent request)
- ``GET /hang``        never answers (until the server cancels it)
- ``GET /health/ready`` and ``/health/live``: always 200, as a naive app's probes do; under ``lameduck serve``
  its own probes answer these paths first, so the same app shows the difference
"""

from __future__ import annotations

import asyncio
from typing import Any

_OK = b"ok\n"
_HEADERS_OK = [(b"content-type", b"text/plain"), (b"content-length", str(len(_OK)).encode())]
MAX_SLEEP_MS = 10_000


def _sleep_ms(query: bytes) -> int:
    for part in query.split(b"&"):
        key, _, value = part.partition(b"=")
        if key == b"ms":
            try:
                return max(0, min(int(value), MAX_SLEEP_MS))
            except ValueError:
                return 0
    return 0


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        await _lifespan(receive, send)
        return
    if kind != "http":
        return
    path = scope["path"]
    if path == "/orders" and scope["method"] == "POST":
        size = 0
        more = True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"order of %d bytes accepted\n" % size
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    if path == "/hang":
        await asyncio.Event().wait()
    if path == "/sleep":
        ms = _sleep_ms(scope.get("query_string", b""))
        await asyncio.sleep(ms / 1000)
        body = b"slept %d ms\n" % ms
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    else:
        body, headers = _OK, _HEADERS_OK
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
