"""In-flight accounting by kind of work.

The per-request path updates a ``Tally`` in place (three slot increments per request); everything else uses
``begin``/``end``. ``Kind`` and ``Result`` are IntEnums so they index lists: hashing an enum member runs Python
code on 3.11. The ledger only counts; who gets cancelled is the runtime's business.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.IntEnum):
    """Kinds of accepted work the drain waits for."""

    REQUEST = 0
    WEBSOCKET = 1
    TASK = 2
    JOB = 3

    def __str__(self) -> str:
        return self.name.lower()


class Result(enum.IntEnum):
    """How a piece of accepted work ended."""

    COMPLETED = 0
    FAILED = 1  # the work raised; it was not cut short by the shutdown
    ABORTED = 2  # cancelled by the shutdown at the deadline

    def __str__(self) -> str:
        return self.name.lower()


class Tally:
    """One kind's counters. The per-request path bumps these slots directly (a method call costs more)."""

    __slots__ = ("aborted", "completed", "failed", "in_flight")

    def __init__(self) -> None:
        self.in_flight = 0
        self.completed = 0
        self.failed = 0
        self.aborted = 0


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


class Ledger:
    """Counts of work begun and ended, by ``Kind`` and ``Result``."""

    __slots__ = ("_tallies",)

    def __init__(self) -> None:
        self._tallies = [Tally() for _ in Kind]

    def tally(self, kind: Kind) -> Tally:
        """The counters of ``kind``, for a hot path that updates them in place (``in_flight += 1`` at the
        start; ``in_flight -= 1`` and one of ``completed``/``failed``/``aborted`` ``+= 1`` at the end)."""
        return self._tallies[kind]

    def begin(self, kind: Kind) -> None:
        self._tallies[kind].in_flight += 1

    def end(self, kind: Kind, result: Result = Result.COMPLETED) -> int:
        """Record the end of one piece of work; returns the total still in flight (of every kind)."""
        tally = self._tallies[kind]
        tally.in_flight -= 1
        if result is Result.COMPLETED:
            tally.completed += 1
        elif result is Result.FAILED:
            tally.failed += 1
        else:
            tally.aborted += 1
        return self.in_flight()

    def in_flight(self, kind: Kind | None = None) -> int:
        if kind is None:
            return sum(t.in_flight for t in self._tallies)
        return self._tallies[kind].in_flight

    def stats(self) -> LedgerStats:
        return LedgerStats(
            in_flight={k: self._tallies[k].in_flight for k in Kind},
            completed={k: self._tallies[k].completed for k in Kind},
            failed={k: self._tallies[k].failed for k in Kind},
            aborted={k: self._tallies[k].aborted for k in Kind},
        )
