"""The shutdown budget: how the platform's grace period is split between the phases.

SIGTERM starts the platform's countdown; SIGKILL ends it. Everything lameduck does after the signal has to fit
inside it, so the parts are derived from the grace period, never hard-coded, and a plan that cannot fit is
refused with the arithmetic in the message (``BudgetError``).
"""

from __future__ import annotations

from dataclasses import dataclass

from lameduck.errors import BudgetError, ConfigError

#: Kubernetes' default terminationGracePeriodSeconds.
KUBERNETES_GRACE = 30.0
#: Lame-duck window under Kubernetes: endpoint removal takes 1-5 s to reach kube-proxy and ingresses in a
#: normal cluster (SHUTDOWN.md §1). Locally nothing routes to us, so 0.
KUBERNETES_LAME_DUCK = 5.0
#: Default budget for all cleanup hooks together (each hook also has its own timeout).
DEFAULT_CLEANUP = 3.0
#: Reserved after cleanup for cancellation to propagate, logs to flush and the interpreter to exit.
DEFAULT_MARGIN = 2.0
#: A derived drain shorter than this is almost certainly a mistake: requests would be cut at once.
MIN_DERIVED_DRAIN = 1.0
#: Longest wait for cancelled work to unwind before it is abandoned; taken out of the margin.
MAX_CANCEL_WAIT = 1.0


def format_seconds(x: float) -> str:
    """Seconds as a person writes them: 5, 2.5, 0.25 (every message about the budget uses it)."""
    return f"{x:g}"


_n = format_seconds


@dataclass(frozen=True, slots=True)
class Budget:
    """A validated split of ``grace`` into lame-duck + drain + cleanup + margin (all seconds)."""

    grace: float
    lame_duck: float
    drain: float
    cleanup: float
    margin: float
    drain_derived: bool = False

    @classmethod
    def plan(
        cls,
        *,
        grace: float = KUBERNETES_GRACE,
        lame_duck: float = 0.0,
        drain: float | None = None,
        cleanup: float = DEFAULT_CLEANUP,
        margin: float = DEFAULT_MARGIN,
    ) -> Budget:
        """Split ``grace``; ``drain=None`` takes whatever the other parts leave.

        Raises ``BudgetError`` naming the setting to change and the value that would fit.
        """
        for name, value in (
            ("--grace", grace),
            ("--lame-duck", lame_duck),
            ("--cleanup-timeout", cleanup),
            ("margin", margin),
        ):
            if value < 0:
                raise ConfigError(name, f"must be ≥ 0 seconds (got {_n(value)})")
        if grace <= 0:
            raise ConfigError("--grace", f"must be > 0 seconds (got {_n(grace)})")
        fixed = lame_duck + cleanup + margin
        if drain is None:
            left = grace - fixed
            if left < MIN_DERIVED_DRAIN - 1e-9:  # decimal settings (4.1 - 1.1 - 2) must not miss by 4e-16
                raise BudgetError(
                    "--grace",
                    f"lame-duck {_n(lame_duck)} + cleanup {_n(cleanup)} + margin {_n(margin)} = {_n(fixed)} "
                    f"leaves {_n(max(left, 0))} of grace {_n(grace)} for the drain (needs ≥ {_n(MIN_DERIVED_DRAIN)}); "
                    f"raise --grace to ≥ {_n(fixed + MIN_DERIVED_DRAIN)} or lower --lame-duck/--cleanup-timeout",
                )
            return cls(grace, lame_duck, left, cleanup, margin, drain_derived=True)
        if drain < 0:
            raise ConfigError("--drain-timeout", f"must be ≥ 0 seconds (got {_n(drain)})")
        total = fixed + drain
        if total > grace + 1e-9:
            fit = grace - fixed
            fix = (
                f"lower --drain-timeout to ≤ {_n(fit)}"
                if fit >= 0
                else f"raise --grace to ≥ {_n(total)} or lower --lame-duck/--cleanup-timeout"
            )
            raise BudgetError(
                "--drain-timeout",
                f"lame-duck {_n(lame_duck)} + drain {_n(drain)} + cleanup {_n(cleanup)} + margin {_n(margin)} "
                f"= {_n(total)} > grace {_n(grace)}; {fix}",
            )
        return cls(grace, lame_duck, drain, cleanup, margin, drain_derived=False)

    @property
    def total(self) -> float:
        return self.lame_duck + self.drain + self.cleanup + self.margin

    @property
    def cancel_wait(self) -> float:
        """How long cancelled work may take to unwind: half the margin, at most ``MAX_CANCEL_WAIT``."""
        return min(MAX_CANCEL_WAIT, self.margin / 2)

    def timeline(self) -> list[tuple[float, str]]:
        """(seconds after SIGTERM, what happens then): the rows of ``explain()``, for reports that lay them out."""
        t1 = self.lame_duck
        t2 = t1 + self.drain
        t3 = t2 + self.cleanup
        drain_note = ", derived: grace minus the other parts" if self.drain_derived else ""
        return [
            (0.0, "signal: readiness 503, every response gets Connection: close"),
            (t1, f"lame-duck window ({_n(self.lame_duck)} s) ends: listener closes, idle connections close"),
            (t2, f"drain deadline ({_n(self.drain)} s{drain_note}): what is still running is cancelled"),
            (t3, f"cleanup hooks done ({_n(self.cleanup)} s, each with its own timeout)"),
            (self.total, f"margin ({_n(self.margin)} s) for cancellation, log flush and exit"),
        ]

    def sum(self) -> str:
        """The parts and their total: ``lame-duck 5 + drain 20 + cleanup 3 + margin 2 = 30``."""
        return (
            f"lame-duck {_n(self.lame_duck)} + drain {_n(self.drain)} + cleanup {_n(self.cleanup)} "
            f"+ margin {_n(self.margin)} = {_n(self.total)}"
        )

    def arithmetic(self) -> str:
        """The sum against the grace period: ``lame-duck 5 + drain 20 + cleanup 3 + margin 2 = 30 ≤ grace 30``."""
        return f"{self.sum()} ≤ grace {_n(self.grace)}"

    def explain(self) -> str:
        """The timeline after SIGTERM, as the runtime will follow it (also printed by ``lameduck budget``)."""
        rows = [(_n(at), what) for at, what in self.timeline()]
        width = max(len(t) for t, _ in rows)
        lines = [f"t+{t.rjust(width)} s  {what}" for t, what in rows]
        lines.append(self.arithmetic())
        return "\n".join(lines)
