"""What to do with a job whose handler failed: retry after a backoff, or bury it (the poison policy).

Sans-I/O: the caller passes the attempt number and a number in [0, 1) for the jitter, so tests get exact
answers and the worker can use a seeded ``random.Random``. Lease arithmetic lives here too: it is the same kind
of decision (how long until someone else may take the job), and both must be explainable without a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from lameduck.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Retry:
    """Run the job again after ``delay`` seconds; the failed attempt counts."""

    delay: float


@dataclass(frozen=True, slots=True)
class Bury:
    """Stop trying: move the job to the dead letters with its last error."""

    reason: str


Decision = Retry | Bury


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped, and a maximum number of attempts.

    The delay before attempt ``n + 1`` is ``min(cap, base * factor ** (n - 1))``, scaled into
    ``[1 - jitter, 1]`` of itself: jitter spreads a thundering herd of retries (every job that failed because
    a dependency was down) without ever waiting longer than the cap.
    """

    max_attempts: int = 5
    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 1000:
            raise ConfigError("max_attempts", f"must be 1..1000 (got {self.max_attempts})")
        if not 0 <= self.base <= 86400 or not 0 <= self.cap <= 86400:
            raise ConfigError("backoff", f"base and cap must be 0..86400 seconds (got {self.base}, {self.cap})")
        if not 1 <= self.factor <= 10:
            raise ConfigError("backoff factor", f"must be 1..10 (got {self.factor})")
        if not 0 <= self.jitter <= 1:
            raise ConfigError("jitter", f"must be 0..1 (got {self.jitter})")

    def delay(self, attempt: int, rand: float) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based); ``rand`` in [0, 1)."""
        exponent = min(max(attempt - 1, 0), 64)  # 2**64 s is past any cap; avoids float overflow
        raw = min(self.cap, self.base * self.factor**exponent)
        return raw * (1.0 - self.jitter * rand)

    def decide(self, attempt: int, rand: float) -> Decision:
        """After attempt ``attempt`` failed: retry, or bury once ``max_attempts`` are used up."""
        if attempt >= self.max_attempts:
            return Bury(f"failed {attempt} of {self.max_attempts} attempts")
        return Retry(self.delay(attempt, rand))

    def over(self, attempt: int) -> bool:
        """True for a claim beyond ``max_attempts``: the earlier ones died with their worker (the job
        probably kills it), so it is buried instead of run again."""
        return attempt > self.max_attempts


def heartbeat_interval(lease: float) -> float:
    """How often live jobs' leases are extended: three chances before the lease runs out."""
    return lease / 3.0
