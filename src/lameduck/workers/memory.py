"""An in-process queue with the same semantics as the real backends: for tests above the adapters, and demos.

Not durable and not shared between processes (``memory://NAME`` names a store shared within one process). Leases
use the monotonic clock, so "the worker died" is simulated by a subscriber that stops extending.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from lameduck.workers.job import Job


@dataclass(slots=True)
class _Row:
    id: str
    queue: str
    payload: Any
    key: str | None
    state: str = "queued"  # queued | running | done | dead
    attempts: int = 0
    run_at: float = 0.0
    claimed_by: str | None = None
    lease_expires_at: float = 0.0
    error: str | None = None


class _Store:
    def __init__(self) -> None:
        self.rows: dict[str, _Row] = {}
        self.keys: dict[tuple[str, str], str] = {}
        self.ids = itertools.count(1)
        self.waiters: set[asyncio.Event] = set()

    def notify(self) -> None:
        for event in self.waiters:
            event.set()


class MemoryBroker:
    kind = "memory"
    _stores: ClassVar[dict[str, _Store]] = {}

    def __init__(self, store: _Store | None = None, *, clock: Any = time.monotonic) -> None:
        self._store = store or _Store()
        self._clock = clock
        self._queues: tuple[str, ...] = ()
        self._worker_id = ""
        self._lease = 30.0
        self._event: asyncio.Event | None = None

    @classmethod
    def named(cls, name: str) -> MemoryBroker:
        """A broker over the process-wide store called ``name`` (created on first use)."""
        store = cls._stores.setdefault(name, _Store())
        return cls(store)

    @classmethod
    def reset(cls, name: str) -> None:
        cls._stores.pop(name, None)

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        if self._event is not None:
            self._store.waiters.discard(self._event)
            self._event = None

    async def declare(self, queues: Sequence[str]) -> None:
        return None

    async def enqueue(self, queue: str, payload: Any, *, key: str | None = None, delay: float = 0.0) -> str:
        store = self._store
        if key is not None and (queue, key) in store.keys:
            return store.keys[queue, key]
        job_id = str(next(store.ids))
        store.rows[job_id] = _Row(job_id, queue, payload, key, run_at=self._clock() + max(delay, 0.0))
        if key is not None:
            store.keys[queue, key] = job_id
        store.notify()
        return job_id

    async def subscribe(self, queues: Sequence[str], *, worker_id: str, lease: float, prefetch: int) -> None:
        self._queues = tuple(queues)
        self._worker_id = worker_id
        self._lease = lease
        self._event = asyncio.Event()
        self._store.waiters.add(self._event)

    async def claim(self, limit: int) -> list[Job]:
        now = self._clock()
        jobs: list[Job] = []
        for row in self._store.rows.values():
            if len(jobs) >= limit:
                break
            if row.queue not in self._queues:
                continue
            due = (row.state == "queued" and row.run_at <= now) or (
                row.state == "running" and row.lease_expires_at <= now
            )
            if not due:
                continue
            row.state = "running"
            row.claimed_by = self._worker_id
            row.lease_expires_at = now + self._lease
            row.attempts += 1
            jobs.append(Job(row.id, row.queue, row.payload, row.attempts, row.key, receipt=row.id))
        return jobs

    async def wait(self, timeout: float) -> None:
        event = self._event
        if event is None:
            await asyncio.sleep(timeout)
            return
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            pass
        event.clear()

    def _mine(self, job: Job) -> _Row | None:
        row = self._store.rows.get(job.id)
        if row is None or row.state != "running" or row.claimed_by != self._worker_id:
            return None
        return row

    async def extend(self, jobs: Sequence[Job]) -> set[str]:
        lost: set[str] = set()
        until = self._clock() + self._lease
        for job in jobs:
            row = self._mine(job)
            if row is None:
                lost.add(job.id)
            else:
                row.lease_expires_at = until
        return lost

    async def ack(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            row = self._store.rows.get(job.id)
            if row is not None and row.state == "running":
                row.state, row.claimed_by = "done", None

    async def retry(self, job: Job, delay: float, error: str) -> None:
        row = self._mine(job)
        if row is not None:
            row.state, row.claimed_by, row.error = "queued", None, error
            row.run_at = self._clock() + max(delay, 0.0)
            self._store.notify()

    async def bury(self, job: Job, error: str) -> None:
        row = self._store.rows.get(job.id)
        if row is not None and row.state == "running":
            row.state, row.claimed_by, row.error = "dead", None, error

    async def release(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            row = self._mine(job)
            if row is not None:
                row.state, row.claimed_by = "queued", None
                row.attempts -= 1
                row.run_at = self._clock()
        self._store.notify()

    async def stop_claiming(self) -> list[Job]:
        return []

    async def status(self, queues: Sequence[str] | None = None) -> Mapping[str, Mapping[str, int]]:
        now = self._clock()
        counts: dict[str, dict[str, int]] = {}
        for row in self._store.rows.values():
            if queues is not None and row.queue not in queues:
                continue
            state = "scheduled" if row.state == "queued" and row.run_at > now else row.state
            per = counts.setdefault(row.queue, {})
            per[state] = per.get(state, 0) + 1
        return counts
