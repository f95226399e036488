"""Every example under examples/ runs as the README says."""

from __future__ import annotations

import asyncio
import signal
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
        svc.send(signal.SIGINT)
        ready = await get(HOST, svc.port, "/health/ready")
        return hello.body, (await slow).body, ready.status

    hello, slow, ready = asyncio.run(scenario())
    assert hello == b"hello\n"
    assert slow == b"slept 1 s; draining=True\n"
    assert ready == 503
    assert svc.wait(10) == 0
    assert "cleanup hook ran" in svc.stdout
    assert svc.summary()["outcome"] == "clean"
