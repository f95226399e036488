"""The lifecycle core driven by a fake clock: every instant below is exact, nothing sleeps.

The service starts at t=0, is ready at t=1 and gets SIGTERM at T0=100. With grace 30 and a 5 s lame-duck window
the budget is lame-duck 5 + drain 20 + cleanup 3 + margin 2, so the listener closes at T0+5, in-flight work is
cancelled at T0+25, and cancelled work gets cancel_wait=1 s before cleanup (3 s) starts.
"""

from __future__ import annotations

import pytest

from lameduck.core.budget import Budget
from lameduck.core.deadline import Deadline
from lameduck.core.ledger import Kind, LedgerStats, Result
from lameduck.core.lifecycle import (
    PROGRESS_INTERVAL,
    Action,
    CleanedUp,
    Drained,
    Lifecycle,
    Output,
    PhaseChanged,
    Progress,
    Started,
    StartFailed,
    Statistics,
    StopRequested,
    Tick,
)
from lameduck.core.outcome import ExitCode, Outcome
from lameduck.core.phases import Event, Phase, Step

T0 = 100.0
LAME = 5.0
DRAIN = 20.0
CLEANUP = 3.0
STARTUP_TIMEOUT = 60.0


def make(lame_duck: float = LAME, *, ready: bool = True) -> Lifecycle:
    """A lifecycle with grace 30 (drain derived), started at t=0 and, unless ``ready=False``, ready at t=1."""
    lc = Lifecycle(Budget.plan(grace=30, lame_duck=lame_duck), startup_timeout=STARTUP_TIMEOUT, now=0.0)
    if ready:
        assert lc.feed(Started(), 1.0) == (
            PhaseChanged(Phase.STARTING, Phase.READY, Event.STARTED, None),
            Action(Step.MARK_READY),
        )
    return lc


def phase_of(lc: Lifecycle) -> Phase:
    """The phase, read through a call so type checkers do not carry an earlier ``assert`` across a ``feed``."""
    return lc.phase


def steps(outputs: tuple[Output, ...]) -> list[Step]:
    return [o.step for o in outputs if isinstance(o, Action)]


def action(outputs: tuple[Output, ...], step: Step) -> Action:
    (found,) = [o for o in outputs if isinstance(o, Action) and o.step is step]
    return found


def to_closing(lc: Lifecycle) -> None:
    """SIGTERM at T0, then the lame-duck window's end at T0+5 (progress ticks in between)."""
    lc.feed(StopRequested("SIGTERM"), T0)
    for t in (1.0, 2.0, 3.0, 4.0, 5.0):
        lc.feed(Tick(), T0 + t)
    assert lc.phase is Phase.CLOSING


# ---- startup -----------------------------------------------------------------------------------------------


def test_a_new_lifecycle_is_starting_and_wakes_at_the_startup_deadline() -> None:
    lc = make(ready=False)
    assert lc.phase is Phase.STARTING
    assert lc.is_ready() is False
    assert lc.is_stopping() is False
    assert lc.wake_at == 60.0
    assert lc.drain_deadline is None


def test_started_makes_it_ready_and_nothing_needs_waking() -> None:
    lc = make()
    assert lc.phase is Phase.READY
    assert lc.is_ready() is True
    assert lc.is_stopping() is False
    assert lc.wake_at is None
    assert lc.feed(Tick(), 50.0) == ()


def test_start_failed_stops_with_exit_code_3() -> None:
    lc = make(ready=False)
    out = lc.feed(StartFailed("lifespan startup raised RuntimeError"), 2.0)
    assert out == (
        PhaseChanged(Phase.STARTING, Phase.STOPPING, Event.START_FAILED, Deadline(5.0)),
        Action(Step.ABORT_STARTUP),
        Action(Step.CLOSE_LISTENER),
        Action(Step.RUN_CLEANUP, Deadline(5.0)),
    )
    assert lc.wake_at is None
    assert lc.feed(CleanedUp(), 3.0) == (
        PhaseChanged(Phase.STOPPING, Phase.STOPPED, Event.CLEANED_UP, None),
        Action(Step.FINISH),
    )
    outcome = lc.outcome()
    assert outcome.startup_error == "lifespan startup raised RuntimeError"
    assert outcome.startup_aborted is False
    assert outcome.signal is None
    assert outcome.exit_code is ExitCode.STARTUP_FAILED
    assert int(outcome.exit_code) == 3
    assert outcome.verdict == "startup-failed"


def test_startup_timeout_is_not_due_a_moment_early() -> None:
    lc = make(ready=False)
    assert lc.feed(Tick(), 59.999) == ()
    assert lc.phase is Phase.STARTING


def test_startup_timeout_via_tick_stops_with_exit_code_3() -> None:
    lc = make(ready=False)
    out = lc.feed(Tick(), 60.0)
    assert out == (
        PhaseChanged(Phase.STARTING, Phase.STOPPING, Event.START_FAILED, Deadline(63.0)),
        Action(Step.ABORT_STARTUP),
        Action(Step.CLOSE_LISTENER),
        Action(Step.RUN_CLEANUP, Deadline(63.0)),
    )
    lc.feed(CleanedUp(), 61.0)
    outcome = lc.outcome()
    assert outcome.startup_error == "startup timed out"
    assert outcome.exit_code is ExitCode.STARTUP_FAILED


def test_a_late_tick_long_past_the_startup_deadline_also_times_out() -> None:
    lc = make(ready=False)
    out = lc.feed(Tick(), 500.0)
    assert steps(out) == [Step.ABORT_STARTUP, Step.CLOSE_LISTENER, Step.RUN_CLEANUP]
    assert action(out, Step.RUN_CLEANUP).deadline == Deadline(503.0)
    assert lc.outcome().startup_error == "startup timed out"


def test_stop_during_startup_aborts_it() -> None:
    lc = make(ready=False)
    out = lc.feed(StopRequested("SIGTERM"), 10.0)
    assert out == (
        PhaseChanged(Phase.STARTING, Phase.STOPPING, Event.STOP, Deadline(13.0)),
        Action(Step.ABORT_STARTUP),
        Action(Step.CLOSE_LISTENER),
        Action(Step.RUN_CLEANUP, Deadline(13.0)),
    )
    assert lc.is_stopping() is True
    assert lc.wake_at is None
    lc.feed(CleanedUp(), 11.0)
    outcome = lc.outcome()
    assert outcome.startup_aborted is True
    assert outcome.startup_error is None
    assert outcome.signal == "SIGTERM"
    assert outcome.forced is False
    assert outcome.exit_code is ExitCode.CLEAN
    assert outcome.verdict == "clean"


def test_late_started_after_a_stop_is_ignored() -> None:
    lc = make(ready=False)
    lc.feed(StopRequested("SIGTERM"), 10.0)
    assert lc.feed(Started(), 10.0) == ()
    assert lc.phase is Phase.STOPPING


def test_late_start_failed_after_a_stop_is_ignored_and_not_counted() -> None:
    lc = make(ready=False)
    lc.feed(StopRequested("SIGTERM"), 10.0)
    assert lc.feed(StartFailed("cancelled"), 10.5) == ()
    assert lc.phase is Phase.STOPPING
    lc.feed(CleanedUp(), 11.0)
    assert lc.outcome().startup_error is None
    assert lc.outcome().exit_code is ExitCode.CLEAN


def test_started_after_the_service_is_ready_and_stopping_is_ignored() -> None:
    lc = make()
    lc.feed(StopRequested("SIGTERM"), T0)
    assert lc.feed(Started(), T0 + 0.5) == ()
    assert lc.feed(StartFailed("late"), T0 + 0.5) == ()
    assert lc.phase is Phase.DRAINING


# ---- the full shutdown with a 5 s lame-duck window ---------------------------------------------------------


def test_sigterm_enters_draining_with_readiness_off_and_connection_close() -> None:
    lc = make()
    out = lc.feed(StopRequested("SIGTERM"), T0)
    assert out == (
        PhaseChanged(Phase.READY, Phase.DRAINING, Event.STOP, Deadline(T0 + LAME)),
        Action(Step.MARK_NOT_READY),
        Action(Step.CONNECTION_CLOSE),
        Action(Step.STOP_INTAKE),
    )
    assert Step.CLOSE_LISTENER not in steps(out)
    assert lc.phase is Phase.DRAINING
    assert lc.is_ready() is False
    assert lc.is_stopping() is True
    assert lc.wake_at == T0 + PROGRESS_INTERVAL == 101.0


def test_listener_closes_exactly_at_the_end_of_the_lame_duck_window() -> None:
    lc = make()
    lc.feed(StopRequested("SIGTERM"), T0)
    for t in (1.0, 2.0, 3.0, 4.0):
        out = lc.feed(Tick(), T0 + t)
        assert Step.CLOSE_LISTENER not in steps(out)
    assert lc.feed(Tick(), T0 + 4.999) == ()
    assert lc.phase is Phase.DRAINING
    assert lc.wake_at == T0 + LAME

    out = lc.feed(Tick(), T0 + 5.0)
    assert out == (
        PhaseChanged(Phase.DRAINING, Phase.CLOSING, Event.LAME_DUCK_OVER, Deadline(T0 + 25.0)),
        Action(Step.CLOSE_LISTENER),
        Action(Step.CLOSE_IDLE),
        Action(Step.CLOSE_WEBSOCKETS),
        Action(Step.WATCH_DRAIN, Deadline(T0 + 25.0)),
        Progress(Phase.CLOSING, 0, 20.0),
    )
    assert phase_of(lc) is Phase.CLOSING


def test_wake_at_walks_the_lame_duck_end_the_progress_ticks_and_the_drain_deadline() -> None:
    lc = make()
    lc.ledger.begin(Kind.REQUEST)  # still in flight at the deadline
    lc.feed(StopRequested("SIGTERM"), T0)
    seen = [lc.wake_at]
    for _ in range(100):  # bounded: a core that never reaches STOPPING fails below instead of hanging
        wake = lc.wake_at
        if wake is None:
            break
        lc.feed(Tick(), wake)
        seen.append(lc.wake_at)
    # One tick a second from T0+1 to the drain deadline at T0+25 (the lame-duck end T0+5 coincides with one).
    assert seen == [T0 + s for s in range(1, 26)] + [None]
    assert lc.phase is Phase.STOPPING


def test_wake_at_picks_the_lame_duck_end_between_progress_ticks() -> None:
    lc = Lifecycle(Budget.plan(grace=30, lame_duck=2.5), startup_timeout=STARTUP_TIMEOUT, now=0.0)
    lc.feed(Started(), 1.0)
    lc.feed(StopRequested("SIGTERM"), T0)
    assert lc.wake_at == T0 + 1.0
    lc.feed(Tick(), T0 + 1.0)
    assert lc.wake_at == T0 + 2.0
    lc.feed(Tick(), T0 + 2.0)
    assert lc.wake_at == T0 + 2.5  # the window ends before the next progress tick
    out = lc.feed(Tick(), T0 + 2.5)
    assert steps(out)[0] is Step.CLOSE_LISTENER
    assert [o for o in out if isinstance(o, Progress)] == []
    assert lc.wake_at == T0 + 3.0


def test_progress_once_a_second_with_in_flight_and_seconds_left() -> None:
    lc = make()
    lc.feed(StopRequested("SIGTERM"), T0)
    lc.ledger.begin(Kind.REQUEST)
    lc.ledger.begin(Kind.REQUEST)
    lc.ledger.begin(Kind.TASK)
    assert lc.feed(Tick(), T0 + 1.0) == (Progress(Phase.DRAINING, 3, 4.0),)
    assert lc.feed(Tick(), T0 + 1.5) == ()  # not yet a second since the last report
    lc.ledger.end(Kind.TASK)
    assert lc.feed(Tick(), T0 + 2.0) == (Progress(Phase.DRAINING, 2, 3.0),)
    assert lc.feed(Tick(), T0 + 3.0) == (Progress(Phase.DRAINING, 2, 2.0),)
    assert lc.feed(Tick(), T0 + 4.0) == (Progress(Phase.DRAINING, 2, 1.0),)
    out = lc.feed(Tick(), T0 + 5.0)
    assert out[-1] == Progress(Phase.CLOSING, 2, 20.0)
    lc.ledger.end(Kind.REQUEST)
    assert lc.feed(Tick(), T0 + 6.0) == (Progress(Phase.CLOSING, 1, 19.0),)
    assert lc.feed(Tick(), T0 + 6.25) == ()
    assert lc.feed(Tick(), T0 + 7.0) == (Progress(Phase.CLOSING, 1, 18.0),)
    assert lc.wake_at == T0 + 8.0


def test_drained_in_closing_runs_cleanup_without_cancelling() -> None:
    lc = make()
    lc.ledger.begin(Kind.REQUEST)
    to_closing(lc)
    assert lc.ledger.end(Kind.REQUEST) == 0
    out = lc.feed(Drained(), T0 + 7.5)
    assert out == (
        PhaseChanged(Phase.CLOSING, Phase.STOPPING, Event.DRAINED, Deadline(T0 + 7.5 + CLEANUP)),
        Action(Step.RUN_CLEANUP, Deadline(T0 + 10.5)),
    )
    assert lc.phase is Phase.STOPPING
    assert lc.wake_at is None
    assert lc.feed(CleanedUp(), T0 + 8.0) == (
        PhaseChanged(Phase.STOPPING, Phase.STOPPED, Event.CLEANED_UP, None),
        Action(Step.FINISH),
    )
    assert phase_of(lc) is Phase.STOPPED
    outcome = lc.outcome()
    assert outcome == Outcome(signal="SIGTERM", completed={Kind.REQUEST: 1})
    assert outcome.exit_code is ExitCode.CLEAN
    assert int(outcome.exit_code) == 0


def test_drain_deadline_with_work_in_flight_cancels_then_cleans_up() -> None:
    lc = make()
    lc.ledger.begin(Kind.REQUEST)
    to_closing(lc)
    lc.feed(Tick(), T0 + 24.0)
    assert lc.phase is Phase.CLOSING
    assert lc.wake_at == T0 + 25.0
    out = lc.feed(Tick(), T0 + 25.0)
    cancel_wait = 1.0  # min(1, margin 2 / 2)
    assert out == (
        PhaseChanged(Phase.CLOSING, Phase.STOPPING, Event.DEADLINE, Deadline(T0 + 25.0 + cancel_wait + CLEANUP)),
        Action(Step.CANCEL_REMAINING, Deadline(T0 + 25.0 + cancel_wait)),
        Action(Step.RUN_CLEANUP, Deadline(T0 + 25.0 + cancel_wait + CLEANUP)),
    )
    assert action(out, Step.RUN_CLEANUP).deadline == Deadline(129.0)
    assert lc.statistics(T0 + 25.0).forced is True
    # The cancelled request unwinds and is recorded as aborted.
    lc.ledger.end(Kind.REQUEST, Result.ABORTED)
    lc.feed(CleanedUp(), T0 + 27.0)
    outcome = lc.outcome()
    assert outcome.forced is True
    assert outcome.aborted == {Kind.REQUEST: 1}
    assert outcome.exit_code is ExitCode.ABORTED


def test_drain_deadline_not_due_a_moment_early() -> None:
    lc = make()
    lc.ledger.begin(Kind.JOB)
    to_closing(lc)
    out = lc.feed(Tick(), T0 + 24.999)
    assert Step.CANCEL_REMAINING not in steps(out)
    assert lc.phase is Phase.CLOSING


def test_cancel_wait_follows_a_small_margin() -> None:
    budget = Budget.plan(grace=30, lame_duck=0, drain=10, margin=0.5)
    lc = Lifecycle(budget, startup_timeout=STARTUP_TIMEOUT, now=0.0)
    lc.feed(Started(), 1.0)
    lc.feed(StopRequested("SIGTERM"), T0)
    out = lc.feed(Tick(), T0 + 10.0)
    assert action(out, Step.CANCEL_REMAINING).deadline == Deadline(T0 + 10.25)
    assert action(out, Step.RUN_CLEANUP).deadline == Deadline(T0 + 13.25)


def test_a_single_late_tick_runs_every_due_transition_in_order() -> None:
    lc = make()
    lc.ledger.begin(Kind.WEBSOCKET)
    lc.feed(StopRequested("SIGTERM"), T0)
    out = lc.feed(Tick(), T0 + 40.0)  # the driver was starved past both deadlines
    assert [(o.old, o.new, o.event) for o in out if isinstance(o, PhaseChanged)] == [
        (Phase.DRAINING, Phase.CLOSING, Event.LAME_DUCK_OVER),
        (Phase.CLOSING, Phase.STOPPING, Event.DEADLINE),
    ]
    assert steps(out) == [
        Step.CLOSE_LISTENER,
        Step.CLOSE_IDLE,
        Step.CLOSE_WEBSOCKETS,
        Step.WATCH_DRAIN,
        Step.CANCEL_REMAINING,
        Step.RUN_CLEANUP,
    ]
    assert action(out, Step.CANCEL_REMAINING).deadline == Deadline(T0 + 41.0)
    assert action(out, Step.RUN_CLEANUP).deadline == Deadline(T0 + 44.0)


def test_in_flight_work_left_at_finish_counts_as_aborted() -> None:
    lc = make()
    lc.ledger.begin(Kind.TASK)
    lc.ledger.begin(Kind.REQUEST)
    lc.ledger.end(Kind.REQUEST)
    to_closing(lc)
    lc.feed(Tick(), T0 + 25.0)
    lc.feed(CleanedUp(), T0 + 29.0)  # the task ignored its cancellation
    outcome = lc.outcome()
    assert outcome.completed == {Kind.REQUEST: 1}
    assert outcome.aborted == {Kind.TASK: 1}
    assert outcome.total_aborted == 1
    assert outcome.exit_code is ExitCode.ABORTED
    assert int(outcome.exit_code) == 1
    assert outcome.verdict == "aborted"


def test_a_failed_cleanup_hook_exits_1() -> None:
    lc = make()
    to_closing(lc)
    lc.feed(Drained(), T0 + 5.0)
    lc.feed(CleanedUp(failed_hooks=("close-db", "flush-metrics")), T0 + 6.0)
    outcome = lc.outcome()
    assert outcome.failed_hooks == ("close-db", "flush-metrics")
    assert outcome.total_aborted == 0
    assert outcome.exit_code is ExitCode.ABORTED


def test_work_that_failed_on_its_own_does_not_change_the_exit_code() -> None:
    lc = make()
    lc.ledger.begin(Kind.REQUEST)
    lc.ledger.end(Kind.REQUEST, Result.FAILED)
    to_closing(lc)
    lc.feed(Drained(), T0 + 5.0)
    lc.feed(CleanedUp(), T0 + 6.0)
    outcome = lc.outcome()
    assert outcome.failed == {Kind.REQUEST: 1}
    assert outcome.aborted == {}
    assert outcome.exit_code is ExitCode.CLEAN


# ---- lame-duck 0 -------------------------------------------------------------------------------------------


def test_lame_duck_zero_goes_through_draining_to_closing_in_one_feed() -> None:
    lc = make(lame_duck=0)
    out = lc.feed(StopRequested("SIGTERM"), T0)
    assert out == (
        PhaseChanged(Phase.READY, Phase.DRAINING, Event.STOP, Deadline(T0)),
        Action(Step.MARK_NOT_READY),
        Action(Step.CONNECTION_CLOSE),
        Action(Step.STOP_INTAKE),
        PhaseChanged(Phase.DRAINING, Phase.CLOSING, Event.LAME_DUCK_OVER, Deadline(T0 + 25.0)),
        Action(Step.CLOSE_LISTENER),
        Action(Step.CLOSE_IDLE),
        Action(Step.CLOSE_WEBSOCKETS),
        Action(Step.WATCH_DRAIN, Deadline(T0 + 25.0)),
    )
    assert lc.phase is Phase.CLOSING
    assert lc.wake_at == T0 + 1.0


# ---- escalation --------------------------------------------------------------------------------------------


def test_second_stop_in_draining_forces() -> None:
    lc = make()
    lc.feed(StopRequested("SIGTERM"), T0)
    out = lc.feed(StopRequested("SIGINT"), T0 + 2.0)
    assert out == (
        PhaseChanged(Phase.DRAINING, Phase.STOPPING, Event.FORCE, Deadline(T0 + 6.0)),
        Action(Step.CLOSE_LISTENER),
        Action(Step.CLOSE_IDLE),
        Action(Step.CLOSE_WEBSOCKETS),  # 1001 before the cancel, not a bare 1006
        Action(Step.CANCEL_REMAINING, Deadline(T0 + 3.0)),
        Action(Step.RUN_CLEANUP, Deadline(T0 + 6.0)),
    )
    stats = lc.statistics(T0 + 2.0)
    assert stats.forced is True
    assert stats.signal == "SIGTERM"  # the first signal is the one reported
    lc.feed(CleanedUp(), T0 + 4.0)
    assert lc.outcome().forced is True
    assert lc.outcome().signal == "SIGTERM"


def test_second_stop_in_closing_forces() -> None:
    lc = make()
    lc.ledger.begin(Kind.REQUEST)
    to_closing(lc)
    out = lc.feed(StopRequested("SIGTERM"), T0 + 8.0)
    assert out == (
        PhaseChanged(Phase.CLOSING, Phase.STOPPING, Event.FORCE, Deadline(T0 + 12.0)),
        Action(Step.CANCEL_REMAINING, Deadline(T0 + 9.0)),
        Action(Step.RUN_CLEANUP, Deadline(T0 + 12.0)),
    )
    assert lc.statistics(T0 + 8.0).forced is True


@pytest.mark.parametrize("source", ["SIGTERM", "SIGINT", "api"])
def test_stop_in_stopping_is_a_no_op(source: str) -> None:
    lc = make()
    to_closing(lc)
    lc.feed(Drained(), T0 + 6.0)
    assert lc.feed(StopRequested(source), T0 + 7.0) == ()
    assert lc.feed(StopRequested(source), T0 + 7.5) == ()
    assert lc.phase is Phase.STOPPING
    assert lc.statistics(T0 + 7.5).forced is False
    lc.feed(CleanedUp(), T0 + 8.0)
    assert lc.outcome().forced is False
    assert lc.outcome().exit_code is ExitCode.CLEAN


def test_a_signal_after_a_startup_failure_is_recorded_but_changes_nothing() -> None:
    lc = make(ready=False)
    lc.feed(StartFailed("boom"), 2.0)
    assert lc.feed(StopRequested("SIGTERM"), 2.5) == ()
    assert lc.phase is Phase.STOPPING
    assert lc.statistics(2.5).signal == "SIGTERM"


# ---- Drained outside CLOSING -------------------------------------------------------------------------------


def test_drained_outside_closing_is_ignored() -> None:
    lc = make(ready=False)
    assert lc.feed(Drained(), 0.5) == ()
    assert lc.phase is Phase.STARTING
    lc.feed(Started(), 1.0)
    assert lc.feed(Drained(), 2.0) == ()
    assert phase_of(lc) is Phase.READY
    lc.feed(StopRequested("SIGTERM"), T0)
    assert lc.feed(Drained(), T0 + 0.5) == ()  # the listener is still open in the lame-duck window
    assert phase_of(lc) is Phase.DRAINING
    lc.feed(StopRequested("SIGTERM"), T0 + 0.6)
    assert lc.feed(Drained(), T0 + 0.7) == ()  # a late report after the force
    assert phase_of(lc) is Phase.STOPPING


# ---- queries -----------------------------------------------------------------------------------------------


def test_drain_deadline_is_none_before_the_stop_and_fixed_after() -> None:
    lc = make()
    assert lc.drain_deadline is None
    lc.feed(StopRequested("SIGTERM"), T0)
    assert lc.drain_deadline == Deadline(T0 + LAME + DRAIN)
    lc.feed(Tick(), T0 + 5.0)
    assert lc.drain_deadline == Deadline(125.0)  # computed once, at the first signal
    lc.feed(StopRequested("SIGTERM"), T0 + 6.0)
    assert lc.drain_deadline == Deadline(125.0)


def test_repr_shows_phase_in_flight_and_the_drain_deadline() -> None:
    lc = make()
    lc.ledger.begin(Kind.REQUEST)
    lc.ledger.begin(Kind.JOB)
    lc.ledger.begin(Kind.JOB)
    assert repr(lc) == "<Lifecycle ready in_flight=3>"
    lc.feed(StopRequested("SIGTERM"), T0)
    assert repr(lc) == "<Lifecycle draining in_flight=3 drain_deadline=125.000>"


def test_statistics_before_and_after_the_stop() -> None:
    lc = make()
    lc.ledger.begin(Kind.REQUEST)
    before = lc.statistics(50.0)
    assert before == Statistics(
        phase=Phase.READY,
        signal=None,
        forced=False,
        ledger=LedgerStats(
            in_flight={Kind.REQUEST: 1, Kind.WEBSOCKET: 0, Kind.TASK: 0, Kind.JOB: 0},
            completed=dict.fromkeys(Kind, 0),
            failed=dict.fromkeys(Kind, 0),
            aborted=dict.fromkeys(Kind, 0),
        ),
        deadline_in=None,
    )
    lc.feed(StopRequested("SIGTERM"), T0)
    lc.ledger.end(Kind.REQUEST)
    after = lc.statistics(T0 + 2.0)
    assert after.phase is Phase.DRAINING
    assert after.signal == "SIGTERM"
    assert after.forced is False
    assert after.deadline_in == 23.0
    assert after.ledger.total_in_flight == 0
    assert after.ledger.completed[Kind.REQUEST] == 1
    assert lc.statistics(T0 + 99.0).deadline_in == 0.0  # never negative
    # A snapshot: later changes do not reach it.
    lc.ledger.begin(Kind.TASK)
    assert after.ledger.in_flight[Kind.TASK] == 0


# ---- outcome -----------------------------------------------------------------------------------------------


def test_exit_codes_are_the_documented_numbers() -> None:
    assert [(c.name, int(c)) for c in ExitCode] == [
        ("CLEAN", 0),
        ("ABORTED", 1),
        ("USAGE", 2),
        ("STARTUP_FAILED", 3),
    ]


def test_a_startup_error_outranks_aborted_work() -> None:
    outcome = Outcome(startup_error="boom", aborted={Kind.TASK: 2}, failed_hooks=("db",))
    assert outcome.exit_code is ExitCode.STARTUP_FAILED
    assert outcome.total_aborted == 2


def test_an_empty_outcome_is_clean() -> None:
    assert Outcome().exit_code is ExitCode.CLEAN
    assert Outcome().verdict == "clean"


def test_deadlines_count_from_when_the_signal_arrived_not_when_it_was_fed() -> None:
    """The loop was blocked for 4 s when SIGTERM arrived: the platform's countdown started at arrival."""
    lc = make()
    out = lc.feed(StopRequested("SIGTERM", at=T0), T0 + 4.0)
    assert action(out, Step.CONNECTION_CLOSE) is not None
    assert lc.drain_deadline == Deadline(T0 + 5.0 + 20.0)
    assert lc.wake_at == T0 + 5.0
