"""Acceptance: malformed input, outbound calls under cancellation, probe storms, drain progress."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from typing import Any

import pytest

from lameduck.verify.client import get

pytestmark = pytest.mark.acceptance
HOST = "127.0.0.1"

MALFORMED = [
    b"\x00\x01\x02garbage\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",  # then the client vanishes
]


def test_malformed_requests_never_crash_the_process(serve: Any) -> None:
    svc = serve("tests.apps.basic:app")
    for payload in MALFORMED:
        with socket.create_connection((HOST, svc.port), timeout=5) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            try:
                while s.recv(65536):
                    pass
            except (ConnectionResetError, TimeoutError):
                pass
    assert asyncio.run(get(HOST, svc.port, "/")).status == 200
    assert svc.proc.poll() is None
    svc.send(signal.SIGTERM)
    assert svc.wait(10) == 0


def test_cancellation_reaches_the_handlers_outbound_call(serve: Any) -> None:
    """At the deadline the handler's in-flight httpx call is cancelled: the upstream sees its connection close."""
    svc = serve("tests.apps.basic:app", "--grace", "10", "--drain-timeout", "1")
    closed_at: list[float] = []

    async def scenario() -> tuple[int, float, float]:
        async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")  # the request arrives; never answer it
            await reader.read()  # returns b"" when the client (the handler's httpx) closes
            closed_at.append(time.perf_counter())
            writer.close()

        server = await asyncio.start_server(upstream, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            call = asyncio.create_task(get(HOST, svc.port, f"/outbound?url=http://{HOST}:{port}/", timeout=15))
            await asyncio.sleep(0.5)
            sent = svc.send(signal.SIGTERM)
            response = await call
            for _ in range(100):
                if closed_at:
                    break
                await asyncio.sleep(0.02)
        return response.status, sent, closed_at[0] if closed_at else float("inf")

    status, sent, upstream_closed = asyncio.run(scenario())
    assert status == 503
    assert 0.9 < upstream_closed - sent < 2.5, "the outbound connection closes at the 1 s drain deadline"
    assert svc.wait(10) == 1
    assert "outbound cancelled" in svc.stdout


def test_outbound_calls_started_while_draining_are_bounded_by_the_deadline(serve: Any) -> None:
    """time_left() as the httpx timeout: a call started during the drain times out before the deadline."""
    svc = serve("tests.apps.basic:app", "--lame-duck", "1", "--grace", "10", "--drain-timeout", "1.5")

    async def scenario() -> tuple[int, float]:
        async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            writer.close()

        server = await asyncio.start_server(upstream, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            svc.send(signal.SIGTERM)
            await asyncio.sleep(0.3)
            began = time.perf_counter()
            response = await get(HOST, svc.port, f"/outbound?url=http://{HOST}:{port}/", timeout=15)
            return response.status, time.perf_counter() - began

    status, took = asyncio.run(scenario())
    # time_left(reserve=0.5): httpx gave up ~0.5 s before the deadline and the handler answered 504 itself.
    assert status == 504
    assert 1.2 < took < 2.2
    assert "outbound cancelled" not in svc.stdout
    assert svc.wait(10) == 0


def test_a_probe_storm_costs_the_dependency_one_call(serve: Any) -> None:
    svc = serve("tests.apps.basic:app", env={"APP_SLOW_CHECK": "1"})

    async def scenario() -> tuple[list[int], bytes]:
        probes = await asyncio.gather(*(get(HOST, svc.port, "/health/ready") for _ in range(50)))
        calls = await get(HOST, svc.port, "/checks")
        return [p.status for p in probes], calls.body

    statuses, calls = asyncio.run(scenario())
    assert statuses == [200] * 50
    assert calls == b"1\n", "50 concurrent probes shared one check run"
    svc.send(signal.SIGTERM)
    assert svc.wait(10) == 0


def test_drain_progress_is_logged_once_a_second(serve: Any) -> None:
    svc = serve("tests.apps.basic:app")

    async def scenario() -> None:
        slow = asyncio.create_task(get(HOST, svc.port, "/slow?s=2.6"))
        await asyncio.sleep(0.3)
        svc.send(signal.SIGTERM)
        assert (await slow).status == 200

    asyncio.run(scenario())
    assert svc.wait(10) == 0
    progress = svc.named("lameduck.drain.progress")
    assert 2 <= len(progress) <= 3, progress
    assert all(p["in_flight"] == 1 for p in progress)
    assert progress[0]["seconds_left"] > progress[-1]["seconds_left"]
