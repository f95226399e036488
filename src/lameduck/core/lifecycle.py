"""The lifecycle state machine: ``feed(trigger, now) -> actions``.

Sans-I/O: the driver reports what happened (a signal, the time passing, "nothing left in flight", "cleanup
finished") together with the current monotonic time, and gets back the actions to carry out, in order. The
lame-duck and drain deadlines are fixed at the first signal (from when it arrived), the cancel and cleanup
deadlines when cleanup begins, all from the ``Budget``; ``wake_at`` tells the driver when to feed a ``Tick`` next,
so nothing polls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lameduck.core.budget import Budget
from lameduck.core.deadline import Deadline
from lameduck.core.ledger import Kind, Ledger, LedgerStats
from lameduck.core.outcome import Outcome
from lameduck.core.phases import Event, Phase, Step, transition

# ---- triggers: what the driver reports -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Started:
    """Lifespan startup finished and startup checks pass."""


@dataclass(frozen=True, slots=True)
class StartFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class StopRequested:
    """A termination signal (``SIGTERM``, ``SIGINT``) or a programmatic stop (``api``).

    ``at``: when it arrived, on the same clock as ``now``. The budget counts from then: the platform's countdown
    started then, even if the driver only got to feed it later.
    """

    source: str
    at: float | None = None


@dataclass(frozen=True, slots=True)
class Tick:
    """Time has passed (the driver woke at ``wake_at``, or something changed)."""


@dataclass(frozen=True, slots=True)
class Drained:
    """The driver saw no accepted work left (requests, WebSockets, tracked tasks, jobs)."""


@dataclass(frozen=True, slots=True)
class CleanedUp:
    failed_hooks: tuple[str, ...] = ()


Trigger = Started | StartFailed | StopRequested | Tick | Drained | CleanedUp

# ---- actions: what the driver must do --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    """One step to carry out; ``deadline`` bounds it where the step waits for something."""

    step: Step
    deadline: Deadline | None = None


@dataclass(frozen=True, slots=True)
class PhaseChanged:
    """Emitted before the steps of a transition, so drivers can log one event per phase."""

    old: Phase
    new: Phase
    event: Event
    deadline: Deadline | None


@dataclass(frozen=True, slots=True)
class Progress:
    """Once a second while waiting for the lame-duck window or the drain: what is left and for how long."""

    phase: Phase
    in_flight: int
    seconds_left: float


Output = Action | PhaseChanged | Progress

#: Progress is reported this often while draining (the issue asks for once per second).
PROGRESS_INTERVAL = 1.0
#: Phases that wait for something while reporting progress.
_WAITING = (Phase.DRAINING, Phase.CLOSING)
#: Phases that end by time, and the event their deadline raises.
_TIMED = {Phase.STARTING: Event.START_FAILED, Phase.DRAINING: Event.LAME_DUCK_OVER, Phase.CLOSING: Event.DEADLINE}


@dataclass(frozen=True, slots=True)
class Statistics:
    """A snapshot for probes, logs and tests (the trio ``statistics()`` idea)."""

    phase: Phase
    signal: str | None
    forced: bool
    ledger: LedgerStats
    deadline_in: float | None


class Lifecycle:
    """One service's life from startup to the exit code."""

    def __init__(self, budget: Budget, *, startup_timeout: float, now: float) -> None:
        self.budget = budget
        self.ledger = Ledger()
        self._phase = Phase.STARTING
        self._signal: str | None = None
        self._forced = False
        self._startup_error: str | None = None
        self._startup_aborted = False
        self._failed_hooks: tuple[str, ...] = ()
        #: When the current phase ends by time: startup timeout, lame-duck window, drain, or cleanup.
        self._phase_end = Deadline.after(now, startup_timeout)
        self._stop_at: float | None = None
        self._lame_duck_end = Deadline.never()
        self._drain_end = Deadline.never()
        self._next_progress = math.inf

    # -- queries ---------------------------------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._phase

    def is_ready(self) -> bool:
        return self._phase is Phase.READY

    def is_stopping(self) -> bool:
        """True from the first signal on (the lame-duck window included)."""
        return self._phase in (Phase.DRAINING, Phase.CLOSING, Phase.STOPPING, Phase.STOPPED)

    @property
    def stopped_at(self) -> float | None:
        """When the first stop request arrived (on the ``now`` clock); None before it."""
        return self._stop_at

    @property
    def startup_error(self) -> str | None:
        return self._startup_error

    @property
    def drain_deadline(self) -> Deadline | None:
        """When in-flight work will be cancelled; None before the first signal."""
        return None if self._stop_at is None else self._drain_end

    @property
    def wake_at(self) -> float | None:
        """The next instant at which the driver must feed a ``Tick`` (None: only on other triggers)."""
        if self._phase is Phase.STARTING:
            return self._phase_end.at
        if self._phase in _WAITING:
            return min(self._phase_end.at, self._next_progress)
        return None

    def statistics(self, now: float) -> Statistics:
        deadline = self.drain_deadline
        return Statistics(
            phase=self._phase,
            signal=self._signal,
            forced=self._forced,
            ledger=self.ledger.stats(),
            deadline_in=None if deadline is None else deadline.remaining(now),
        )

    def outcome(self) -> Outcome:
        stats = self.ledger.stats()
        # Work still "in flight" when we finish ignored its cancellation and was abandoned: it is aborted too.
        aborted = {k: stats.aborted[k] + stats.in_flight[k] for k in Kind}
        return Outcome(
            signal=self._signal,
            forced=self._forced,
            startup_error=self._startup_error,
            startup_aborted=self._startup_aborted,
            completed={k: v for k, v in stats.completed.items() if v},
            failed={k: v for k, v in stats.failed.items() if v},
            aborted={k: v for k, v in aborted.items() if v},
            failed_hooks=self._failed_hooks,
        )

    def __repr__(self) -> str:
        deadline = "" if self._stop_at is None else f" drain_deadline={self._drain_end.at:.3f}"
        return f"<Lifecycle {self._phase} in_flight={self.ledger.in_flight()}{deadline}>"

    # -- the one entry point ---------------------------------------------------------------------------------

    def feed(self, trigger: Trigger, now: float) -> tuple[Output, ...]:
        """Apply ``trigger`` at monotonic time ``now``; return what the driver must do, in order."""
        out: list[Output] = []
        event = self._event_for(trigger, now)
        if event is not None:
            self._apply(event, now, out)
        # Time-driven events that are already due (a lame-duck window of 0 ends the moment it starts).
        while (due := self._due_event(now)) is not None:
            self._apply(due, now, out)
        if self._phase in _WAITING and now >= self._next_progress:
            out.append(Progress(self._phase, self.ledger.in_flight(), self._phase_end.remaining(now)))
            self._next_progress = now + PROGRESS_INTERVAL
        return tuple(out)

    # -- internals -------------------------------------------------------------------------------------------

    def _event_for(self, trigger: Trigger, now: float) -> Event | None:
        match trigger:
            case Started():
                # Startup can finish in the same instant a signal aborts it; the late report changes nothing.
                return Event.STARTED if self._phase is Phase.STARTING else None
            case StartFailed(reason):
                if self._phase is not Phase.STARTING:
                    return None
                self._startup_error = reason
                return Event.START_FAILED
            case StopRequested(source, at):
                if self._signal is None:
                    self._signal = source
                    self._stop_at = now if at is None else min(at, now)
                    return Event.STOP
                return Event.FORCE
            case Drained():
                # A late report (the deadline already fired) changes nothing.
                return Event.DRAINED if self._phase is Phase.CLOSING else None
            case CleanedUp(failed_hooks):
                self._failed_hooks = failed_hooks
                return Event.CLEANED_UP
            case Tick():
                return None

    def _due_event(self, now: float) -> Event | None:
        event = _TIMED.get(self._phase)
        if event is None or not self._phase_end.expired(now):
            return None
        if event is Event.START_FAILED:
            self._startup_error = "startup timed out"
        return event

    def _apply(self, event: Event, now: float, out: list[Output]) -> None:
        old = self._phase
        new, steps = transition(old, event)
        if event is Event.STOP and old in (Phase.STARTING, Phase.READY):
            t0 = now if self._stop_at is None else self._stop_at
            self._lame_duck_end = Deadline.after(t0, self.budget.lame_duck)
            self._drain_end = Deadline.after(t0, self.budget.lame_duck + self.budget.drain)
            self._next_progress = t0 + PROGRESS_INTERVAL
            if old is Phase.STARTING:
                self._startup_aborted = True
        if event in (Event.FORCE, Event.DEADLINE) and old is not Phase.STOPPING:
            self._forced = True
        self._phase = new

        cancel_until = Deadline.after(now, self.budget.cancel_wait)
        if new is not old:
            cleanup_from = cancel_until.at if Step.CANCEL_REMAINING in steps else now
            self._phase_end = {
                Phase.DRAINING: self._lame_duck_end,
                Phase.CLOSING: self._drain_end,
                Phase.STOPPING: Deadline.after(cleanup_from, self.budget.cleanup),
            }.get(new, Deadline.never())
            out.append(PhaseChanged(old, new, event, None if self._phase_end.at == math.inf else self._phase_end))
        deadlines = {
            Step.CANCEL_REMAINING: cancel_until,
            Step.RUN_CLEANUP: self._phase_end,
            Step.WATCH_DRAIN: self._drain_end,
        }
        out.extend(Action(step, deadlines.get(step)) for step in steps)
