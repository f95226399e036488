"""``Worker``: the object ``lameduck work MODULE:ATTR`` runs, declaring which handler serves which queue.

Declaration only: nothing connects or runs until ``lameduck work`` / ``lameduck serve --worker`` (or
``lameduck.run(worker=...)``) starts it, so a module can build its ``Worker`` at import time.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from lameduck.core.retry import RetryPolicy
from lameduck.errors import ConfigError
from lameduck.workers.broker import scheme_of
from lameduck.workers.job import Job

F = TypeVar("F", bound=Callable[..., Any])
HandlerFn = Callable[[Job], Any]


@dataclass(frozen=True, slots=True)
class Handler:
    """One queue's handler and its policies."""

    queue: str
    fn: HandlerFn
    is_async: bool
    #: Seconds one attempt may take (None: only the drain deadline bounds it); a timeout is a failure.
    timeout: float | None
    retry: RetryPolicy

    @property
    def name(self) -> str:
        return getattr(self.fn, "__qualname__", None) or repr(self.fn)


class Worker:
    """Handlers bound to queues, and the broker they consume from.

    ``broker`` is a URL (``sqlite:///jobs.db``, ``postgresql://…``, ``redis://…``, ``amqp://…``); ``--broker`` /
    ``LAMEDUCK_BROKER`` override it, so one code base can run against different backends per environment.
    """

    def __init__(self, broker: str | None = None, *, name: str = "worker") -> None:
        if broker is not None:
            scheme_of(broker)  # a bad URL is a ConfigError at import time, not at the first job
        self.broker = broker
        self.name = name
        self.handlers: dict[str, Handler] = {}

    def handler(
        self,
        queue: str,
        *,
        timeout: float | None = None,
        max_attempts: int = 5,
        backoff: float = 1.0,
        backoff_factor: float = 2.0,
        backoff_cap: float = 300.0,
        jitter: float = 0.5,
    ) -> Callable[[F], F]:
        """Register ``fn(job)`` (async, or sync: run in a thread, watching ``job.token``) for ``queue``.

        A failed attempt (an exception, or ``timeout``) is retried after ``backoff * backoff_factor ** (n - 1)``
        seconds (capped, jittered) until ``max_attempts``; then the job is buried as a dead letter.
        """
        if not queue or len(queue) > 200 or any(c.isspace() for c in queue):
            raise ConfigError("queue", f"must be 1..200 characters without spaces (got {queue!r})")
        if queue in self.handlers:
            raise ConfigError("queue", f"{queue!r} already has a handler ({self.handlers[queue].name})")
        if timeout is not None and not 0 < timeout <= 86400:
            raise ConfigError("timeout", f"must be None or 0 < s ≤ 86400 (got {timeout})")
        policy = RetryPolicy(max_attempts, backoff, backoff_factor, backoff_cap, jitter)

        def register(fn: F) -> F:
            is_async = inspect.iscoroutinefunction(fn) or (
                not inspect.isroutine(fn) and inspect.iscoroutinefunction(type(fn).__call__)
            )
            self.handlers[queue] = Handler(queue, fn, is_async, timeout, policy)
            return fn

        return register

    @property
    def queues(self) -> list[str]:
        return list(self.handlers)

    def __repr__(self) -> str:
        return f"<Worker {self.name} queues={self.queues}>"
