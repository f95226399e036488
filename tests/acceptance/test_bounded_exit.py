"""Acceptance: the process ends inside the grace period even when the app misbehaves (review findings)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

import pytest

from lameduck.verify.client import RequestFailedError, get

pytestmark = pytest.mark.acceptance
HOST = "127.0.0.1"


def test_a_handler_that_swallows_cancellation_cannot_hold_the_process(serve: Any) -> None:
    svc = serve("tests.apps.basic:app", "--grace", "6", "--cleanup-timeout", "1")

    async def scenario() -> float:
        stuck = asyncio.create_task(get(HOST, svc.port, "/stubborn", timeout=20))
        await asyncio.sleep(0.3)
        sent = svc.send(signal.SIGTERM)
        await asyncio.to_thread(svc.proc.wait, 20)
        stuck.cancel()
        return time.perf_counter() - sent

    elapsed = asyncio.run(scenario())
    assert svc.wait(5) == 1
    assert elapsed < 6.0, f"exit after {elapsed:.2f} s, past the 6 s grace"
    assert svc.named("lameduck.drain.abandoned")
    assert svc.summary()["aborted"] == {"request": 1}


def test_a_hook_raising_cancelled_error_fails_alone(serve: Any) -> None:
    svc = serve("tests.apps.basic:app", env={"APP_HOOKS": "first,cancel,last"})
    svc.send(signal.SIGTERM)
    assert svc.wait(10) == 1
    assert "hook first done" in svc.stdout, "the hooks after a failing one still run"
    summary = svc.summary()
    assert summary["failed_hooks"] == ["hook_cancel"]


def test_deadlines_count_from_the_signal_even_when_the_loop_is_blocked(serve: Any) -> None:
    svc = serve("tests.apps.basic:app", "--grace", "6", "--cleanup-timeout", "1")

    async def scenario() -> float:
        slow = asyncio.create_task(get(HOST, svc.port, "/slow?s=30", timeout=20))
        blocker = asyncio.create_task(get(HOST, svc.port, "/block?s=3", timeout=20))
        await asyncio.sleep(0.5)
        sent = svc.send(signal.SIGTERM)  # arrives while the loop is blocked for ~2.5 s more
        await asyncio.to_thread(svc.proc.wait, 20)
        for task in (slow, blocker):
            with contextlib.suppress(RequestFailedError):
                await task
        return time.perf_counter() - sent

    elapsed = asyncio.run(scenario())
    assert svc.wait(5) == 1
    # drain deadline = signal + 0 + 3 s (6 - 1 - 2); the blocked 2.5 s must not be added on top.
    assert elapsed < 5.0, f"exit {elapsed:.2f} s after SIGTERM; grace is 6 s"
