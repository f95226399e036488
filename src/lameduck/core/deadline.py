"""Absolute deadlines on a monotonic clock the caller owns.

Deadlines are instants, not durations, so nested waits cannot stretch a budget: a hook that starts late gets
less time, never more (the trio ``CancelScope(deadline=...)`` and ``asyncio.timeout_at`` model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Deadline:
    """An instant on the caller's monotonic clock (``loop.time()`` at runtime, a fake clock in tests)."""

    at: float

    @classmethod
    def after(cls, now: float, seconds: float) -> Deadline:
        return cls(now + seconds)

    @classmethod
    def never(cls) -> Deadline:
        return cls(math.inf)

    def remaining(self, now: float) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - now)

    def expired(self, now: float) -> bool:
        return now >= self.at

    def min(self, *others: Deadline) -> Deadline:
        """The earliest of this and ``others``: a nested wait may only shorten the outer one."""
        return Deadline(min((self.at, *(o.at for o in others))))

    def __repr__(self) -> str:
        return f"Deadline(at={self.at:.3f})"
