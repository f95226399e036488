"""The transition table is data; these tests read it as a graph and hold it to the lifecycle's promises."""

from __future__ import annotations

from collections import deque

import pytest

from lameduck.core.phases import TRANSITIONS, Event, Phase, Step, transition
from lameduck.errors import LifecycleError

ROWS = sorted(TRANSITIONS.items(), key=lambda row: (list(Phase).index(row[0][0]), list(Event).index(row[0][1])))
ILLEGAL = [(p, e) for p in Phase for e in Event if (p, e) not in TRANSITIONS]


def _successors(phase: Phase) -> set[Phase]:
    return {new for (p, _), (new, _) in TRANSITIONS.items() if p is phase}


def _reachable(start: Phase) -> set[Phase]:
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in _successors(queue.popleft()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def test_phase_and_event_values_are_what_logs_and_probes_show() -> None:
    assert [p.value for p in Phase] == ["starting", "ready", "draining", "closing", "stopping", "stopped"]
    assert str(Phase.DRAINING) == "draining"
    assert [e.value for e in Event] == [
        "started",
        "start-failed",
        "stop",
        "force",
        "lame-duck-over",
        "drained",
        "deadline",
        "cleaned-up",
    ]


def test_table_has_the_expected_twelve_rows() -> None:
    assert len(TRANSITIONS) == 12


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[Phase.STOPPED, Event.STOP] = (Phase.STOPPED, ())  # type: ignore[index]


@pytest.mark.parametrize(("key", "row"), ROWS, ids=[f"{p.value}+{e.value}" for (p, e), _ in ROWS])
def test_every_row_is_well_formed_and_returned_by_transition(
    key: tuple[Phase, Event], row: tuple[Phase, tuple[Step, ...]]
) -> None:
    phase, event = key
    new, steps = row
    assert isinstance(phase, Phase)
    assert isinstance(event, Event)
    assert isinstance(new, Phase)
    assert isinstance(steps, tuple)
    assert all(isinstance(s, Step) for s in steps)
    assert len(set(steps)) == len(steps), "a step appears twice in one row"
    assert transition(phase, event) == (new, steps)


@pytest.mark.parametrize(("key", "row"), ROWS, ids=[f"{p.value}+{e.value}" for (p, e), _ in ROWS])
def test_every_row_starts_from_a_phase_reachable_from_starting(
    key: tuple[Phase, Event], row: tuple[Phase, tuple[Step, ...]]
) -> None:
    assert key[0] in _reachable(Phase.STARTING)


def test_every_phase_is_reachable_from_starting() -> None:
    assert _reachable(Phase.STARTING) == set(Phase)


def test_every_event_is_used_by_some_row() -> None:
    assert {e for (_, e) in TRANSITIONS} == set(Event)


def test_every_step_is_emitted_by_some_row() -> None:
    assert {s for _, steps in TRANSITIONS.values() for s in steps} == set(Step)


def test_stopped_has_no_outgoing_rows() -> None:
    assert [key for key in TRANSITIONS if key[0] is Phase.STOPPED] == []


@pytest.mark.parametrize("phase", [p for p in Phase if p is not Phase.STOPPED], ids=str)
def test_every_live_phase_can_reach_stopped(phase: Phase) -> None:
    assert Phase.STOPPED in _reachable(phase)


def test_phases_only_move_forward() -> None:
    order = list(Phase)
    for (phase, event), (new, _) in TRANSITIONS.items():
        assert order.index(new) >= order.index(phase), f"{phase}+{event.value} goes back to {new}"


def test_only_stopping_loops_on_itself() -> None:
    self_loops = sorted((p.value, e.value) for (p, e), (new, _) in TRANSITIONS.items() if new is p)
    assert self_loops == [("stopping", "force"), ("stopping", "stop")]
    for (p, _), (new, steps) in TRANSITIONS.items():
        if new is p:
            assert steps == (), "a repeated signal while stopping must change nothing"


def test_finish_only_in_the_row_that_enters_stopped() -> None:
    with_finish = [key for key, (_, steps) in TRANSITIONS.items() if Step.FINISH in steps]
    entering_stopped = [key for key, (new, _) in TRANSITIONS.items() if new is Phase.STOPPED]
    assert with_finish == entering_stopped == [(Phase.STOPPING, Event.CLEANED_UP)]
    assert TRANSITIONS[Phase.STOPPING, Event.CLEANED_UP] == (Phase.STOPPED, (Step.FINISH,))


def test_forced_or_late_rows_from_draining_or_closing_cancel_before_cleanup() -> None:
    checked = []
    for (phase, event), (new, steps) in TRANSITIONS.items():
        if phase in (Phase.DRAINING, Phase.CLOSING) and event in (Event.FORCE, Event.DEADLINE):
            assert new is Phase.STOPPING
            assert Step.CANCEL_REMAINING in steps, f"{phase}+{event.value} does not cancel"
            assert Step.RUN_CLEANUP in steps, f"{phase}+{event.value} does not clean up"
            assert steps.index(Step.CANCEL_REMAINING) < steps.index(Step.RUN_CLEANUP)
            checked.append((phase, event))
    assert checked == [
        (Phase.DRAINING, Event.FORCE),
        (Phase.CLOSING, Event.DEADLINE),
        (Phase.CLOSING, Event.FORCE),
    ]


def test_every_row_entering_stopping_from_a_live_phase_runs_cleanup_last() -> None:
    for (phase, event), (new, steps) in TRANSITIONS.items():
        if new is Phase.STOPPING and phase is not Phase.STOPPING:
            assert steps[-1] is Step.RUN_CLEANUP, f"{phase}+{event.value}"


def test_a_drained_service_is_not_cancelled() -> None:
    assert TRANSITIONS[Phase.CLOSING, Event.DRAINED] == (Phase.STOPPING, (Step.RUN_CLEANUP,))


def test_the_listener_is_closed_on_every_path_out_of_serving() -> None:
    # Whichever way the service leaves STARTING/DRAINING, the listener is closed before cleanup runs.
    for key in [
        (Phase.STARTING, Event.START_FAILED),
        (Phase.STARTING, Event.STOP),
        (Phase.DRAINING, Event.LAME_DUCK_OVER),
        (Phase.DRAINING, Event.FORCE),
    ]:
        assert Step.CLOSE_LISTENER in TRANSITIONS[key][1], key


def test_the_first_stop_keeps_the_listener_open_for_the_lame_duck_window() -> None:
    assert TRANSITIONS[Phase.READY, Event.STOP] == (
        Phase.DRAINING,
        (Step.MARK_NOT_READY, Step.CONNECTION_CLOSE, Step.STOP_INTAKE),
    )


@pytest.mark.parametrize(("phase", "event"), ILLEGAL, ids=[f"{p.value}+{e.value}" for p, e in ILLEGAL])
def test_illegal_pair_raises_lifecycle_error_naming_phase_and_event(phase: Phase, event: Event) -> None:
    with pytest.raises(LifecycleError) as info:
        transition(phase, event)
    message = str(info.value)
    assert f"event {event.value!r}" in message
    assert f"in phase {phase.value!r}" in message


def test_illegal_pair_message_lists_what_is_allowed() -> None:
    with pytest.raises(LifecycleError) as info:
        transition(Phase.READY, Event.DRAINED)
    assert str(info.value) == "event 'drained' is not allowed in phase 'ready' (allowed: stop)"


def test_illegal_pair_in_stopped_says_nothing_is_allowed() -> None:
    with pytest.raises(LifecycleError) as info:
        transition(Phase.STOPPED, Event.STOP)
    assert str(info.value) == "event 'stop' is not allowed in phase 'stopped' (allowed: none)"


def test_illegal_pair_count() -> None:
    assert len(ILLEGAL) == len(Phase) * len(Event) - len(TRANSITIONS) == 36
