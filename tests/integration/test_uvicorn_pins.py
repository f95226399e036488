"""Pins for every uvicorn internal lameduck.servers.uvicorn relies on, against a real uvicorn on a real socket.

If a uvicorn upgrade changes one of these, this file fails first and names the behaviour that moved.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from uvicorn.lifespan.off import LifespanOff

from lameduck.servers import listener
from lameduck.verify.client import Connection, Failure, RequestFailedError

HOST = "127.0.0.1"


def make_app(gate: asyncio.Event, close_header: bool = False) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await receive()
            return
        if scope["path"] == "/wait":
            await gate.wait()
        headers = [(b"content-length", b"2")]
        if close_header:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def start(app: Any, http: str) -> tuple[uvicorn.Server, int]:
    sock = listener.bind(HOST, 0, 128)
    config = uvicorn.Config(app, lifespan="off", http=http, log_config=None, interface="asgi3")
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = LifespanOff(config)
    await server.startup(sockets=[sock])
    return server, sock.getsockname()[1]


async def stop(server: uvicorn.Server) -> None:
    for s in server.servers:
        s.close()
    for c in list(server.server_state.connections):
        c.transport.close()


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_startup_with_sockets_connections_tasks_and_shutdown(http: str) -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        server, port = await start(make_app(gate), http)
        try:
            assert server.started
            assert len(server.servers) == 1
            idle, busy = Connection(HOST, port), Connection(HOST, port)
            assert (await idle.request()).status == 200
            waiting = asyncio.create_task(busy.request("GET", "/wait"))
            for _ in range(200):
                if server.server_state.tasks:
                    break
                await asyncio.sleep(0.005)
            assert len(server.server_state.tasks) == 1, "one task per request being served"
            conns = list(server.server_state.connections)
            assert len(conns) == 2
            idle_c = [c for c in conns if c.cycle is None or c.cycle.response_complete]
            busy_c = [c for c in conns if c.cycle is not None and not c.cycle.response_complete]
            assert len(idle_c) == 1
            assert len(busy_c) == 1
            for c in conns:
                c.shutdown()
            assert idle_c[0].transport.is_closing(), "shutdown() closes an idle connection at once"
            assert busy_c[0].cycle.keep_alive is False, "shutdown() marks a busy one to close after its response"
            gate.set()
            response = await waiting
            assert response.status == 200
            for _ in range(200):
                if not server.server_state.connections:
                    break
                await asyncio.sleep(0.005)
            # (h11 closes without adding the header; lameduck's middleware adds Connection: close itself.)
            assert not server.server_state.connections, "the busy connection closes after its response"
            with pytest.raises(RequestFailedError) as lost:
                await idle.request()
            assert lost.value.failure in (Failure.EOF, Failure.RESET)
        finally:
            await stop(server)

    asyncio.run(scenario())


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_app_sent_connection_close_is_honoured(http: str) -> None:
    async def scenario() -> None:
        server, port = await start(make_app(asyncio.Event(), close_header=True), http)
        try:
            conn = Connection(HOST, port)
            response = await conn.request()
            assert response.closes
            assert not conn.open, "uvicorn closes the connection after a Connection: close response"
            await asyncio.sleep(0.05)
            assert not server.server_state.connections
        finally:
            await stop(server)

    asyncio.run(scenario())


def test_on_tick_refreshes_the_date_header() -> None:
    async def scenario() -> None:
        server, _port = await start(make_app(asyncio.Event()), "httptools")
        try:
            server.server_state.default_headers = []
            await server.on_tick(0)
            names = [k for k, _ in server.server_state.default_headers]
            assert b"date" in names
        finally:
            await stop(server)

    asyncio.run(scenario())


def test_websocket_protocols_have_no_cycle() -> None:
    """close_idle() tells WebSockets from HTTP connections by the missing ``cycle`` attribute."""
    websockets = pytest.importorskip("websockets.asyncio.client")

    async def scenario() -> None:
        server, port = await start(make_app(asyncio.Event()), "httptools")
        try:
            async with websockets.connect(f"ws://{HOST}:{port}/ws"):
                await asyncio.sleep(0.05)
                conns = list(server.server_state.connections)
                assert conns
                assert all(not hasattr(c, "cycle") for c in conns)
                assert all(hasattr(c, "shutdown") for c in conns)
        finally:
            await stop(server)

    asyncio.run(scenario())


def test_lifespan_off_state_is_copied_into_each_request() -> None:
    """lameduck runs the lifespan and puts its state in LifespanOff.state; uvicorn copies it per request."""
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["state"])
        scope["state"]["mutated"] = True
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    async def scenario() -> None:
        sock = listener.bind(HOST, 0, 128)
        config = uvicorn.Config(app, lifespan="off", http="httptools", log_config=None, interface="asgi3")
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = LifespanOff(config)
        shared = {"pool": "db"}
        server.lifespan.state = shared
        await server.startup(sockets=[sock])
        try:
            conn = Connection(HOST, sock.getsockname()[1])
            await conn.request()
            await conn.request()
            conn.close()
        finally:
            await stop(server)
        assert [s["pool"] for s in seen] == ["db", "db"]
        assert seen[0] is not seen[1], "a copy per request"
        assert "mutated" not in shared

    asyncio.run(scenario())


def test_lifespan_off_and_loop_factory() -> None:
    config = uvicorn.Config(make_app(asyncio.Event()), lifespan="off", loop="auto")
    assert LifespanOff(config).state == {}
    factory = config.get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
    finally:
        loop.close()
