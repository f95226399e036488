"""Ledger (in-flight accounting by kind and result) and Deadline (absolute instants on the caller's clock)."""

from __future__ import annotations

import math

import pytest

from lameduck.core.deadline import Deadline
from lameduck.core.ledger import Kind, Ledger, LedgerStats, Result

# ---- Ledger ------------------------------------------------------------------------------------------------


def test_kind_and_result_values() -> None:
    # IntEnums, so the hot path can index lists with them; str() is the name logs and summaries show.
    assert [str(k) for k in Kind] == ["request", "websocket", "task", "job"]
    assert [str(r) for r in Result] == ["completed", "failed", "aborted"]
    assert [int(k) for k in Kind] == [0, 1, 2, 3]
    assert str(Kind.REQUEST) == "request"


def test_a_new_ledger_is_empty() -> None:
    ledger = Ledger()
    assert ledger.in_flight() == 0
    assert all(ledger.in_flight(k) == 0 for k in Kind)
    zero = dict.fromkeys(Kind, 0)
    assert ledger.stats() == LedgerStats(in_flight=zero, completed=zero, failed=zero, aborted=zero)


def test_begin_counts_by_kind() -> None:
    ledger = Ledger()
    ledger.begin(Kind.REQUEST)
    ledger.begin(Kind.REQUEST)
    ledger.begin(Kind.JOB)
    assert ledger.in_flight() == 3
    assert ledger.in_flight(Kind.REQUEST) == 2
    assert ledger.in_flight(Kind.JOB) == 1
    assert ledger.in_flight(Kind.TASK) == 0
    assert ledger.in_flight(Kind.WEBSOCKET) == 0


def test_end_returns_the_total_still_in_flight() -> None:
    ledger = Ledger()
    for kind in (Kind.REQUEST, Kind.WEBSOCKET, Kind.TASK):
        ledger.begin(kind)
    assert ledger.end(Kind.WEBSOCKET) == 2
    assert ledger.end(Kind.REQUEST, Result.FAILED) == 1
    assert ledger.end(Kind.TASK, Result.ABORTED) == 0
    assert ledger.in_flight() == 0


def test_end_defaults_to_completed() -> None:
    ledger = Ledger()
    ledger.begin(Kind.TASK)
    ledger.end(Kind.TASK)
    stats = ledger.stats()
    assert stats.completed[Kind.TASK] == 1
    assert stats.failed[Kind.TASK] == 0
    assert stats.aborted[Kind.TASK] == 0


def test_stats_by_kind_and_result() -> None:
    ledger = Ledger()
    for _ in range(5):
        ledger.begin(Kind.REQUEST)
    for _ in range(2):
        ledger.begin(Kind.JOB)
    ledger.begin(Kind.WEBSOCKET)
    ledger.end(Kind.REQUEST)
    ledger.end(Kind.REQUEST)
    ledger.end(Kind.REQUEST, Result.FAILED)
    ledger.end(Kind.REQUEST, Result.ABORTED)
    ledger.end(Kind.JOB, Result.ABORTED)
    stats = ledger.stats()
    assert stats == LedgerStats(
        in_flight={Kind.REQUEST: 1, Kind.WEBSOCKET: 1, Kind.TASK: 0, Kind.JOB: 1},
        completed={Kind.REQUEST: 2, Kind.WEBSOCKET: 0, Kind.TASK: 0, Kind.JOB: 0},
        failed={Kind.REQUEST: 1, Kind.WEBSOCKET: 0, Kind.TASK: 0, Kind.JOB: 0},
        aborted={Kind.REQUEST: 1, Kind.WEBSOCKET: 0, Kind.TASK: 0, Kind.JOB: 1},
    )
    assert stats.total_in_flight == 3
    assert stats.total_aborted == 2


def test_stats_is_a_snapshot() -> None:
    ledger = Ledger()
    ledger.begin(Kind.REQUEST)
    stats = ledger.stats()
    ledger.end(Kind.REQUEST)
    ledger.begin(Kind.TASK)
    assert stats.in_flight[Kind.REQUEST] == 1
    assert stats.in_flight[Kind.TASK] == 0
    assert stats.completed[Kind.REQUEST] == 0
    stats.in_flight[Kind.JOB] = 99  # editing a snapshot does not reach the ledger
    assert ledger.in_flight(Kind.JOB) == 0


def test_ledgers_do_not_share_counters() -> None:
    first, second = Ledger(), Ledger()
    first.begin(Kind.JOB)
    assert second.in_flight() == 0


# ---- Deadline ----------------------------------------------------------------------------------------------


def test_after_is_now_plus_seconds() -> None:
    assert Deadline.after(100.0, 2.5) == Deadline(102.5)
    assert Deadline.after(100.0, 0.0).at == 100.0


def test_remaining_counts_down_and_never_goes_negative() -> None:
    deadline = Deadline(10.0)
    assert deadline.remaining(4.0) == 6.0
    assert deadline.remaining(9.75) == 0.25
    assert deadline.remaining(10.0) == 0.0
    assert deadline.remaining(12.0) == 0.0


def test_expired_from_the_instant_itself() -> None:
    deadline = Deadline(10.0)
    assert deadline.expired(9.999) is False
    assert deadline.expired(10.0) is True
    assert deadline.expired(10.001) is True


def test_never() -> None:
    never = Deadline.never()
    assert never.at == math.inf
    assert never.expired(1e18) is False
    assert never.remaining(1e18) == math.inf
    assert never == Deadline.never()


def test_min_is_the_earliest() -> None:
    outer = Deadline(30.0)
    assert outer.min(Deadline(12.0)) == Deadline(12.0)
    assert outer.min(Deadline(45.0)) == Deadline(30.0)
    assert outer.min(Deadline(20.0), Deadline(5.0), Deadline(25.0)) == Deadline(5.0)
    assert Deadline.never().min(outer) == Deadline(30.0)
    assert outer.min(Deadline.never()) == outer


def test_min_with_no_others_is_itself() -> None:
    # ``deadline.min(*nested)`` with an empty ``nested`` must not crash.
    assert Deadline(30.0).min() == Deadline(30.0)
    assert Deadline(30.0).min(*[]) == Deadline(30.0)


def test_min_only_shortens() -> None:
    outer = Deadline(30.0)
    for other in (Deadline(1.0), Deadline(29.0), Deadline(31.0), Deadline.never()):
        assert outer.min(other).at <= outer.at


def test_deadline_is_frozen_and_hashable() -> None:
    deadline = Deadline(1.0)
    with pytest.raises(AttributeError):
        deadline.at = 2.0  # type: ignore[misc]
    assert {Deadline(1.0), Deadline(1.0), Deadline(2.0)} == {Deadline(1.0), Deadline(2.0)}


def test_repr() -> None:
    assert repr(Deadline(12.3456)) == "Deadline(at=12.346)"
    assert repr(Deadline.never()) == "Deadline(at=inf)"


def test_tally_is_the_same_counters_the_ledger_reports() -> None:
    ledger = Ledger()
    requests = ledger.tally(Kind.REQUEST)
    requests.in_flight += 2
    requests.in_flight -= 1
    requests.completed += 1
    ledger.end(Kind.REQUEST, Result.ABORTED)
    stats = ledger.stats()
    assert stats.in_flight[Kind.REQUEST] == 0
    assert stats.completed[Kind.REQUEST] == 1
    assert stats.aborted[Kind.REQUEST] == 1
