"""The public runtime API for application code: deadlines, tracked tasks, hooks and checks.

One lameduck service runs per process, so "the current service" is a process-wide slot set by the driver while
it runs. Registration (``on_cleanup``, the check decorators) works at import time, before anything runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, overload

from lameduck.errors import NotRunningError
from lameduck.runtime import hooks
from lameduck.runtime.driver import Driver

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_current: Driver | None = None


def _set_current(driver: Driver | None) -> None:
    global _current  # noqa: PLW0603 - the one process-wide slot, owned by lameduck.serve
    _current = driver


def current() -> Driver:
    """The running service's driver; raises ``NotRunningError`` outside ``lameduck serve``/``lameduck.run``."""
    if _current is None:
        raise NotRunningError(
            "no lameduck service is running in this process; consider checking lameduck.is_running() first"
        )
    return _current


def is_running() -> bool:
    return _current is not None


def is_draining() -> bool:
    """True from the first SIGTERM/SIGINT on: new work should be short, and outbound calls bounded."""
    return _current is not None and _current.lifecycle.is_stopping()


def drain_deadline() -> float | None:
    """When work still running will be cancelled, as ``loop.time()``; None until shutdown starts.

    Made for ``asyncio.timeout_at(lameduck.drain_deadline())``: the deadline is absolute, so nested waits
    cannot stretch it.
    """
    if _current is None:
        return None
    deadline = _current.lifecycle.drain_deadline
    return None if deadline is None else deadline.at


def time_left(default: float | None = None, *, reserve: float = 0.0) -> float | None:
    """Seconds until the drain deadline minus ``reserve`` (never negative), or ``default`` before shutdown.

    Made for outbound timeouts: ``httpx.get(url, timeout=lameduck.time_left(default=10, reserve=0.5))`` gives
    up on the call ``reserve`` seconds before the deadline, leaving the handler time to answer (a 504, say)
    instead of being cancelled mid-call.
    """
    at = drain_deadline()
    if at is None or _current is None:
        return default
    left = max(0.0, at - _current.now() - reserve)
    return left if default is None else min(left, default)


async def wait_draining() -> None:
    """Return once shutdown has started (the first signal)."""
    await current().stopping.wait()


def spawn(coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
    """Start background work that the drain waits for and the deadline cancels (counted as ``task``).

    Raises ``ShuttingDownError`` once cleanup has begun, ``NotRunningError`` outside a running service.
    """
    return current().tracker.spawn(coro, name=name)


def request_stop() -> None:
    """Begin the same shutdown a SIGTERM would (a second call forces it). Never blocks."""
    current().request_stop("api")


# -- registration (works at import time) -----------------------------------------------------------------


@overload
def on_cleanup(fn: F, /) -> F: ...
@overload
def on_cleanup(*, name: str | None = None, timeout: float | None = None) -> Callable[[F], F]: ...
def on_cleanup(
    fn: F | None = None, /, *, name: str | None = None, timeout: float | None = None
) -> F | Callable[[F], F]:
    """Register a cleanup hook (sync or async, no arguments); usable bare or as ``@on_cleanup(timeout=1)``.

    Hooks run after the drain, also when it was forced, in reverse order of registration; each gets its own
    ``timeout`` (default: whatever is left of ``--cleanup-timeout``). A hook that fails or times out makes the
    exit code 1; the next hook still runs.
    """

    def register(f: F) -> F:
        hooks.DEFAULT.add_hook(f, name=name, timeout=timeout)
        return f

    return register(fn) if fn is not None else register


def _check_decorator(kind: hooks.CheckKind) -> Any:
    def decorator(
        fn: F | None = None, /, *, name: str | None = None, timeout: float = 1.0, cache: float = 1.0
    ) -> F | Callable[[F], F]:
        def register(f: F) -> F:
            hooks.DEFAULT.add_check(f, kind, name=name, timeout=timeout, cache=cache)
            return f

        return register(fn) if fn is not None else register

    decorator.__name__ = f"{kind}_check"
    decorator.__doc__ = (
        f"Register a {kind} check: a sync or async callable returning truthy (or None) when healthy; a falsy "
        f"result, an exception or a timeout (default 1 s) fails the probe. Results are cached ``cache`` seconds."
    )
    return decorator


readiness_check = _check_decorator(hooks.CheckKind.READINESS)
liveness_check = _check_decorator(hooks.CheckKind.LIVENESS)
startup_check = _check_decorator(hooks.CheckKind.STARTUP)
