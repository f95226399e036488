"""Health: readiness, liveness and startup answers, with cached checks and an event-loop watchdog.

Checks run with a timeout and their results are cached for ``check.cache`` seconds; concurrent probes share one
run in flight (single flight), so a probe storm costs the dependency one call per cache period at most.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass

from lameduck.runtime import tracking
from lameduck.runtime.events import emit
from lameduck.runtime.hooks import Check, CheckKind, call_bounded

#: How often the watchdog measures event-loop lag.
WATCHDOG_INTERVAL = 0.5
#: A block longer than the threshold keeps liveness failing this long after it ended, so that a probe
#: (period 10 s by default) sees it even if the loop recovered in between.
WATCHDOG_HOLD = 30.0


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


@dataclass(slots=True)
class _Cached:
    result: CheckResult
    until: float


class Health:
    """Evaluates registered checks with caching; tracks event-loop blocking for liveness."""

    def __init__(self, checks: list[Check], *, watchdog: float) -> None:
        self._checks = checks
        self._cache: dict[str, _Cached] = {}
        self._inflight: dict[str, asyncio.Task[CheckResult]] = {}
        self.watchdog_threshold = watchdog
        self._blocked_until = 0.0
        self._blocked_for = 0.0

    async def evaluate(self, kind: CheckKind) -> list[CheckResult]:
        checks = [c for c in self._checks if c.kind is kind]
        if not checks:
            return []
        return list(await asyncio.gather(*(self._one(c) for c in checks)))

    async def _one(self, check: Check) -> CheckResult:
        loop = asyncio.get_running_loop()
        cached = self._cache.get(check.name)
        if cached is not None and loop.time() < cached.until:
            return cached.result
        task = self._inflight.get(check.name)
        if task is None:
            task = tracking.start(self._run(check), name=f"lameduck-check:{check.name}")  # awaited by every probe
            self._inflight[check.name] = task
            task.add_done_callback(functools.partial(self._forget, check.name))
        return await asyncio.shield(task)

    def _forget(self, name: str, _task: asyncio.Task[CheckResult]) -> None:
        self._inflight.pop(name, None)

    async def _run(self, check: Check) -> CheckResult:
        loop = asyncio.get_running_loop()
        try:
            value = await call_bounded(check.fn, loop.time() + check.timeout)
        except TimeoutError:
            result = CheckResult(check.name, False, f"timed out after {check.timeout:g} s")
        except Exception as exc:
            result = CheckResult(check.name, False, f"{type(exc).__name__}: {exc}")
        else:
            ok = value is None or bool(value)
            result = CheckResult(check.name, ok, "ok" if ok else "returned false")
        if not result.ok:
            emit(
                "check.failed",
                f"{check.kind} check {check.name} failed: {result.detail}",
                level=logging.WARNING,
                check=check.name,
                kind=str(check.kind),
            )
        self._cache[check.name] = _Cached(result, loop.time() + check.cache)
        return result

    # -- the watchdog ---------------------------------------------------------------------------------------

    def loop_blocked(self, now: float) -> float | None:
        """Seconds of the last block over the threshold, while it still counts against liveness."""
        if self.watchdog_threshold > 0 and now < self._blocked_until:
            return self._blocked_for
        return None

    async def watch_loop(self) -> None:
        """Measure how late a timer fires; a late timer means the loop was blocked that long."""
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(WATCHDOG_INTERVAL)
            lag = loop.time() - before - WATCHDOG_INTERVAL
            if self.watchdog_threshold > 0 and lag > self.watchdog_threshold:
                self._blocked_for = lag
                self._blocked_until = loop.time() + WATCHDOG_HOLD
                emit(
                    "watchdog.blocked",
                    f"event loop was blocked for {lag:.1f} s",
                    level=logging.ERROR,
                    seconds=round(lag, 3),
                    threshold=self.watchdog_threshold,
                )
