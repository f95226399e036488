"""Phases, events and the transition table: everything that moves the lifecycle lives here.

The table is data so the README timeline and tests/unit/test_phases.py derive from the same rows. An event with
no row for the current phase is a ``LifecycleError`` naming both (the h11 ``_state.py`` model).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from lameduck.errors import LifecycleError


class Phase(enum.Enum):
    """Where a service is in its life. Values are what probes, logs and ``statistics()`` show."""

    STARTING = "starting"  # lifespan startup and startup checks running; readiness 503
    READY = "ready"  # serving; readiness 200 while checks pass
    DRAINING = "draining"  # lame-duck window: readiness 503, listener open, every response Connection: close
    CLOSING = "closing"  # listener closed, idle connections closed; in-flight work finishing until the deadline
    STOPPING = "stopping"  # leftovers cancelled, cleanup hooks and lifespan shutdown running
    STOPPED = "stopped"  # done; the outcome decides the exit code

    def __str__(self) -> str:
        return self.value


class Event(enum.Enum):
    """What can happen to a lifecycle; the core derives these from triggers and the time."""

    STARTED = "started"  # lifespan startup finished and startup checks pass
    START_FAILED = "start-failed"  # lifespan startup failed or startup timed out
    STOP = "stop"  # first SIGTERM/SIGINT (or a programmatic stop)
    FORCE = "force"  # any later signal: skip to the deadline step now
    LAME_DUCK_OVER = "lame-duck-over"  # the lame-duck window's deadline passed
    DRAINED = "drained"  # nothing accepted is still running
    DEADLINE = "deadline"  # the drain deadline passed with work still running
    CLEANED_UP = "cleaned-up"  # cleanup hooks and lifespan shutdown returned or timed out


class Step(enum.Enum):
    """An effect the driver must carry out, in the order given."""

    MARK_READY = "mark-ready"
    MARK_NOT_READY = "mark-not-ready"
    CONNECTION_CLOSE = "connection-close"  # every response from now on carries Connection: close
    STOP_INTAKE = "stop-intake"  # workers stop claiming new jobs
    ABORT_STARTUP = "abort-startup"
    CLOSE_LISTENER = "close-listener"  # refuse new connections (never reset queued ones)
    CLOSE_IDLE = "close-idle"  # close keep-alive connections with no request in flight
    CLOSE_WEBSOCKETS = "close-websockets"  # close code 1001 (going away)
    WATCH_DRAIN = "watch-drain"  # report DRAINED when nothing accepted is left
    CANCEL_REMAINING = "cancel-remaining"
    RUN_CLEANUP = "run-cleanup"
    FINISH = "finish"


P, E, S = Phase, Event, Step
_CANCEL_AND_CLEAN = (S.CANCEL_REMAINING, S.RUN_CLEANUP)

#: (phase, event) -> (next phase, steps). Events with no row here are illegal in that phase.
TRANSITIONS: Mapping[tuple[Phase, Event], tuple[Phase, tuple[Step, ...]]] = MappingProxyType(
    {
        (P.STARTING, E.STARTED): (P.READY, (S.MARK_READY,)),
        (P.STARTING, E.START_FAILED): (P.STOPPING, (S.ABORT_STARTUP, S.CLOSE_LISTENER, S.RUN_CLEANUP)),
        (P.STARTING, E.STOP): (P.STOPPING, (S.ABORT_STARTUP, S.CLOSE_LISTENER, S.RUN_CLEANUP)),
        (P.READY, E.STOP): (P.DRAINING, (S.MARK_NOT_READY, S.CONNECTION_CLOSE, S.STOP_INTAKE)),
        (P.DRAINING, E.LAME_DUCK_OVER): (
            P.CLOSING,
            (S.CLOSE_LISTENER, S.CLOSE_IDLE, S.CLOSE_WEBSOCKETS, S.WATCH_DRAIN),
        ),
        (P.DRAINING, E.FORCE): (
            P.STOPPING,
            (S.CLOSE_LISTENER, S.CLOSE_IDLE, S.CLOSE_WEBSOCKETS, *_CANCEL_AND_CLEAN),
        ),
        (P.CLOSING, E.DRAINED): (P.STOPPING, (S.RUN_CLEANUP,)),
        (P.CLOSING, E.DEADLINE): (P.STOPPING, _CANCEL_AND_CLEAN),
        (P.CLOSING, E.FORCE): (P.STOPPING, _CANCEL_AND_CLEAN),
        # Cleanup is already bounded by its own deadline; more signals change nothing.
        (P.STOPPING, E.STOP): (P.STOPPING, ()),
        (P.STOPPING, E.FORCE): (P.STOPPING, ()),
        (P.STOPPING, E.CLEANED_UP): (P.STOPPED, (S.FINISH,)),
    }
)


def transition(phase: Phase, event: Event) -> tuple[Phase, tuple[Step, ...]]:
    """Look up the row for ``event`` in ``phase``; raise ``LifecycleError`` if there is none."""
    try:
        return TRANSITIONS[phase, event]
    except KeyError:
        allowed = sorted(e.value for (p, e) in TRANSITIONS if p is phase)
        raise LifecycleError(
            f"event {event.value!r} is not allowed in phase {phase.value!r} (allowed: {', '.join(allowed) or 'none'})"
        ) from None
