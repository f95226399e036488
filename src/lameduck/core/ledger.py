"""In-flight accounting by kind of work.

The per-request path calls ``begin``/``end`` twice per request, so both are two dictionary updates and
nothing more. The ledger only counts; who gets cancelled is the runtime's business.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Kind(enum.StrEnum):
    """Kinds of accepted work the drain waits for."""

    REQUEST = "request"
    WEBSOCKET = "websocket"
    TASK = "task"
    JOB = "job"


class Result(enum.StrEnum):
    """How a piece of accepted work ended."""

    COMPLETED = "completed"
    FAILED = "failed"  # the work raised; it was not cut short by the shutdown
    ABORTED = "aborted"  # cancelled by the shutdown at the deadline


@dataclass(frozen=True, slots=True)
class LedgerStats:
    in_flight: dict[Kind, int]
    completed: dict[Kind, int]
    failed: dict[Kind, int]
    aborted: dict[Kind, int]

    @property
    def total_in_flight(self) -> int:
        return sum(self.in_flight.values())

    @property
    def total_aborted(self) -> int:
        return sum(self.aborted.values())


@dataclass(slots=True)
class Ledger:
    """Counts of work begun and ended, by ``Kind``."""

    _in_flight: dict[Kind, int] = field(default_factory=lambda: dict.fromkeys(Kind, 0))
    _ended: dict[tuple[Kind, Result], int] = field(default_factory=lambda: {(k, r): 0 for k in Kind for r in Result})

    def begin(self, kind: Kind) -> None:
        self._in_flight[kind] += 1

    def end(self, kind: Kind, result: Result = Result.COMPLETED) -> int:
        """Record the end of one piece of work; returns the total still in flight."""
        self._in_flight[kind] -= 1
        self._ended[kind, result] += 1
        return self.in_flight()

    def in_flight(self, kind: Kind | None = None) -> int:
        if kind is None:
            return sum(self._in_flight.values())
        return self._in_flight[kind]

    def stats(self) -> LedgerStats:
        def by(result: Result) -> dict[Kind, int]:
            return {k: self._ended[k, result] for k in Kind}

        return LedgerStats(
            in_flight=dict(self._in_flight),
            completed=by(Result.COMPLETED),
            failed=by(Result.FAILED),
            aborted=by(Result.ABORTED),
        )
