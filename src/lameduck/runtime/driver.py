"""The driver: feeds the lifecycle core and carries out its actions on the event loop.

It owns the signal handlers, the trigger queue, the tracker (every task), the frontends (listeners) and the
health state. The loop is strictly: wait for a trigger or the core's ``wake_at``; ``feed``; carry out each
action in order. Nothing polls a flag.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from lameduck.config import Settings
from lameduck.core.deadline import Deadline
from lameduck.core.ledger import Kind
from lameduck.core.lifecycle import (
    Action,
    CleanedUp,
    Drained,
    Lifecycle,
    Output,
    PhaseChanged,
    Progress,
    Started,
    StartFailed,
    StopRequested,
    Tick,
    Trigger,
)
from lameduck.core.outcome import Outcome
from lameduck.core.phases import Phase, Step
from lameduck.runtime import events, signals
from lameduck.runtime.checks import Health
from lameduck.runtime.events import emit
from lameduck.runtime.frontend import Frontend
from lameduck.runtime.hooks import CheckKind, Registry, run_cleanup
from lameduck.runtime.intake import Intake
from lameduck.runtime.tracking import Tracker

#: Longest wait for the kernel's accept queue to empty after new SYNs are dropped (normally < 1 ms).
LISTENER_QUIESCE_MAX = 0.5
#: Startup checks that fail are retried this often until they pass or the startup deadline passes.
STARTUP_CHECK_RETRY = 0.5
#: Longest wait for an aborted startup to unwind.
STARTUP_ABORT_WAIT = 1.0

Startup = Callable[[], Awaitable[None]]


class Driver:
    """Runs one service: ``await Driver(settings, registry).run(...)`` returns its ``Outcome``.

    The ASGI middleware reads ``plain`` on every request (and the flags behind it when it is False); they are
    plain attributes for that reason, kept in step by ``_update_plain``.
    """

    def __init__(self, settings: Settings, registry: Registry, *, track_requests: bool = False) -> None:
        self.settings = settings
        self.budget = settings.budget()
        self.registry = registry
        # loop.time() is time.monotonic() for asyncio and uvloop alike; the startup deadline starts here.
        self.lifecycle = Lifecycle(self.budget, startup_timeout=settings.startup_timeout, now=time.monotonic())
        self.tracker = Tracker(self.lifecycle.ledger)
        self.health = Health(registry.checks, watchdog=settings.watchdog)
        #: Every response from now on carries ``Connection: close`` (the lame-duck window and after).
        self.connection_close = False
        #: App requests get 503 instead of the app: before startup completed, and once cleanup has begun.
        self.refusing = True
        #: The middleware registers each request's task for the drain: only where no engine can list them
        #: (``lameduck.wrap``); ``lameduck serve`` drains and cancels uvicorn's own task set.
        self.track_requests = track_requests
        #: None of the above: the middleware's fast path (one attribute read per request).
        self.plain = False
        self.frontends: list[Frontend] = []
        self.probe_frontends: list[Frontend] = []
        #: Queue workers: they claim while ready, stop at the first signal, and drain with the requests.
        self.intakes: list[Intake] = []
        self.stopping = asyncio.Event()
        #: Set when startup is over, whichever way it went (``lameduck.wrap`` answers lifespan startup then).
        self.started_event = asyncio.Event()
        self._queue: asyncio.Queue[Trigger] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._startup_task: asyncio.Task[None] | None = None
        self._late_hooks: list[tuple[str, Callable[[], Awaitable[Any]], float | None]] = []
        #: Called with the outcome right after the summary line (the CLI arms its exit guard there).
        self.on_finished: Callable[[Outcome], None] | None = None
        self._figures: dict[str, Any] = {}

    # -- used by adapters and the public API -----------------------------------------------------------------

    def now(self) -> float:
        return self._loop.time() if self._loop is not None else time.monotonic()

    def request_stop(self, source: str = "api", at: float | None = None) -> None:
        """Start the shutdown sequence as a signal would (a second call forces). Never blocks; any thread.

        ``at``: when the request arrived (``time.monotonic()``); the budget counts from then.
        """
        arrived = time.monotonic() if at is None else at
        loop = self._loop
        if loop is None:
            self._stop(source, arrived)
        else:
            loop.call_soon_threadsafe(self._stop, source, arrived)

    def _stop(self, source: str, at: float) -> None:
        self._queue.put_nowait(StopRequested(source, at))

    def add_late_hook(self, name: str, fn: Callable[[], Awaitable[Any]], timeout: float | None) -> None:
        """Register a cleanup step discovered at runtime (the ASGI lifespan shutdown, once startup completed)."""
        self._late_hooks.append((name, fn, timeout))

    async def readiness(self) -> tuple[bool, str, list[dict[str, Any]]]:
        phase = self.lifecycle.phase
        if phase is not Phase.READY:
            return False, str(phase), []
        results = await self.health.evaluate(CheckKind.READINESS)
        failed = [{"check": r.name, "detail": r.detail} for r in results if not r.ok]
        return (not failed), ("ready" if not failed else "not ready"), failed

    async def liveness(self) -> tuple[bool, str, list[dict[str, Any]]]:
        blocked = self.health.loop_blocked(self.now())
        if blocked is not None:
            return False, "event loop blocked", [{"check": "watchdog", "detail": f"blocked {blocked:.1f} s"}]
        results = await self.health.evaluate(CheckKind.LIVENESS)
        failed = [{"check": r.name, "detail": r.detail} for r in results if not r.ok]
        return (not failed), ("ok" if not failed else "not live"), failed

    async def started(self) -> tuple[bool, str, list[dict[str, Any]]]:
        if self.lifecycle.phase is Phase.STARTING:
            return False, "starting", []
        if self.lifecycle.startup_error is not None:
            return False, "startup failed", []
        return True, "started", []

    # -- the run ---------------------------------------------------------------------------------------------

    async def run(self, startup: Startup, *, restore_signals: Callable[[], None] | None = None) -> Outcome:
        """Start the frontends and the app, serve until stopped, drain, clean up; return what happened.

        ``restore_signals``: the caller installed the signal handlers itself (``lameduck.wrap`` does, in front
        of the server's); otherwise SIGTERM/SIGINT are taken over here and restored at the end.
        """
        loop = self._loop = asyncio.get_running_loop()
        restore = restore_signals or signals.install(loop, self.request_stop)[0]
        try:
            for frontend in [*self.probe_frontends, *self.frontends]:
                await frontend.start()
                if not frontend.addresses():
                    continue
                emit(
                    "listening",
                    f"{frontend.name} listening on {', '.join(frontend.addresses())}",
                    frontend=frontend.name,
                    addresses=frontend.addresses(),
                )
            emit(
                "budget",
                "shutdown budget",
                lame_duck=self.budget.lame_duck,
                lame_duck_reason=self.settings.lame_duck_reason(),
                drain=self.budget.drain,
                cleanup=self.budget.cleanup,
                margin=self.budget.margin,
                grace=self.budget.grace,
                arithmetic=self.budget.arithmetic(),
            )
            if self.settings.watchdog > 0:
                self.tracker.service(self.health.watch_loop(), name="watchdog")
            self._startup_task = self.tracker.service(self._start(startup), name="startup")
            while self.lifecycle.phase is not Phase.STOPPED:
                trigger = await self._next_trigger(self.lifecycle.wake_at)
                for output in self.lifecycle.feed(trigger, loop.time()):
                    try:
                        await self._carry_out(output)
                    except Exception as exc:  # a failed step must not leave the process hanging
                        emit("driver.step_failed", f"{output} failed: {exc!r}", level=logging.ERROR, exc_info=exc)
        finally:
            for frontend in [*self.frontends, *self.probe_frontends]:
                try:
                    await frontend.stop()
                except Exception as exc:
                    emit("driver.step_failed", f"stopping {frontend.name}: {exc!r}", level=logging.ERROR)
            for intake in self.intakes:
                try:
                    await intake.close()
                except Exception as exc:
                    emit("driver.step_failed", f"closing {intake.name}: {exc!r}", level=logging.ERROR)
            await self.tracker.stop_services()
            restore()
        outcome = self.lifecycle.outcome()
        self._summary(outcome)
        if self.on_finished is not None:
            self.on_finished(outcome)
        return outcome

    async def _next_trigger(self, wake_at: float | None) -> Trigger:
        if not self._queue.empty():
            return self._queue.get_nowait()
        if wake_at is None:
            return await self._queue.get()
        try:
            async with asyncio.timeout_at(wake_at):
                return await self._queue.get()
        except TimeoutError:
            return Tick()

    async def _start(self, startup: Startup) -> None:
        began = time.perf_counter()
        try:
            await startup()
            for intake in self.intakes:
                await intake.open()
            await self._startup_checks()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            emit("startup.failed", f"startup failed: {exc}", level=logging.ERROR, exc_info=exc)
            self._queue.put_nowait(StartFailed(str(exc) or type(exc).__name__))
        else:
            self._figures["startup_s"] = round(time.perf_counter() - began, 3)
            self._queue.put_nowait(Started())

    async def _startup_checks(self) -> None:
        while True:
            results = await self.health.evaluate(CheckKind.STARTUP)
            if all(r.ok for r in results):
                return
            await asyncio.sleep(STARTUP_CHECK_RETRY)  # checks are pull-only; the startup deadline bounds this

    # -- actions ---------------------------------------------------------------------------------------------

    async def _carry_out(self, output: Output) -> None:
        match output:
            case PhaseChanged(old, new, event, deadline):
                if old is Phase.STARTING:
                    self.started_event.set()
                # Before startup completes, and once cleanup runs (work then would race the hooks): 503.
                self.refusing = new in (Phase.STARTING, Phase.STOPPING, Phase.STOPPED)
                self._update_plain()
                if new is Phase.STOPPING:
                    self.tracker.closed = True
                if new is Phase.DRAINING or (new is Phase.STOPPING and old is Phase.STARTING):
                    self.stopping.set()
                fields: dict[str, Any] = {
                    "from_phase": str(old),
                    "cause": event.value,
                    "in_flight": self.lifecycle.ledger.in_flight(),
                }
                if deadline is not None:
                    fields["deadline_in"] = round(deadline.remaining(self.now()), 3)
                if (stopped := self.lifecycle.stopped_at) is not None:
                    fields["since_signal_ms"] = round((self.now() - stopped) * 1000, 1)
                emit(f"phase.{new}", _PHASE_MESSAGES[new], **fields)
            case Progress(phase, in_flight, seconds_left):
                emit(
                    "drain.progress",
                    f"waiting for {in_flight} in flight, {seconds_left:.1f} s left",
                    phase=str(phase),
                    in_flight=in_flight,
                    seconds_left=round(seconds_left, 3),
                    by_kind={str(k): n for k, n in self.lifecycle.ledger.stats().in_flight.items() if n},
                )
            case Action(step, deadline):
                await self._step(step, None if deadline is None else deadline.at)

    async def _step(self, step: Step, deadline: float | None) -> None:
        match step:
            case Step.MARK_READY:
                for intake in self.intakes:
                    intake.begin()
            case Step.STOP_INTAKE:
                for intake in self.intakes:
                    intake.stop_intake()
            case Step.MARK_NOT_READY | Step.FINISH:
                pass  # readiness is derived from the phase
            case Step.CONNECTION_CLOSE:
                self.connection_close = True
                self._update_plain()
                for frontend in self.frontends:
                    frontend.begin_lame_duck()
            case Step.ABORT_STARTUP:
                if self._startup_task is not None and not self._startup_task.done():
                    self._startup_task.cancel("lameduck: stop requested during startup")
                    await asyncio.wait([self._startup_task], timeout=STARTUP_ABORT_WAIT)
            case Step.CLOSE_LISTENER:
                began = time.perf_counter()
                limit = self.now() + LISTENER_QUIESCE_MAX
                for frontend in self.frontends:
                    await frontend.close_listener(limit)
                self._figures["listener_close_ms"] = round((time.perf_counter() - began) * 1000, 2)
                emit(
                    "listener.closed", "new connections are refused from now on", ms=self._figures["listener_close_ms"]
                )
            case Step.CLOSE_IDLE:
                closed = sum(f.close_idle() for f in self.frontends)
                self._figures["idle_closed"] = closed
                emit("connections.idle_closed", f"closed {closed} idle keep-alive connection(s)", count=closed)
            case Step.CLOSE_WEBSOCKETS:
                n = self.tracker.close_websockets()
                if n:
                    emit("websockets.closing", f"sent close 1001 to {n} WebSocket(s)", count=n)
            case Step.WATCH_DRAIN:
                self.tracker.service(self._watch_drain(), name="drain-watch")
            case Step.CANCEL_REMAINING:
                await self._cancel_remaining(deadline)
            case Step.RUN_CLEANUP:
                assert deadline is not None
                failed: tuple[str, ...] = ("cleanup",)
                try:
                    failed = await run_cleanup(self.registry.hooks, Deadline(deadline), extra=self._late_hooks)
                finally:  # whatever happened, the lifecycle must get to STOPPED
                    self._queue.put_nowait(CleanedUp(failed))

    def _update_plain(self) -> None:
        self.plain = not (self.refusing or self.connection_close or self.track_requests)

    def _pending(self) -> set[asyncio.Task[Any]]:
        pending = self.tracker.work()
        for frontend in self.frontends:
            pending |= frontend.pending()
        for intake in self.intakes:
            pending |= intake.pending()
        return pending

    async def _watch_drain(self) -> None:
        """Report ``Drained`` the moment no accepted work is left: event-driven, so exit is exact."""
        while pending := self._pending():
            await asyncio.wait(pending)
        self._queue.put_nowait(Drained())

    async def _cancel_remaining(self, deadline: float | None) -> None:
        tasks = self._pending()
        in_flight = {str(k): n for k, n in self.lifecycle.ledger.stats().in_flight.items() if n}
        emit(
            "drain.deadline",
            f"cancelling {len(tasks)} task(s) still running",
            level=logging.WARNING,
            tasks=len(tasks),
            in_flight=in_flight,
        )
        self.tracker.cancel(tasks)
        if tasks and deadline is not None:
            _done, stuck = await asyncio.wait(tasks, timeout=max(0.0, deadline - self.now()))
            if stuck:
                emit(
                    "drain.abandoned",
                    f"{len(stuck)} task(s) ignored cancellation and were abandoned",
                    level=logging.ERROR,
                    tasks=len(stuck),
                    names=sorted(t.get_name() for t in stuck),
                )
        for intake in self.intakes:
            # Jobs whose handler ignored the cancellation (or whose release failed) go back to the queue now.
            kept = await intake.abandon()
            if kept:
                emit(
                    "jobs.unreleased",
                    f"{kept} job(s) could not be released; they run again when their lease expires",
                    level=logging.ERROR,
                    jobs=kept,
                )

    # -- the end ---------------------------------------------------------------------------------------------

    def _summary(self, outcome: Outcome) -> None:
        stats = self.lifecycle.ledger.stats()
        fields: dict[str, Any] = {
            "outcome": outcome.verdict,
            "exit_code": int(outcome.exit_code),
            "signal": outcome.signal or "-",
            "forced": outcome.forced,
            "completed": {str(k): v for k, v in outcome.completed.items()},
            "aborted": {str(k): v for k, v in outcome.aborted.items()},
            "failed": {str(k): v for k, v in outcome.failed.items()},
            "failed_hooks": list(outcome.failed_hooks),
            "requests": stats.completed[Kind.REQUEST] + stats.failed[Kind.REQUEST] + stats.aborted[Kind.REQUEST],
            **self._figures,
        }
        for intake in self.intakes:
            fields.update(intake.figures())
        if (stopped := self.lifecycle.stopped_at) is not None:
            fields["stop_to_exit_ms"] = round((self.now() - stopped) * 1000, 1)
        if outcome.startup_error:
            fields["startup_error"] = outcome.startup_error
        if outcome.startup_aborted:
            fields["startup_aborted"] = True
        level = logging.INFO if outcome.exit_code == 0 else logging.ERROR
        aborted = outcome.total_aborted
        msg = f"{outcome.verdict}: exit {int(outcome.exit_code)}, {aborted} aborted"
        emit("summary", msg, level=level, **fields)
        events.flush()


_PHASE_MESSAGES = {
    Phase.READY: "ready: serving",
    Phase.DRAINING: "draining: readiness 503, still serving, every response Connection: close",
    Phase.CLOSING: "closing: listener closed, waiting for in-flight work",
    Phase.STOPPING: "stopping: running cleanup hooks",
    Phase.STOPPED: "stopped",
    Phase.STARTING: "starting",
}
