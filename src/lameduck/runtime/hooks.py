"""Cleanup hooks and health checks registered from application code.

Hooks run after the drain (and on the forced path too), in reverse order of registration, each under its own
timeout and all under the cleanup deadline: trio's ``move_on_after(..., shield=True)``, bounded. A sync hook runs
in a daemon thread so a hook that hangs can be abandoned without holding the process open.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from lameduck.core.deadline import Deadline
from lameduck.runtime import tracking
from lameduck.runtime.events import emit

HookFn = Callable[[], Any]


@dataclass(frozen=True, slots=True)
class Hook:
    name: str
    fn: HookFn
    timeout: float | None  # None: only the cleanup deadline bounds it


class CheckKind(enum.StrEnum):
    READINESS = "readiness"
    LIVENESS = "liveness"
    STARTUP = "startup"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    kind: CheckKind
    fn: Callable[[], Any]  # sync or async; returns falsy or raises to fail
    timeout: float
    cache: float  # seconds a result is reused, so a probe storm cannot overload a dependency


@dataclass(slots=True)
class Registry:
    """What application code registered: cleanup hooks and checks. ``lameduck.on_cleanup`` etc. add here."""

    hooks: list[Hook] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def add_hook(self, fn: HookFn, *, name: str | None = None, timeout: float | None = None) -> Hook:
        if timeout is not None and timeout <= 0:
            raise ValueError(f"hook timeout must be > 0 seconds (got {timeout})")
        hook = Hook(name or _name_of(fn), fn, timeout)
        self.hooks.append(hook)
        return hook

    def add_check(
        self, fn: Callable[[], Any], kind: CheckKind, *, name: str | None, timeout: float, cache: float
    ) -> Check:
        if timeout <= 0 or cache < 0:
            raise ValueError(f"check timeout must be > 0 and cache ≥ 0 (got {timeout}, {cache})")
        check = Check(name or _name_of(fn), kind, fn, timeout, cache)
        self.checks.append(check)
        return check


#: The registry the module-level decorators use; ``lameduck.run(registry=...)`` can pass another.
DEFAULT = Registry()


def _name_of(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


async def call_bounded(fn: Callable[[], Any], deadline: float) -> Any:
    """Call sync or async ``fn`` and wait for its result until loop-time ``deadline`` (TimeoutError after).

    The call runs apart from the caller (its own task, or a daemon thread for sync code), so one that ignores
    cancellation or blocks is abandoned at the deadline instead of holding the caller.
    """
    loop = asyncio.get_running_loop()
    if inspect.iscoroutinefunction(fn):
        # Owned here: awaited until the deadline, then cancelled and abandoned.
        work: asyncio.Future[Any] = tracking.start(fn(), name=f"lameduck-call:{_name_of(fn)}")
    else:
        work = loop.create_future()

        def target() -> None:
            try:
                result = fn()
            except BaseException as exc:
                loop.call_soon_threadsafe(_settle, work, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, work, result, None)

        threading.Thread(target=target, name=f"lameduck-call:{_name_of(fn)}", daemon=True).start()
    done, _ = await asyncio.wait({work}, timeout=max(0.0, deadline - loop.time()))
    if not done:
        work.cancel()
        raise TimeoutError
    if work.cancelled():
        raise RuntimeError("cancelled itself")
    result = work.result()
    if inspect.isawaitable(result):
        return await asyncio.wait_for(result, timeout=max(0.0, deadline - loop.time()))
    return result


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


async def run_cleanup(
    hooks: list[Hook], deadline: Deadline, *, extra: list[tuple[str, Callable[[], Awaitable[Any]], float | None]]
) -> tuple[str, ...]:
    """Run ``hooks`` then ``extra`` as one list in reverse order; return the names that failed or timed out.

    ``extra`` carries hooks that register late (the ASGI lifespan shutdown registers when startup completes).
    Each hook gets its own deadline; one whose deadline has passed is not started (and counts as failed); one
    that overruns is abandoned before the next starts (an async hook is cancelled; a sync hook's thread cannot
    be stopped and runs on, as a daemon, until the process exits).
    """
    loop = asyncio.get_running_loop()
    ordered: list[tuple[str, Callable[[], Any], float | None]] = [(h.name, h.fn, h.timeout) for h in hooks]
    ordered += extra
    failed: list[str] = []
    for name, fn, timeout in reversed(ordered):
        started = time.perf_counter()
        limit = (deadline if timeout is None else deadline.min(Deadline.after(loop.time(), timeout))).at
        if limit <= loop.time():
            failed.append(name)
            emit(
                "hook.skipped",
                f"cleanup hook {name} not run: the cleanup deadline has passed",
                level=logging.ERROR,
                hook=name,
            )
            continue
        try:
            await call_bounded(fn, limit)
        except TimeoutError:
            failed.append(name)
            emit(
                "hook.timeout",
                f"cleanup hook {name} timed out",
                level=logging.ERROR,
                hook=name,
                seconds=round(time.perf_counter() - started, 3),
            )
        except Exception as exc:
            failed.append(name)
            emit("hook.failed", f"cleanup hook {name} raised {exc!r}", level=logging.ERROR, hook=name, exc_info=exc)
        else:
            emit("hook.done", hook=name, seconds=round(time.perf_counter() - started, 3), level=logging.DEBUG)
    return tuple(failed)
