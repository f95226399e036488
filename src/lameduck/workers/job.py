"""A job as a handler sees it, and the token that tells a sync handler to stop."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from lameduck.errors import JobCancelledError


class CancelToken:
    """Set when the job must stop: the drain deadline passed, or the job's own timeout.

    Async handlers are cancelled for real (``CancelledError``); a sync handler runs in a thread that Python
    cannot interrupt, so it polls this token between steps (``raise_if_cancelled()``), or waits on it instead
    of sleeping (``wait(seconds)`` returns True early when cancelled). Thread-safe.
    """

    __slots__ = ("_event", "reason")

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def cancel(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds; True as soon as the token is cancelled."""
        return self._event.wait(timeout)

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise JobCancelledError(self.reason or "cancelled")


@dataclass(slots=True, eq=False)
class Job:
    """One delivery of a job to this worker.

    ``id`` is stable across deliveries (a retried or reclaimed job keeps it); ``attempt`` is 1 on the first
    delivery and counts failures and lost leases, not drain releases. ``idempotency_key`` is what a handler
    should key its side effects on (a payment id, an upsert key): a job whose worker died after the side
    effect but before the acknowledgement runs again.
    """

    id: str
    queue: str
    payload: Any
    attempt: int
    key: str | None = None
    #: The backend's own handle (row id, stream entry id, AMQP delivery); only the broker reads it.
    receipt: Any = None
    token: CancelToken = field(default_factory=CancelToken)

    @property
    def idempotency_key(self) -> str:
        return self.key if self.key is not None else f"{self.queue}:{self.id}"

    def __repr__(self) -> str:
        return f"<Job {self.queue}:{self.id} attempt={self.attempt}>"
