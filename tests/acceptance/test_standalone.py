"""Acceptance: ``lameduck.wrap`` under a plain ``uvicorn`` process started by the user."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lameduck.verify.client import Failure, RequestFailedError, get
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.acceptance
HOST = "127.0.0.1"


def test_wrap_gives_readiness_flip_lame_duck_window_and_hooks_under_uvicorn() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMEDUCK_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.apps.standalone:app", "--port", str(port), "--log-level", "warning"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:

        async def scenario() -> dict[str, object]:
            facts: dict[str, object] = {}
            deadline = time.monotonic() + 15
            while True:
                try:
                    if (await get(HOST, port, "/health/ready", timeout=2)).status == 200:
                        break
                except RequestFailedError:
                    pass
                assert time.monotonic() < deadline, "uvicorn never became ready"
                await asyncio.sleep(0.05)
            facts["state"] = (await get(HOST, port, "/state")).body
            slow = asyncio.create_task(get(HOST, port, "/slow?s=1.5"))
            await asyncio.sleep(0.2)
            sent = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            while (await get(HOST, port, "/health/ready")).status == 200:
                assert time.perf_counter() - sent < 5
            facts["flip"] = time.perf_counter() - sent
            during = await get(HOST, port, "/")
            facts["during"] = (during.status, during.closes)
            facts["slow"] = (await slow).status
            await asyncio.sleep(max(0.0, sent + 1.6 - time.perf_counter()))
            try:
                await get(HOST, port, "/", timeout=3)
                facts["after"] = "served"
            except RequestFailedError as exc:
                facts["after"] = exc.failure
            return facts

        facts = asyncio.run(scenario())
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert facts["state"] == b"connected\n", "the lifespan state reaches requests under wrap too"
    assert facts["flip"] < 0.1  # type: ignore[operator]
    assert facts["during"] == (200, True)
    assert facts["slow"] == 200
    assert facts["after"] is Failure.REFUSED
    assert proc.returncode == -signal.SIGTERM, "uvicorn re-raises SIGTERM: the exit code stays uvicorn's"
    assert b"hook ok done" in out
    assert b"lifespan shutdown" in out
    summaries = [json.loads(line) for line in err.decode().splitlines() if "lameduck.summary" in line]
    assert len(summaries) == 1
    assert summaries[0]["outcome"] == "clean"
