"""A small ASGI app (no framework) that shows what lameduck does for you.

Run it:  lameduck serve examples.hello:app      (or ./scripts/demo)
Then:    curl localhost:8000/            -> hello
         curl localhost:8000/slow?s=3    -> answers after 3 s, even if you press Ctrl-C meanwhile
         curl localhost:8000/health/ready
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

import lameduck

state: dict[str, Any] = {}


@lameduck.on_cleanup(timeout=1.0)
async def say_goodbye() -> None:
    print("cleanup hook ran", flush=True)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                state["greeting"] = b"hello\n"
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    query = parse_qs(scope.get("query_string", b"").decode())
    if scope["path"] == "/slow":
        seconds = min(float(query.get("s", ["2"])[0]), 60.0)
        await asyncio.sleep(seconds)
        body = f"slept {seconds:g} s; draining={lameduck.is_draining()}\n".encode()
    else:
        body = state.get("greeting", b"hello\n")
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
