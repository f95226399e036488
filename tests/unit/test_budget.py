"""Budget.plan: how the grace period is split, and the refusals that show their arithmetic."""

from __future__ import annotations

import pytest

from lameduck.core.budget import (
    DEFAULT_CLEANUP,
    DEFAULT_MARGIN,
    KUBERNETES_GRACE,
    KUBERNETES_LAME_DUCK,
    MAX_CANCEL_WAIT,
    MIN_DERIVED_DRAIN,
    Budget,
)
from lameduck.errors import BudgetError, ConfigError


def test_constants_carry_the_documented_values() -> None:
    assert KUBERNETES_GRACE == 30.0
    assert KUBERNETES_LAME_DUCK == 5.0
    assert DEFAULT_CLEANUP == 3.0
    assert DEFAULT_MARGIN == 2.0
    assert MIN_DERIVED_DRAIN == 1.0
    assert MAX_CANCEL_WAIT == 1.0


def test_defaults_split_thirty_seconds() -> None:
    budget = Budget.plan()
    assert budget == Budget(grace=30.0, lame_duck=0.0, drain=25.0, cleanup=3.0, margin=2.0, drain_derived=True)
    assert budget.total == 30.0


def test_kubernetes_lame_duck_takes_five_seconds_from_the_drain() -> None:
    budget = Budget.plan(grace=30, lame_duck=5)
    assert (budget.lame_duck, budget.drain, budget.cleanup, budget.margin) == (5, 20, 3, 2)
    assert budget.drain_derived is True
    assert budget.total == 30


def test_explicit_drain_that_fits_is_kept_and_not_marked_derived() -> None:
    budget = Budget.plan(grace=30, lame_duck=5, drain=10)
    assert budget == Budget(grace=30, lame_duck=5, drain=10, cleanup=3, margin=2, drain_derived=False)
    assert budget.total == 20


def test_explicit_drain_that_exactly_fills_the_grace_is_accepted() -> None:
    budget = Budget.plan(grace=30, lame_duck=5, drain=20)
    assert budget.total == 30
    assert budget.drain == 20


def test_explicit_drain_zero_is_accepted() -> None:
    assert Budget.plan(grace=30, drain=0).drain == 0


def test_explicit_drain_that_does_not_fit_shows_the_sum_and_the_fix() -> None:
    with pytest.raises(BudgetError) as info:
        Budget.plan(grace=30, lame_duck=5, drain=40)
    assert str(info.value) == (
        "--drain-timeout: lame-duck 5 + drain 40 + cleanup 3 + margin 2 = 50 > grace 30; lower --drain-timeout to ≤ 20"
    )
    assert info.value.setting == "--drain-timeout"


def test_explicit_drain_one_tenth_too_long_is_refused() -> None:
    with pytest.raises(BudgetError) as info:
        Budget.plan(grace=30, lame_duck=5, drain=20.1)
    assert "= 30.1 > grace 30; lower --drain-timeout to ≤ 20" in str(info.value)


def test_when_even_a_zero_drain_cannot_fit_the_fix_is_more_grace() -> None:
    with pytest.raises(BudgetError) as info:
        Budget.plan(grace=8, lame_duck=5, drain=0, cleanup=3, margin=2)
    assert str(info.value) == (
        "--drain-timeout: lame-duck 5 + drain 0 + cleanup 3 + margin 2 = 10 > grace 8; "
        "raise --grace to ≥ 10 or lower --lame-duck/--cleanup-timeout"
    )


def test_derived_drain_below_one_second_names_grace() -> None:
    with pytest.raises(BudgetError) as info:
        Budget.plan(grace=10, lame_duck=5)
    assert info.value.setting == "--grace"
    assert str(info.value) == (
        "--grace: lame-duck 5 + cleanup 3 + margin 2 = 10 leaves 0 of grace 10 for the drain (needs ≥ 1); "
        "raise --grace to ≥ 11 or lower --lame-duck/--cleanup-timeout"
    )


def test_derived_drain_of_half_a_second_is_refused_and_shows_what_is_left() -> None:
    with pytest.raises(BudgetError) as info:
        Budget.plan(grace=10.5, lame_duck=5)
    assert "leaves 0.5 of grace 10.5 for the drain (needs ≥ 1); raise --grace to ≥ 11" in str(info.value)


def test_derived_drain_of_exactly_one_second_is_accepted() -> None:
    budget = Budget.plan(grace=11, lame_duck=5)
    assert budget.drain == 1.0
    assert budget.drain_derived is True


def test_derived_drain_of_one_second_survives_decimal_rounding() -> None:
    # 4.1 - (1.1 + 2) is 0.9999999999999996 in binary floating point; the explicit-drain path already allows
    # 1e-9 of rounding. Refusing here would print "raise --grace to ≥ 4.1" to someone whose grace is 4.1.
    budget = Budget.plan(grace=4.1, cleanup=1.1)
    assert budget.drain == pytest.approx(1.0)
    assert budget.total == pytest.approx(4.1)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"grace": -1}, "--grace: must be ≥ 0 seconds (got -1)"),
        ({"lame_duck": -0.5}, "--lame-duck: must be ≥ 0 seconds (got -0.5)"),
        ({"cleanup": -3}, "--cleanup-timeout: must be ≥ 0 seconds (got -3)"),
        ({"margin": -2}, "margin: must be ≥ 0 seconds (got -2)"),
        ({"drain": -1}, "--drain-timeout: must be ≥ 0 seconds (got -1)"),
        ({"grace": 0}, "--grace: must be > 0 seconds (got 0)"),
    ],
)
def test_negative_or_zero_values_raise_config_error(kwargs: dict[str, float], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        Budget.plan(**kwargs)
    assert type(info.value) is ConfigError  # not a BudgetError: nothing was summed
    assert str(info.value) == expected


def test_explain_prints_every_phase_row_and_the_sum() -> None:
    text = Budget.plan(grace=30, lame_duck=5).explain()
    assert text.splitlines() == [
        "t+ 0 s  signal: readiness 503, every response gets Connection: close",
        "t+ 5 s  lame-duck window (5 s) ends: listener closes, idle connections close",
        "t+25 s  drain deadline (20 s, derived: grace minus the other parts): what is still running is cancelled",
        "t+28 s  cleanup hooks done (3 s, each with its own timeout)",
        "t+30 s  margin (2 s) for cancellation, log flush and exit",
        "lame-duck 5 + drain 20 + cleanup 3 + margin 2 = 30 ≤ grace 30",
    ]


def test_explain_with_an_explicit_drain_has_no_derived_note_and_shows_the_slack() -> None:
    text = Budget.plan(grace=30, lame_duck=2.5, drain=10).explain()
    lines = text.splitlines()
    assert lines[0] == "t+   0 s  signal: readiness 503, every response gets Connection: close"
    assert lines[1] == "t+ 2.5 s  lame-duck window (2.5 s) ends: listener closes, idle connections close"
    assert lines[2] == "t+12.5 s  drain deadline (10 s): what is still running is cancelled"
    assert lines[3] == "t+15.5 s  cleanup hooks done (3 s, each with its own timeout)"
    assert lines[4] == "t+17.5 s  margin (2 s) for cancellation, log flush and exit"
    assert lines[5] == "lame-duck 2.5 + drain 10 + cleanup 3 + margin 2 = 17.5 ≤ grace 30"
    assert "derived" not in text


@pytest.mark.parametrize(
    ("margin", "cancel_wait"),
    [(0.0, 0.0), (0.5, 0.25), (1.0, 0.5), (2.0, 1.0), (3.0, 1.0), (10.0, 1.0)],
)
def test_cancel_wait_is_half_the_margin_capped_at_one_second(margin: float, cancel_wait: float) -> None:
    assert Budget.plan(grace=30, margin=margin).cancel_wait == cancel_wait


def test_budget_is_frozen() -> None:
    budget = Budget.plan()
    with pytest.raises(AttributeError):
        budget.drain = 1.0  # type: ignore[misc]
