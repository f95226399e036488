"""The app the acceptance tests serve. Plain ASGI; behaviour selected by path and environment.

Routes: ``/`` fast 200; ``/slow?s=N`` sleeps N s; ``/hang`` never answers (prints ``hang cancelled`` when
lameduck cancels it); ``/spawn?s=N`` starts tracked background work; ``/deadline`` reports ``time_left()``;
``/block?s=N`` blocks the event loop; ``/ws`` a WebSocket that waits for the server to close it.
Env ``APP_STARTUP_DELAY`` slows lifespan startup, ``APP_STARTUP_FAIL`` makes it fail, ``APP_HOOKS`` registers
cleanup hooks (``ok``, ``slow``, ``fail``, ``cancel``). ``/stubborn`` swallows every cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any
from urllib.parse import parse_qs

import lameduck


def out(text: str) -> None:
    print(text, flush=True)


for _name in filter(None, os.environ.get("APP_HOOKS", "ok").split(",")):

    def _make(name: str) -> Any:
        async def hook() -> None:
            out(f"hook {name} start")
            if name == "slow":
                await asyncio.sleep(30)
            if name == "fail":
                raise RuntimeError("hook failed on purpose")
            if name == "cancel":  # the common "task.cancel(); await task" idiom lets CancelledError escape
                task = asyncio.ensure_future(asyncio.sleep(10))
                task.cancel()
                await task
            out(f"hook {name} done")

        hook.__qualname__ = f"hook_{name}"
        return hook

    lameduck.on_cleanup(_make(_name), timeout=0.5 if _name == "slow" else None)


CHECK_CALLS = [0]

if os.environ.get("APP_SLOW_CHECK"):

    @lameduck.readiness_check(timeout=2.0, cache=5.0)
    async def slow_dependency() -> bool:
        CHECK_CALLS[0] += 1
        await asyncio.sleep(0.3)  # a dependency that is slow to answer: the probe storm must not multiply it
        return True


if os.environ.get("APP_READY_FILE"):

    @lameduck.readiness_check(timeout=0.5, cache=0.0)
    def ready_file() -> bool:
        return os.path.exists(os.environ["APP_READY_FILE"])


async def _text(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            out("lifespan startup")
            scope["state"]["pool"] = "connected"  # ASGI lifespan state: every request sees a copy
            try:
                await asyncio.sleep(float(os.environ.get("APP_STARTUP_DELAY", "0")))
            except asyncio.CancelledError:
                out("startup cancelled")
                raise
            if os.environ.get("APP_STARTUP_FAIL"):
                await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            out("lifespan shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _background(seconds: float) -> None:
    await asyncio.sleep(seconds)
    out(f"background done {seconds:g}")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                out(f"ws disconnect {message.get('code')}")
                return
            await send({"type": "websocket.send", "text": message.get("text") or ""})
    query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
    path = scope["path"]
    if path == "/slow":
        await asyncio.sleep(float(query.get("s", "1")))
        await _text(send, 200, b"slow done\n")
    elif path == "/hang":
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            out("hang cancelled")
            raise
    elif path == "/stubborn":
        for _ in range(100):  # swallows every cancellation: only the exit guard ends the process
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)
    elif path == "/state":
        await _text(send, 200, f"{scope.get('state', {}).get('pool')}\n".encode())
    elif path == "/checks":
        await _text(send, 200, f"{CHECK_CALLS[0]}\n".encode())
    elif path == "/outbound":
        import httpx  # a test dependency: the outbound call lameduck's cancellation must reach

        async with httpx.AsyncClient(timeout=lameduck.time_left(default=60.0, reserve=0.5)) as client:
            try:
                response = await client.get(query["url"])
            except asyncio.CancelledError:
                out("outbound cancelled")
                raise
            except httpx.TimeoutException:
                await _text(send, 504, b"upstream timed out before the drain deadline\n")
                return
        await _text(send, 200, response.content)
    elif path == "/spawn":
        lameduck.spawn(_background(float(query.get("s", "1"))), name="background")
        await _text(send, 202, b"spawned\n")
    elif path == "/block":
        time.sleep(float(query.get("s", "1")))  # noqa: ASYNC251 - blocks the loop on purpose (watchdog test)
        await _text(send, 200, b"blocked\n")
    elif path == "/deadline":
        await _text(send, 200, f"{lameduck.time_left()} {lameduck.is_draining()}\n".encode())
    else:
        await _text(send, 200, b"hello\n")
