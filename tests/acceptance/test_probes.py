"""Acceptance: probe semantics (readiness checks with cache, watchdog liveness, minimal bodies)."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from lameduck.verify.client import get

pytestmark = pytest.mark.acceptance
HOST = "127.0.0.1"


def test_readiness_check_failure_gives_503_with_a_minimal_body(serve: Any, tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    svc = serve("tests.apps.basic:app", env={"APP_READY_FILE": str(flag)})

    async def scenario() -> list[tuple[int, bytes]]:
        out = [(r.status, r.body) for r in [await get(HOST, svc.port, "/health/ready")]]
        flag.touch()
        out += [(r.status, r.body) for r in [await get(HOST, svc.port, "/health/ready")]]
        out += [(r.status, r.body) for r in [await get(HOST, svc.port, "/health/live")]]
        out += [(r.status, r.body) for r in [await get(HOST, svc.port, "/health/startup")]]
        return out

    assert asyncio.run(scenario()) == [(503, b"not ready\n"), (200, b"ready\n"), (200, b"ok\n"), (200, b"started\n")]
    svc.send(signal.SIGTERM)
    assert svc.wait(10) == 0


def test_verbose_probes_name_the_failing_check(serve: Any, tmp_path: Path) -> None:
    svc = serve("tests.apps.basic:app", "--probe-verbose", env={"APP_READY_FILE": str(tmp_path / "missing")})
    response = asyncio.run(get(HOST, svc.port, "/health/ready"))
    body = json.loads(response.body)
    assert response.status == 503
    assert body["failed_checks"] == [{"check": "ready_file", "detail": "returned false"}]
    assert body["phase"] == "ready"
    svc.send(signal.SIGTERM)
    assert svc.wait(10) == 0


def test_probes_reject_other_methods(serve: Any) -> None:
    svc = serve("tests.apps.basic:app")

    async def scenario() -> tuple[int, int]:
        from lameduck.verify.client import Connection

        conn = Connection(HOST, svc.port)
        try:
            post = await conn.request("POST", "/health/ready", body=b"x")
            head = await conn.request("HEAD", "/health/ready")
        finally:
            conn.close()
        return post.status, head.status

    assert asyncio.run(scenario()) == (405, 200)
    svc.send(signal.SIGTERM)
    assert svc.wait(10) == 0


def test_watchdog_fails_liveness_after_the_loop_was_blocked(serve: Any) -> None:
    svc = serve("tests.apps.basic:app", "--watchdog", "0.5")

    async def scenario() -> tuple[int, int]:
        before = (await get(HOST, svc.port, "/health/live")).status
        assert (await get(HOST, svc.port, "/block?s=1.5", timeout=10)).status == 200
        await asyncio.sleep(0.7)  # the watchdog's next tick sees the lag
        after = (await get(HOST, svc.port, "/health/live")).status
        return before, after

    assert asyncio.run(scenario()) == (200, 503)
    assert svc.named("lameduck.watchdog.blocked")
    svc.send(signal.SIGTERM)
    assert svc.wait(10) == 0
