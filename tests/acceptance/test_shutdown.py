"""Acceptance: real ``lameduck serve`` processes, real sockets, real signals (issue #2, items 1-5).

Timed assertions carry generous margins (shared, noisy machines); the tight numbers live in bench/.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import pytest

from lameduck.verify.client import Connection, Failure, RequestFailedError, Response, get

pytestmark = pytest.mark.acceptance
HOST = "127.0.0.1"


async def _wait_in_flight(port: int, n: int, timeout: float = 10.0) -> None:
    """Poll the verbose liveness probe until ``n`` requests are in flight (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = json.loads((await get(HOST, port, "/health/live")).body)
        if body["in_flight"] >= n:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{n} requests never got in flight")


def test_inflight_requests_complete_then_exit_0(serve: Any) -> None:
    """1. 50 concurrent slow requests in flight at SIGTERM all complete with 200; exit 0."""
    svc = serve("tests.apps.basic:app", "--probe-verbose")

    async def scenario() -> list[Response]:
        tasks = [asyncio.create_task(get(HOST, svc.port, "/slow?s=1.5")) for _ in range(50)]
        await _wait_in_flight(svc.port, 50)
        svc.send(signal.SIGTERM)
        return await asyncio.gather(*tasks)

    responses = asyncio.run(scenario())
    assert [r.status for r in responses] == [200] * 50
    assert all(r.closes for r in responses), "responses started after SIGTERM must carry Connection: close"
    assert svc.wait(15) == 0
    summary = svc.summary()
    assert summary["outcome"] == "clean"
    assert summary["completed"]["request"] >= 50
    assert summary["aborted"] == {}


def test_idle_keepalive_connections_do_not_delay_exit(serve: Any) -> None:
    """2. 1000 idle keep-alive connections: with lame-duck 0, exit well under 1 s after SIGTERM."""
    svc = serve("tests.apps.basic:app", "--lame-duck", "0")

    async def open_idle(n: int) -> list[Connection]:
        conns = [Connection(HOST, svc.port) for _ in range(n)]
        sem = asyncio.Semaphore(100)

        async def one(c: Connection) -> None:
            async with sem:
                r = await c.request("GET", "/")
                assert r.status == 200
                assert not r.closes

        await asyncio.gather(*(one(c) for c in conns))
        return conns

    async def scenario() -> float:
        conns = await open_idle(1000)
        await asyncio.sleep(0.2)
        sent = svc.send(signal.SIGTERM)
        await asyncio.to_thread(svc.proc.wait, 10)
        elapsed = time.perf_counter() - sent
        for c in conns:
            c.close()
        return elapsed

    elapsed = asyncio.run(scenario())
    assert svc.wait(5) == 0
    assert elapsed < 1.0, f"exit took {elapsed:.3f} s with 1000 idle connections"
    assert svc.summary()["idle_closed"] >= 1000


def test_busy_keepalive_clients_lose_nothing(serve: Any) -> None:
    """3. Clients looping on keep-alive connections through SIGTERM lose no request after sending it; every
    response after SIGTERM carries Connection: close; after the window they are refused, never reset."""
    svc = serve("tests.apps.basic:app", "--lame-duck", "1.5")
    kill_at: list[float] = []
    results: list[tuple[float, Response]] = []
    failures: list[tuple[float, Failure]] = []

    async def client(i: int) -> None:
        conn = Connection(HOST, svc.port)
        stop = time.monotonic() + 15
        while time.monotonic() < stop:
            try:
                response = await conn.request("POST" if i % 2 else "GET", "/", body=b"x" * (i % 2), timeout=5)
            except RequestFailedError as exc:
                failures.append((time.perf_counter(), exc.failure))
                if exc.failure is Failure.REFUSED:
                    return  # the listener is closed: the expected, safe end
                continue
            results.append((response.sent_at, response))
        conn.close()

    async def scenario() -> None:
        clients = [asyncio.create_task(client(i)) for i in range(16)]
        await asyncio.sleep(0.5)
        kill_at.append(svc.send(signal.SIGTERM))
        await asyncio.gather(*clients)

    asyncio.run(scenario())
    assert svc.wait(15) == 0
    lost = [f for _, f in failures if f.lost]
    assert lost == [], f"requests lost after being sent: {lost}"
    assert {f for _, f in failures} == {Failure.REFUSED}
    assert len(failures) == 16, "every client must end on a refused connect"
    after = [r for sent, r in results if sent > kill_at[0] + 0.05]
    assert len(after) > 100, "the app must keep serving during the lame-duck window"
    assert all(r.status == 200 for _, r in results)
    assert all(r.closes for r in after), "every response after SIGTERM carries Connection: close"


def test_readiness_flips_fast_liveness_stays_and_new_connections_are_refused(serve: Any) -> None:
    """4. Readiness 503 within 100 ms of SIGTERM while app routes still answer 200 in the lame-duck window;
    liveness 200 until exit; after the window new connections are refused, not reset."""
    svc = serve("tests.apps.basic:app", "--lame-duck", "1.5", "--probe-port", "0")
    probe = svc.probe_port
    assert probe is not None

    async def scenario() -> dict[str, Any]:
        facts: dict[str, Any] = {}
        assert (await get(HOST, probe, "/health/ready")).status == 200
        app_probe = await get(HOST, svc.port, "/health/ready")
        assert app_probe.status == 200, "with --probe-port the app port serves only the app"
        assert app_probe.body == b"hello\n"
        keeper = asyncio.create_task(get(HOST, svc.port, "/slow?s=3.5"))  # keeps the process up after the window
        await asyncio.sleep(0.3)
        sent = svc.send(signal.SIGTERM)
        while (await get(HOST, probe, "/health/ready")).status == 200:
            assert time.perf_counter() - sent < 5
        facts["flip"] = time.perf_counter() - sent
        during = await get(HOST, svc.port, "/")
        facts["during"] = (during.status, during.closes)
        facts["live_during"] = (await get(HOST, probe, "/health/live")).status
        await asyncio.sleep(max(0.0, sent + 1.5 + 0.4 - time.perf_counter()))
        try:
            await get(HOST, svc.port, "/", timeout=5)
            facts["after"] = "served"
        except RequestFailedError as exc:
            facts["after"] = exc.failure
        facts["live_after_window"] = (await get(HOST, probe, "/health/live")).status
        statuses = []
        while svc.proc.poll() is None:
            try:
                statuses.append((await get(HOST, probe, "/health/live", timeout=2)).status)
            except RequestFailedError as exc:
                statuses.append(str(exc.failure))
            await asyncio.sleep(0.05)
        facts["live_until_exit"] = statuses
        facts["keeper"] = (await keeper).status
        return facts

    facts = asyncio.run(scenario())
    assert svc.wait(10) == 0
    assert facts["flip"] < 0.1, f"readiness took {facts['flip'] * 1000:.1f} ms to flip"
    assert facts["during"] == (200, True)
    assert facts["live_during"] == 200
    assert facts["after"] is Failure.REFUSED
    assert facts["live_after_window"] == 200
    served = [s for s in facts["live_until_exit"] if isinstance(s, int)]
    assert served, "liveness was probed while the drain finished"
    assert set(served) == {200}, facts["live_until_exit"]
    assert all(s == "refused" for s in facts["live_until_exit"] if not isinstance(s, int))
    assert facts["keeper"] == 200


def test_hung_request_is_cancelled_at_the_deadline(serve: Any) -> None:
    """5. A hung request: exit at the drain deadline with exit 1; hooks ran; one aborted request counted."""
    svc = serve("tests.apps.basic:app", "--grace", "10", "--drain-timeout", "1", env={"APP_HOOKS": "first,second"})

    async def scenario() -> tuple[Response, float]:
        hung = asyncio.create_task(get(HOST, svc.port, "/hang", timeout=10))
        await asyncio.sleep(0.3)
        sent = svc.send(signal.SIGTERM)
        response = await hung
        await asyncio.to_thread(svc.proc.wait, 10)
        return response, time.perf_counter() - sent

    response, elapsed = asyncio.run(scenario())
    assert svc.wait(5) == 1
    assert 1.0 <= elapsed < 3.5, f"exit {elapsed:.2f} s after SIGTERM; the drain deadline was 1 s"
    assert response.status == 503
    assert response.closes
    assert "hang cancelled" in svc.stdout, "the handler must see the cancellation"
    assert svc.stdout.index("hook second done") < svc.stdout.index("hook first start"), "reverse order"
    summary = svc.summary()
    assert summary["outcome"] == "aborted"
    assert summary["aborted"] == {"request": 1}
    assert summary["forced"] is True
    assert svc.named("lameduck.drain.deadline")


def test_lifespan_state_reaches_requests(serve: Any) -> None:
    svc = serve("tests.apps.basic:app")
    assert asyncio.run(get(HOST, svc.port, "/state")).body == b"connected\n"
    svc.send(signal.SIGTERM)
    assert svc.wait(10) == 0


def test_tracked_background_task_is_awaited(serve: Any) -> None:
    svc = serve("tests.apps.basic:app")

    async def scenario() -> None:
        assert (await get(HOST, svc.port, "/spawn?s=1.2")).status == 202
        svc.send(signal.SIGTERM)

    asyncio.run(scenario())
    assert svc.wait(10) == 0
    assert "background done 1.2" in svc.stdout
    assert svc.summary()["completed"]["task"] == 1


def test_background_task_is_cancelled_at_the_deadline(serve: Any) -> None:
    svc = serve("tests.apps.basic:app", "--grace", "10", "--drain-timeout", "0.5")

    async def scenario() -> None:
        assert (await get(HOST, svc.port, "/spawn?s=30")).status == 202
        svc.send(signal.SIGTERM)

    asyncio.run(scenario())
    assert svc.wait(10) == 1
    assert svc.summary()["aborted"] == {"task": 1}


def test_time_left_tells_handlers_the_deadline(serve: Any) -> None:
    svc = serve("tests.apps.basic:app", "--lame-duck", "1", "--grace", "20", "--drain-timeout", "10")

    async def scenario() -> tuple[bytes, bytes]:
        before = (await get(HOST, svc.port, "/deadline")).body
        svc.send(signal.SIGTERM)
        await asyncio.sleep(0.2)
        during = (await get(HOST, svc.port, "/deadline")).body
        return before, during

    before, during = asyncio.run(scenario())
    assert before == b"None False\n"
    left, draining = during.split()
    assert draining == b"True"
    assert 9.5 < float(left) <= 11.0, "lame-duck 1 + drain 10, minus the 0.2 s already gone"
    assert svc.wait(10) == 0


def test_websockets_get_1001_at_the_end_of_the_window(serve: Any) -> None:
    websockets = pytest.importorskip("websockets.asyncio.client")
    svc = serve("tests.apps.basic:app", "--lame-duck", "1")

    async def scenario() -> tuple[int | None, float]:
        async with websockets.connect(f"ws://{HOST}:{svc.port}/ws") as ws:
            await ws.send("ping")
            assert await ws.recv() == "ping"
            sent = svc.send(signal.SIGTERM)
            await ws.send("still open in the window")
            assert await ws.recv() == "still open in the window"
            try:
                async with asyncio.timeout(10):
                    await ws.recv()
            except Exception:
                pass
            return ws.close_code, time.perf_counter() - sent

    code, elapsed = asyncio.run(scenario())
    assert code == 1001
    assert 0.9 < elapsed < 3.0
    assert svc.wait(10) == 0
    assert svc.summary()["completed"]["websocket"] == 1
