"""One suite, every backend: the promises the worker runtime relies on (workers/broker.py).

The rule under test: a job leaves the queue only by ``ack`` (done) or ``bury`` (dead letter); ``release``,
``retry`` and an expired lease put it back, and no two live workers hold the same job.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lameduck.workers.broker import Broker
from tests.contract.backends import BACKENDS, Backend

T = TypeVar("T")
PAYLOADS: list[Any] = [
    {"order": 17, "amount": "12.50", "tags": ["a", "b"], "nested": {"x": None, "y": True}},
    ["list", 1, 2.5, None],
    "ünïcødé ✓",
    42,
    None,
]


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


@pytest.fixture(params=BACKENDS, ids=[b.name for b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param  # type: ignore[no-any-return]


def only_backends_with(capability: str) -> pytest.MarkDecorator:
    """Run a test on the backends that have ``capability`` (a ``Backend`` flag) and no others: not a skip, which
    CI would count as a failure, since the others document that they lack it."""
    chosen = [b for b in BACKENDS if getattr(b, capability)]
    return pytest.mark.parametrize("backend", chosen, ids=[b.name for b in chosen])


@pytest.fixture
def queues() -> list[str]:
    prefix = f"ct{uuid.uuid4().hex[:10]}"
    return [f"{prefix}-a", f"{prefix}-b"]


class World:
    """Brokers opened during one test ("processes"), closed and cleaned up at its end."""

    def __init__(self, backend: Backend, tmp: Path, queues: list[str]) -> None:
        self.backend = backend
        self.tmp = tmp
        self.queues = queues
        self.opened: list[Broker] = []

    async def producer(self) -> Broker:
        broker = self.backend.make(self.tmp)
        await broker.connect()
        self.opened.append(broker)
        return broker

    async def worker(self, name: str, *, queues: list[str] | None = None, lease: float | None = None) -> Broker:
        broker = await self.producer()
        await broker.subscribe(
            queues or self.queues[:1], worker_id=name, lease=lease or self.backend.lease, prefetch=50
        )
        return broker

    async def close(self) -> None:
        for broker in self.opened:
            with suppress(Exception):
                await broker.close()
        cleaner = self.backend.make(self.tmp)
        await cleaner.connect()
        try:
            await self.backend.cleanup(cleaner, self.queues)
        finally:
            await cleaner.close()


@asynccontextmanager
async def world(backend: Backend, tmp: Path, queues: list[str]) -> AsyncIterator[World]:
    w = World(backend, tmp, queues)
    try:
        yield w
    finally:
        await w.close()


async def claim_all(broker: Broker, want: int, *, limit: int = 100, within: float = 10.0) -> list[Any]:
    """Claim until ``want`` jobs arrived (push brokers deliver asynchronously) or ``within`` seconds passed."""
    got: list[Any] = []
    deadline = time.monotonic() + within
    while len(got) < want and time.monotonic() < deadline:
        batch = await broker.claim(min(limit, want - len(got)))
        got.extend(batch)
        if not batch:
            await broker.wait(0.05)
    return got


async def nothing_due(broker: Broker, for_seconds: float = 0.3) -> bool:
    """True when no job can be claimed for ``for_seconds`` (push brokers get time to deliver)."""
    deadline = time.monotonic() + for_seconds
    while time.monotonic() < deadline:
        batch = await broker.claim(10)
        if batch:
            await broker.release(batch)
            return False
        await asyncio.sleep(0.05)
    return True


def scenario(backend: Backend, tmp: Path, queues: list[str], body: Callable[[World], Awaitable[None]]) -> None:
    async def go() -> None:
        async with world(backend, tmp, queues) as w:
            await body(w)

    run(go())


# ---- the contract ------------------------------------------------------------------------------------------


def test_enqueue_then_claim_round_trips_payloads(backend: Backend, tmp_path: Path, queues: list[str]) -> None:
    async def body(w: World) -> None:
        producer = await w.producer()
        ids = [await producer.enqueue(queues[0], p) for p in PAYLOADS]
        assert len(set(ids)) == len(ids)
        worker = await w.worker("w1")
        jobs = await claim_all(worker, len(PAYLOADS))
        assert sorted(j.id for j in jobs) == sorted(ids)
        by_id = {j.id: j for j in jobs}
        for job_id, payload in zip(ids, PAYLOADS, strict=True):
            job = by_id[job_id]
            assert job.payload == payload
            assert job.attempt == 1
            assert job.queue == queues[0]
        await worker.ack(jobs)

    scenario(backend, tmp_path, queues, body)


def test_jobs_come_out_in_order(backend: Backend, tmp_path: Path, queues: list[str]) -> None:
    async def body(w: World) -> None:
        producer = await w.producer()
        ids = [await producer.enqueue(queues[0], {"n": n}) for n in range(20)]
        worker = await w.worker("w1")
        jobs = await claim_all(worker, 20, limit=5)
        assert [j.id for j in jobs] == ids
        await worker.ack(jobs)

    scenario(backend, tmp_path, queues, body)


def test_claim_respects_limit_and_subscription(backend: Backend, tmp_path: Path, queues: list[str]) -> None:
    async def body(w: World) -> None:
        producer = await w.producer()
        for n in range(5):
            await producer.enqueue(queues[0], n)
        other = await producer.enqueue(queues[1], "other queue")
        worker = await w.worker("w1", queues=queues[:1])
        first = await claim_all(worker, 3, limit=3)
        assert len(first) == 3
        rest = await claim_all(worker, 2, limit=10)
        assert len(rest) == 2
        assert other not in {j.id for j in first + rest}
        assert await nothing_due(worker)
        await worker.ack(first + rest)

    scenario(backend, tmp_path, queues, body)


def test_two_workers_never_hold_the_same_job(backend: Backend, tmp_path: Path, queues: list[str]) -> None:
    n = 200

    async def body(w: World) -> None:
        producer = await w.producer()
        ids = {await producer.enqueue(queues[0], i) for i in range(n)}
        workers = [await w.worker(f"w{i}", lease=30) for i in range(3)]
        seen: list[str] = []

        async def drain(broker: Broker) -> None:
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < 1.0:
                batch = await broker.claim(7)
                if batch:
                    idle_since = time.monotonic()
                    seen.extend(j.id for j in batch)
                    await broker.ack(batch)
                else:
                    await broker.wait(0.05)

        await asyncio.gather(*(drain(b) for b in workers))
        assert len(seen) == len(set(seen)), "a job was handed to two workers"
        assert set(seen) == ids

    scenario(backend, tmp_path, queues, body)


def test_acked_jobs_are_gone(backend: Backend, tmp_path: Path, queues: list[str]) -> None:
    async def body(w: World) -> None:
        producer = await w.producer()
        await producer.enqueue(queues[0], "x")
        worker = await w.worker("w1")
        jobs = await claim_all(worker, 1)
        await worker.ack(jobs)
        await worker.close()
        again = await w.worker("w2")
        assert await nothing_due(again, 0.3 + (backend.lease if backend.leases else 0))
        status = await producer.status()
        assert status.get(queues[0], {}).get("queued", 0) == 0
        assert status.get(queues[0], {}).get("running", 0) == 0

    scenario(backend, tmp_path, queues, body)


def test_released_jobs_return_at_once_without_counting_an_attempt(
    backend: Backend, tmp_path: Path, queues: list[str]
) -> None:
    async def body(w: World) -> None:
        producer = await w.producer()
        job_id = await producer.enqueue(queues[0], {"k": 1}, key="release-me")
        a = await w.worker("a", lease=30)
        [job] = await claim_all(a, 1)
        await a.stop_claiming()  # as the runner does: releases happen once intake has stopped
        await a.release([job])
        b = await w.worker("b", lease=30)
        [again] = await claim_all(b, 1, within=5)
        assert again.id == job_id
        assert again.payload == {"k": 1}
        assert again.attempt == 1
        await b.ack([again])

    scenario(backend, tmp_path, queues, body)


def test_retry_waits_for_its_delay_and_counts_the_attempt(backend: Backend, tmp_path: Path, queues: list[str]) -> None:
    async def body(w: World) -> None:
        producer = await w.producer()
        job_id = await producer.enqueue(queues[0], "flaky")
        worker = await w.worker("w1", lease=30)
        [job] = await claim_all(worker, 1)
        began = time.monotonic()
        await worker.retry(job, 1.0, "boom")
        assert await nothing_due(worker, 0.5)
        [again] = await claim_all(worker, 1, within=10)
        assert time.monotonic() - began >= 0.9
        assert again.id == job_id
        assert again.attempt == 2
        await worker.ack([again])

    scenario(backend, tmp_path, queues, body)


def test_buried_jobs_are_kept_as_dead_letters(backend: Backend, tmp_path: Path, queues: list[str]) -> None:
    async def body(w: World) -> None:
        producer = await w.producer()
        await producer.enqueue(queues[0], "poison")
        worker = await w.worker("w1", lease=30)
        [job] = await claim_all(worker, 1)
        await worker.bury(job, "ValueError: poison")
        assert await nothing_due(worker)
        status = await producer.status()
        assert status[queues[0]].get("dead") == 1

    scenario(backend, tmp_path, queues, body)


def test_a_dead_workers_jobs_come_back(backend: Backend, tmp_path: Path, queues: list[str]) -> None:
    async def body(w: World) -> None:
        producer = await w.producer()
        job_id = await producer.enqueue(queues[0], "orphan")
        a = await w.worker("a")
        [_job] = await claim_all(a, 1)
        died = time.monotonic()
        if backend.kill is not None:
            await backend.kill(a)
        b = await w.worker("b", lease=30)
        if backend.leases:
            assert await nothing_due(b, backend.lease * 0.5)
        [again] = await claim_all(b, 1, within=backend.lease + 5)
        assert again.id == job_id
        assert again.attempt == (2 if backend.counts_crashes else 1)
        if backend.leases:
            assert time.monotonic() - died >= backend.lease * 0.9
        assert time.monotonic() - died < backend.lease + 3
        await b.ack([again])

    scenario(backend, tmp_path, queues, body)


@only_backends_with("leases")
def test_extending_keeps_a_live_workers_job(backend: Backend, tmp_path: Path, queues: list[str]) -> None:
    async def body(w: World) -> None:
        producer = await w.producer()
        await producer.enqueue(queues[0], "long job")
        a = await w.worker("a")
        [job] = await claim_all(a, 1)
        b = await w.worker("b")
        until = time.monotonic() + backend.lease * 3
        while time.monotonic() < until:
            assert await a.extend([job]) == set()
            assert await nothing_due(b, backend.lease / 4)
        await a.ack([job])

    scenario(backend, tmp_path, queues, body)


@only_backends_with("leases")
def test_extend_reports_a_lost_lease(backend: Backend, tmp_path: Path, queues: list[str]) -> None:
    async def body(w: World) -> None:
        producer = await w.producer()
        await producer.enqueue(queues[0], "slow")
        a = await w.worker("a")
        [job] = await claim_all(a, 1)
        b = await w.worker("b", lease=30)
        [taken] = await claim_all(b, 1, within=backend.lease + 5)
        assert taken.id == job.id
        assert await a.extend([job]) == {job.id}
        await a.release([job])  # a release by the loser must not free the winner's job
        assert await nothing_due(a)
        await b.ack([taken])

    scenario(backend, tmp_path, queues, body)


@only_backends_with("dedup")
def test_idempotency_key_deduplicates(backend: Backend, tmp_path: Path, queues: list[str]) -> None:
    async def body(w: World) -> None:
        producer = await w.producer()
        first = await producer.enqueue(queues[0], {"pay": 1}, key="payment-17")
        second = await producer.enqueue(queues[0], {"pay": 1}, key="payment-17")
        other_queue = await producer.enqueue(queues[1], {"pay": 1}, key="payment-17")
        assert first == second
        assert other_queue != first
        worker = await w.worker("w1")
        jobs = await claim_all(worker, 1)
        assert [j.id for j in jobs] == [first]
        assert jobs[0].key == "payment-17"
        assert jobs[0].idempotency_key == "payment-17"
        assert await nothing_due(worker)
        await worker.ack(jobs)

    scenario(backend, tmp_path, queues, body)


def test_delayed_enqueue(backend: Backend, tmp_path: Path, queues: list[str]) -> None:
    async def body(w: World) -> None:
        producer = await w.producer()
        await producer.enqueue(queues[0], "later", delay=1.0)
        began = time.monotonic()
        worker = await w.worker("w1", lease=30)
        assert await nothing_due(worker, 0.5)
        [job] = await claim_all(worker, 1, within=10)
        assert time.monotonic() - began >= 0.9
        await worker.ack([job])

    scenario(backend, tmp_path, queues, body)


def test_wait_returns_when_a_job_arrives(backend: Backend, tmp_path: Path, queues: list[str]) -> None:
    async def body(w: World) -> None:
        worker = await w.worker("w1")
        producer = await w.producer()
        began = time.monotonic()
        await worker.wait(0.2)
        assert 0.1 <= time.monotonic() - began < 5, "wait() must honour its timeout"
        if not backend.notifies:
            return

        async def later() -> None:
            await asyncio.sleep(0.2)
            await producer.enqueue(queues[0], "wake up")

        began = time.monotonic()
        task = asyncio.get_running_loop().create_task(later())
        await worker.wait(10.0)
        await task
        assert time.monotonic() - began < 5, "wait() did not wake on enqueue"
        jobs = await claim_all(worker, 1)
        await worker.ack(jobs)

    scenario(backend, tmp_path, queues, body)


def test_status_counts_by_state(backend: Backend, tmp_path: Path, queues: list[str]) -> None:
    async def body(w: World) -> None:
        producer = await w.producer()
        for n in range(4):
            await producer.enqueue(queues[0], n)
        await producer.enqueue(queues[0], "later", delay=60)
        worker = await w.worker("w1", lease=30)
        jobs = await claim_all(worker, 4)
        await worker.ack(jobs[:1])
        await worker.bury(jobs[1], "dead")
        # jobs[2:] stay running
        status = await producer.status()
        counts = status[queues[0]]
        assert counts.get("done", 0) in (0, 1)  # brokers that delete on ack report no "done"
        assert counts.get("dead") == 1
        if backend.counts_running:
            assert counts.get("running") == 2
        else:
            assert "running" not in counts
        assert counts.get("scheduled", 0) + counts.get("queued", 0) == 1
        await worker.release(jobs[2:])

    scenario(backend, tmp_path, queues, body)
