"""What the contract suite needs to know about one backend (see backends.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lameduck.workers.broker import Broker


@dataclass
class Backend:
    name: str
    #: A new, unconnected broker over the same store (a second "process"), given a scratch directory.
    make: Callable[[Path], Broker]
    #: Remove everything belonging to ``queues`` (rows, streams, AMQP queues).
    cleanup: Callable[[Broker, Sequence[str]], Awaitable[None]]
    #: The shortest lease the backend honours reliably, for the expiry tests (seconds).
    lease: float = 0.5
    #: enqueue(key=...) deduplicates.
    dedup: bool = True
    #: wait() returns early when a job is enqueued (otherwise it polls, and only the timeout is checked).
    notifies: bool = True
    #: A dead worker's jobs come back by lease expiry (True) or at once when its connection drops (False).
    leases: bool = True
    #: A delivery after the worker died counts as a new attempt (RabbitMQ cannot tell it from a release).
    counts_crashes: bool = True
    #: status() can count running (claimed, unacknowledged) jobs; AMQP 0-9-1 cannot see another connection's.
    counts_running: bool = True
    #: Make a worker "die": by default it simply stops extending; push brokers drop the connection.
    kill: Callable[[Broker], Awaitable[None]] | None = None
