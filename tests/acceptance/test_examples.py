"""Every example under examples/ runs as the README says."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from typing import Any

import pytest

from lameduck.verify.client import get

pytestmark = pytest.mark.acceptance
HOST = "127.0.0.1"


def test_hello_example_serves_and_drains(serve: Any) -> None:
    svc = serve("examples.hello:app", "--lame-duck", "0.5")

    async def scenario() -> tuple[bytes, bytes, int]:
        hello = await get(HOST, svc.port, "/")
        slow = asyncio.create_task(get(HOST, svc.port, "/slow?s=1"))
        await asyncio.sleep(0.2)
        sent = svc.send(signal.SIGINT)
        # Signal delivery is asynchronous: poll (bounded) for the flip; test_shutdown holds it to 100 ms.
        while (ready := await get(HOST, svc.port, "/health/ready")).status == 200:
            assert time.perf_counter() - sent < 1.0
        return hello.body, (await slow).body, ready.status

    hello, slow, ready = asyncio.run(scenario())
    assert hello == b"hello\n"
    assert slow == b"slept 1 s; draining=True\n"
    assert ready == 503
    assert svc.wait(10) == 0
    assert "cleanup hook ran" in svc.stdout
    assert svc.summary()["outcome"] == "clean"


def test_run_api_example_runs_as_written(serve: Any) -> None:
    svc = serve(
        "",
        command=[sys.executable, "examples/run_api.py"],
        env={"LAMEDUCK_PORT": "0", "LAMEDUCK_LOG_FORMAT": "json"},
    )
    assert asyncio.run(get(HOST, svc.port, "/")).body == b"hello\n"
    svc.send(signal.SIGTERM)
    assert svc.wait(10) == 0
    assert svc.summary()["outcome"] == "clean"
    assert "cleanup hook ran" in svc.stdout
    assert svc.named("lameduck.budget")[0]["cleanup"] == 2
