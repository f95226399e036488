"""What the Redis backend promises beyond the contract suite, on the real Redis (``LAMEDUCK_TEST_REDIS_URL``).

Connection loss (CLIENT KILL), ownership checks that a careless XCLAIM would break, cancelling wait() at SIGTERM,
and the atomic move of delayed jobs under two consumers. Every test uses fresh queue names under a test prefix and
deletes its keys at the end; every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry

from lameduck.errors import BrokerError
from lameduck.workers import redis_streams
from lameduck.workers.job import Job
from lameduck.workers.redis_streams import RedisStreamsBroker
from tests.contract.backend_redis import SERVER, delete_queues

T = TypeVar("T")
PREFIX = "lameduck-itest"
URL = f"{SERVER}{'&' if '?' in SERVER else '?'}prefix={PREFIX}"


def _reachable() -> bool:
    parts = urlsplit(SERVER)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1):
            return True
    except OSError:
        return False


# In CI a skip fails the session (tests/conftest.py), so a CI machine without Redis fails here, as it should.
pytestmark = pytest.mark.skipif(not _reachable(), reason=f"no Redis at {SERVER} (scripts/services starts it)")


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


class Scene:
    """Brokers and an admin client for one test; closes them and deletes the test's keys at the end."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:10]
        self.queue = f"it{tag}"
        self.queues = [self.queue, f"it{tag}-other"]
        self.admin = aioredis.from_url(SERVER, decode_responses=True)
        self.opened: list[RedisStreamsBroker] = []

    async def broker(self, url: str = URL) -> RedisStreamsBroker:
        broker = RedisStreamsBroker(url)
        await broker.connect()
        self.opened.append(broker)
        return broker

    async def worker(self, name: str, *, lease: float = 30.0) -> RedisStreamsBroker:
        broker = await self.broker()
        await broker.subscribe([self.queue], worker_id=name, lease=lease, prefetch=50)
        return broker

    async def connection_ids(self, name: str) -> set[int]:
        return {int(c["id"]) for c in await self.admin.client_list() if c.get("name") == name}

    async def kill(self, name: str) -> int:
        """CLIENT KILL every connection named ``name``; returns how many there were."""
        ids = await self.connection_ids(name)
        for client_id in ids:
            await self.admin.client_kill_filter(_id=str(client_id))
        return len(ids)

    async def close(self) -> None:
        for broker in self.opened:
            with suppress(Exception):
                await broker.close()
        try:
            await delete_queues(self.queues, prefix=PREFIX)
        finally:
            await self.admin.aclose()


@asynccontextmanager
async def scene() -> AsyncIterator[Scene]:
    s = Scene()
    try:
        yield s
    finally:
        await s.close()


async def claim_n(broker: RedisStreamsBroker, want: int, *, within: float = 10.0) -> list[Job]:
    got: list[Job] = []
    deadline = time.monotonic() + within
    while len(got) < want and time.monotonic() < deadline:
        batch = await broker.claim(want - len(got))
        got += batch
        if not batch:
            await broker.wait(0.05)
    return got


# ---- a lost connection --------------------------------------------------------------------------------------


@pytest.mark.parametrize("retries", [True, False], ids=["redis-py-retry", "no-retry"])
def test_client_kill_fails_at_most_one_call_and_the_next_succeeds(
    retries: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not retries:  # without redis-py's one retry, the broker must still come back by itself on the next call
        monkeypatch.setattr(redis_streams, "Retry", lambda backoff, _retries, **kw: Retry(backoff, 0, **kw))

    async def after_kill(s: Scene, broker: RedisStreamsBroker, call: Callable[[], Awaitable[T]]) -> T:
        """Kill ``broker``'s connection, then ``call``: at most one failure, and the next call must succeed."""
        assert await s.kill(broker.client_name) == 1
        errors: list[BrokerError] = []
        for _ in range(2):
            try:
                return await call()
            except BrokerError as exc:
                errors.append(exc)
            # one line naming backend, operation and cause, with the cause chained
            assert all(str(e).startswith("redis ") and "\n" not in str(e) for e in errors), errors
            assert all(isinstance(e.__cause__, aioredis.RedisError) for e in errors)
        raise AssertionError(f"two calls failed after one CLIENT KILL: {errors}")

    async def body() -> None:
        async with scene() as s:
            producer = await s.broker()
            worker = await s.worker("w1")
            await producer.enqueue(s.queue, "warm up")
            await worker.ack(await claim_n(worker, 1))
            for round_ in range(3):
                await after_kill(s, producer, partial(producer.enqueue, s.queue, round_))
                jobs = await after_kill(s, worker, partial(claim_n, worker, 1))
                assert [job.payload for job in jobs] == [round_]
                assert await after_kill(s, worker, partial(worker.extend, jobs)) == set()
                await after_kill(s, worker, partial(worker.ack, jobs))
                await after_kill(s, producer, producer.status)
            status = (await producer.status())[s.queue]
            assert status["queued"] == status["running"] == 0

    run(body())


def test_a_kill_during_wait_breaks_neither_wait_for_long_nor_the_main_connection() -> None:
    async def body() -> None:
        async with scene() as s:
            worker = await s.worker("w1")
            main_before = await s.connection_ids(worker.client_name)
            task = asyncio.get_running_loop().create_task(worker.wait(5.0))
            await asyncio.sleep(0.2)
            assert await s.kill(f"{worker.client_name}-wait") == 1
            with suppress(BrokerError):
                await asyncio.wait_for(task, 6.0)
            assert await s.connection_ids(worker.client_name) == main_before
            began = time.monotonic()
            await worker.wait(0.2)
            assert time.monotonic() - began < 2

    run(body())


def test_connect_to_nothing_raises_a_one_line_broker_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    broker = RedisStreamsBroker(f"redis://127.0.0.1:{port}/0?socket_connect_timeout=1")
    with pytest.raises(BrokerError) as caught:
        run(broker.connect())
    message = str(caught.value)
    assert message.startswith(f"redis 127.0.0.1:{port}/0: connect failed: ConnectionError")
    assert "\n" not in message
    assert isinstance(caught.value.__cause__, aioredis.ConnectionError)


# ---- ownership ----------------------------------------------------------------------------------------------


def test_extend_never_steals_an_entry_another_consumer_holds() -> None:
    async def body() -> None:
        async with scene() as s:
            producer = await s.broker()
            await producer.enqueue(s.queue, "held by a")
            a = await s.worker("a")
            b = await s.worker("b")
            [job] = await claim_n(a, 1)
            await asyncio.sleep(0.3)
            assert await b.extend([job]) == {job.id}, "b does not hold the job: its lease is lost, not taken"
            [pending] = await s.admin.xpending_range(producer.stream(s.queue), "lameduck", "-", "+", 10)
            assert pending["consumer"] == "a"
            assert pending["times_delivered"] == 1
            assert int(pending["time_since_delivered"]) >= 250, "b's extend reset the idle time of a's entry"
            assert await a.extend([job]) == set()
            [pending] = await s.admin.xpending_range(producer.stream(s.queue), "lameduck", "-", "+", 10)
            assert pending["consumer"] == "a"
            assert pending["times_delivered"] == 1, "extending is not a delivery"
            assert int(pending["time_since_delivered"]) < 250
            await b.release([job])  # not b's to give back either
            assert await b.claim(10) == []
            await a.ack([job])

    run(body())


def test_a_crash_counts_as_an_attempt_and_a_release_does_not() -> None:
    async def body() -> None:
        async with scene() as s:
            producer = await s.broker()
            job_id = await producer.enqueue(s.queue, {"n": 1})
            a = await s.worker("a", lease=0.3)
            [first] = await claim_n(a, 1)
            assert first.attempt == 1
            b = await s.worker("b")  # a "dies": it never extends, its lease runs out
            [reclaimed] = await claim_n(b, 1, within=5)
            assert (reclaimed.id, reclaimed.attempt) == (job_id, 2)
            await b.release([reclaimed])
            [again] = await claim_n(b, 1)
            assert (again.id, again.attempt) == (job_id, 2)
            await b.retry(again, 0, "boom")
            [third] = await claim_n(b, 1)
            assert (third.id, third.attempt) == (job_id, 3)
            await b.bury(third, "ValueError: poison\nwith a traceback")
            [(_, dead)] = await s.admin.xrange(f"{PREFIX}:{{{s.queue}}}:dead")
            assert dead["id"] == job_id
            assert dead["attempts"] == "3"
            assert dead["error"] == "ValueError: poison\nwith a traceback"
            assert dead["payload"] == '{"n": 1}'

    run(body())


# ---- cancelling wait() --------------------------------------------------------------------------------------


def test_cancelling_wait_leaves_the_broker_usable() -> None:
    async def body() -> None:
        async with scene() as s:
            producer = await s.broker()
            worker = await s.worker("w1")
            await worker.claim(1)  # the main connection exists now
            main_before = await s.connection_ids(worker.client_name)
            assert len(main_before) == 1
            loop = asyncio.get_running_loop()
            # Cancel at many points: while connecting, planning, blocked in XREAD. Python 3.11's wait_for (used by
            # redis-py for every send) can swallow a cancel landing at the wrong moment; wait() must not.
            for n in range(60):
                task = loop.create_task(worker.wait(10.0))
                await asyncio.sleep(0.0002 * n)
                cancelled_at = time.monotonic()
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
                assert task.cancelled() or task.done()
                assert time.monotonic() - cancelled_at < 0.5, f"cancel {n} took a whole block"
            assert await s.connection_ids(worker.client_name) == main_before, "cancelling wait() hit the main one"
            await producer.enqueue(s.queue, "after the cancels")
            [job] = await claim_n(worker, 1)
            await worker.ack([job])

            async def later() -> None:
                await asyncio.sleep(0.2)
                await producer.enqueue(s.queue, "wake up")

            began = time.monotonic()
            enqueuer = loop.create_task(later())
            await worker.wait(10.0)
            await enqueuer
            assert time.monotonic() - began < 3, "wait() no longer wakes on enqueue"

    run(body())


def test_wait_longer_than_the_socket_timeout_returns_early_without_an_error() -> None:
    async def body() -> None:
        async with scene() as s:
            worker = await s.broker(f"{URL}&socket_timeout=1")
            await worker.subscribe([s.queue], worker_id="w1", lease=30, prefetch=1)
            began = time.monotonic()
            await worker.wait(3.0)  # an early return is allowed; a TimeoutError is not
            assert 0.5 <= time.monotonic() - began < 1.5

    run(body())


def test_wait_wakes_when_a_delayed_job_falls_due() -> None:
    async def body() -> None:
        async with scene() as s:
            producer = await s.broker()
            worker = await s.worker("w1")
            await producer.enqueue(s.queue, "later", delay=0.5)
            began = time.monotonic()
            await worker.wait(10.0)
            assert 0.3 <= time.monotonic() - began < 3
            [job] = await claim_n(worker, 1, within=2)
            await worker.ack([job])

    run(body())


# ---- delayed jobs -------------------------------------------------------------------------------------------


def test_delayed_promotion_is_atomic_under_two_consumers(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small promotion batches: the two consumers take turns moving due jobs, so a non-atomic move would show.
    monkeypatch.setattr(redis_streams, "PROMOTE_BATCH", 3)
    n = 200

    async def body() -> None:
        async with scene() as s:
            producer = await s.broker()
            ids = {await producer.enqueue(s.queue, i, delay=0.2 + (i % 5) * 0.05) for i in range(n)}
            workers = [await s.worker("a"), await s.worker("b")]
            seen: list[str] = []

            async def consume(broker: RedisStreamsBroker) -> None:
                deadline = time.monotonic() + 15
                while len(seen) < n and time.monotonic() < deadline:
                    batch = await broker.claim(7)
                    seen.extend(job.id for job in batch)
                    if batch:
                        await broker.ack(batch)
                    else:
                        await broker.wait(0.02)

            await asyncio.gather(*(consume(w) for w in workers))
            assert len(seen) == len(set(seen)), "a delayed job was promoted twice"
            assert set(seen) == ids, "a delayed job was lost"
            counts = (await producer.status())[s.queue]
            assert counts == {"queued": 0, "running": 0, "scheduled": 0, "dead": 0}

    run(body())


# ---- the URL ------------------------------------------------------------------------------------------------


def test_url_options_prefix_and_key_ttl() -> None:
    async def body() -> None:
        async with scene() as s:
            producer = await s.broker(f"{URL}&key_ttl=60")
            first = await producer.enqueue(s.queue, 1, key="k")
            assert await producer.enqueue(s.queue, 2, key="k") == first
            ttl = await s.admin.pttl(f"{PREFIX}:{{{s.queue}}}:key:k")
            assert 0 < ttl <= 60_000
            assert await s.admin.xlen(f"{PREFIX}:{{{s.queue}}}") == 1
            assert s.queue in await producer.status()

    run(body())


def test_declare_status_of_named_queues_and_close_forgets_only_idle_consumers() -> None:
    async def body() -> None:
        async with scene() as s:
            producer = await s.broker()
            await producer.declare(s.queues)
            assert await s.admin.xinfo_groups(producer.stream(s.queues[1])) != []
            await producer.enqueue(s.queue, "held")
            holder = await s.worker("holder")
            idle = await s.worker("idle")
            assert len(await claim_n(holder, 1)) == 1
            assert await idle.claim(1) == []
            counts = await producer.status([s.queues[1]])
            assert counts == {s.queues[1]: {"queued": 0, "running": 0, "scheduled": 0, "dead": 0}}
            assert (await producer.status())[s.queue]["running"] == 1
            await holder.close()
            await idle.close()
            consumers = {c["name"] for c in await s.admin.xinfo_consumers(producer.stream(s.queue), "lameduck")}
            assert consumers == {"holder"}, "an idle consumer is forgotten; one holding a job must stay"

    run(body())
