"""The narrow protocol every queue backend implements, and how a URL picks one.

The worker runtime (runner.py) owns concurrency, deadlines, retries and the poison policy; a backend only moves
jobs between states, atomically: claim (with a lease), extend, ack, retry, bury, release. The rule that keeps
"nothing accepted is lost": a job leaves the queue only through ``ack`` (it completed) or ``bury`` (the poison
policy gave up, and it is kept as a dead letter). Everything else puts it back: ``release`` at once (not counted as
an attempt), ``retry`` after a delay, an expired lease after the worker died.

tests/contract/ runs one suite against every backend; a new backend is done when that suite passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from lameduck.errors import ConfigError
from lameduck.workers.job import Job

#: Job states as ``lameduck jobs status`` shows them (backends without a state map what they can).
STATES = ("queued", "running", "scheduled", "done", "dead")


class Broker(Protocol):
    """A queue backend. Methods raise ``BrokerError`` when the backend fails; the runner retries them."""

    #: "sqlite", "postgres", "redis", "rabbitmq" or "memory": for logs and the summary.
    kind: str

    async def connect(self) -> None:
        """Open connections; create the schema/streams/queues idempotently (safe from many processes)."""

    async def close(self) -> None:
        """Close connections. Jobs still claimed keep their lease (or are requeued by the broker)."""

    async def declare(self, queues: Sequence[str]) -> None:
        """Create what ``queues`` need (streams and groups, AMQP queues) idempotently; SQL backends need nothing
        per queue. ``lameduck jobs init --queue NAME`` calls it."""

    async def enqueue(self, queue: str, payload: Any, *, key: str | None = None, delay: float = 0.0) -> str:
        """Add a job; returns its id. With ``key``, a second enqueue of the same key on the same queue is a no-op
        that returns the first job's id (where the backend supports it: see its module)."""

    async def subscribe(self, queues: Sequence[str], *, worker_id: str, lease: float, prefetch: int) -> None:
        """Start consuming ``queues`` as ``worker_id``: claims hold a ``lease`` of that many seconds; a push
        broker delivers at most ``prefetch`` unacknowledged jobs."""

    async def claim(self, limit: int) -> list[Job]:
        """Take up to ``limit`` jobs that are due, including those whose lease expired (their worker died).

        Never blocks for long: returns ``[]`` when nothing is due (``wait`` is for waiting).
        """

    async def wait(self, timeout: float) -> None:
        """Return when jobs may be due (a notification) or after ``timeout`` seconds. Safe to cancel."""

    async def extend(self, jobs: Sequence[Job]) -> set[str]:
        """Push the leases of ``jobs`` forward by the lease; returns the ids whose lease this worker lost."""

    async def ack(self, jobs: Sequence[Job]) -> None:
        """The jobs completed: remove them from the queue (one round trip for the batch)."""

    async def retry(self, job: Job, delay: float, error: str) -> None:
        """The attempt failed: make the job due again after ``delay`` seconds (the attempt counts)."""

    async def bury(self, job: Job, error: str) -> None:
        """Give up: keep the job as a dead letter with ``error``; it is not run again."""

    async def release(self, jobs: Sequence[Job]) -> None:
        """Give unfinished jobs back at once, their attempt not counted (drain, or claimed after intake stopped)."""

    async def stop_claiming(self) -> list[Job]:
        """Stop deliveries (a push broker cancels its consumer). Returns jobs delivered but never handed out by
        ``claim``; the runner releases them."""

    async def status(self, queues: Sequence[str] | None = None) -> Mapping[str, Mapping[str, int]]:
        """Counts by queue and state (``STATES``), for ``lameduck jobs status``: of ``queues``, or of every
        queue the backend can list (None)."""


#: URL scheme -> backend (config.BROKER_SCHEMES lists the same schemes for validating --broker).
SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
    "redis": "redis",
    "rediss": "redis",
    "amqp": "rabbitmq",
    "amqps": "rabbitmq",
    "memory": "memory",
}
#: The embedded default: a SQLite file in the working directory, shared by the processes on one machine.
DEFAULT_URL = "sqlite:///lameduck-jobs.sqlite3"


def scheme_of(url: str) -> str:
    """The backend a URL names, or ``ConfigError`` listing the ones there are."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise ConfigError("--broker", f"must be a URL starting with one of {known} (got {url!r})")
    return SCHEMES[scheme]


def open_broker(url: str) -> Broker:
    """The backend for ``url`` (not yet connected). Backends import their client library only when chosen."""
    kind = scheme_of(url)
    if kind == "memory":
        from lameduck.workers.memory import MemoryBroker

        return MemoryBroker.named(urlsplit(url).netloc or "default")
    if kind == "sqlite":
        from lameduck.workers.sqlite import SQLiteBroker

        return SQLiteBroker(url)
    if kind == "postgres":
        from lameduck.workers.postgres import PostgresBroker

        return PostgresBroker(url)
    if kind == "redis":
        from lameduck.workers.redis_streams import RedisStreamsBroker

        return RedisStreamsBroker(url)
    from lameduck.workers.rabbitmq import RabbitMQBroker

    return RabbitMQBroker(url)
