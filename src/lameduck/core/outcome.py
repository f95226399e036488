"""What happened during a shutdown, and the exit code it maps to.

Exit codes are part of the interface (README "Exit codes"); orchestrators and scripts branch on them, so they
never depend on whether the process is PID 1 or which signal arrived.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from lameduck.core.ledger import Kind


class ExitCode(enum.IntEnum):
    CLEAN = 0  # every accepted request, task and job finished; every hook succeeded
    ABORTED = 1  # accepted work was cancelled at the deadline, or a cleanup hook failed or timed out
    USAGE = 2  # invalid command line, environment or settings; nothing was bound or started
    STARTUP_FAILED = 3  # the app could not start (lifespan startup failed, timed out, or the port was taken)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The facts of one run, as counted by the core."""

    signal: str | None = None
    forced: bool = False  # a second signal or the drain deadline cut the drain short
    startup_error: str | None = None
    startup_aborted: bool = False  # a signal arrived before the app finished starting
    completed: dict[Kind, int] = field(default_factory=dict)
    failed: dict[Kind, int] = field(default_factory=dict)
    aborted: dict[Kind, int] = field(default_factory=dict)
    failed_hooks: tuple[str, ...] = ()

    @property
    def total_aborted(self) -> int:
        return sum(self.aborted.values())

    @property
    def exit_code(self) -> ExitCode:
        if self.startup_error is not None:
            return ExitCode.STARTUP_FAILED
        if self.total_aborted or self.failed_hooks:
            return ExitCode.ABORTED
        return ExitCode.CLEAN

    @property
    def verdict(self) -> str:
        """One word for the summary line."""
        return {
            ExitCode.CLEAN: "clean",
            ExitCode.ABORTED: "aborted",
            ExitCode.STARTUP_FAILED: "startup-failed",
        }[self.exit_code]
