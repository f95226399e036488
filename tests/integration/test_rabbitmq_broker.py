"""What only the RabbitMQ backend does, on the real RabbitMQ (``LAMEDUCK_TEST_AMQP_URL``, default localhost).

The contract suite (tests/contract) covers the promises every backend keeps; these pin the AMQP mechanics behind
them: prefetch, basic.cancel on stop_claiming, a connection lost under the broker, delays through QUEUE.delay,
and the delivery limit that stops a crash loop. Every queue a test creates is deleted at its end.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

import pytest

from lameduck.errors import BrokerError
from lameduck.workers.job import Job
from lameduck.workers.rabbitmq import DELIVERY_LIMIT, ERROR, RabbitMQBroker
from tests.contract.backend_rabbitmq import URL, delete_queues, kill

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"it{uuid.uuid4().hex[:10]}"
    yield name
    run(delete_queues([name]))


@asynccontextmanager
async def brokers(url: str = URL) -> AsyncIterator[list[RabbitMQBroker]]:
    """Opened brokers go in the list; all are closed at the end, whatever happened to them."""
    opened: list[RabbitMQBroker] = []
    try:
        yield opened
    finally:
        for broker in opened:
            with suppress(BrokerError):
                await broker.close()


async def open_broker(opened: list[RabbitMQBroker], url: str = URL) -> RabbitMQBroker:
    broker = RabbitMQBroker(url)
    await broker.connect()
    opened.append(broker)
    return broker


async def open_worker(opened: list[RabbitMQBroker], queue: str, *, prefetch: int, url: str = URL) -> RabbitMQBroker:
    broker = await open_broker(opened, url)
    await broker.subscribe([queue], worker_id=f"w{len(opened)}", lease=30, prefetch=prefetch)
    return broker


async def take(broker: RabbitMQBroker, want: int, *, within: float = 5.0) -> list[Job]:
    """Claim until ``want`` jobs arrived or ``within`` seconds passed (deliveries are asynchronous)."""
    got: list[Job] = []
    deadline = time.monotonic() + within
    while len(got) < want and time.monotonic() < deadline:
        got.extend(await broker.claim(want - len(got)))
        if len(got) < want:
            await broker.wait(0.05)
    return got


async def settled(broker: RabbitMQBroker, seconds: float = 0.5) -> list[Job]:
    """Whatever ``broker`` can claim within ``seconds``: gives deliveries that should not come time to come."""
    got: list[Job] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got.extend(await broker.claim(100))
        await asyncio.sleep(0.05)
    return got


# ---- prefetch ----------------------------------------------------------------------------------------------


def test_prefetch_bounds_the_unacknowledged_deliveries(queue: str) -> None:
    async def body() -> None:
        async with brokers() as opened:
            producer = await open_broker(opened)
            ids = [await producer.enqueue(queue, n) for n in range(10)]
            worker = await open_worker(opened, queue, prefetch=3)
            first = await take(worker, 3)
            assert [j.id for j in first] == ids[:3]
            assert await settled(worker) == [], "more deliveries than the prefetch while none was acked"
            await worker.ack(first[:2])
            second = await take(worker, 2)
            assert [j.id for j in second] == ids[3:5]
            assert await settled(worker) == []
            await worker.ack([first[2], *second])

    run(body())


# ---- stop_claiming -----------------------------------------------------------------------------------------


def test_stop_claiming_returns_the_buffered_and_hands_out_nothing_more(queue: str) -> None:
    async def body() -> None:
        async with brokers() as opened:
            producer = await open_broker(opened)
            ids = [await producer.enqueue(queue, n) for n in range(5)]
            worker = await open_worker(opened, queue, prefetch=5)
            running = await take(worker, 2)
            await asyncio.sleep(0.3)  # the other three are delivered into the local buffer meanwhile
            leftovers = await worker.stop_claiming()
            assert [j.id for j in leftovers] == ids[2:]
            late = await producer.enqueue(queue, "after the cancel")
            assert await settled(worker) == [], "a job was handed out after stop_claiming"
            await worker.release(leftovers)
            await worker.ack(running)  # the consumer is cancelled, its deliveries can still be settled
            other = await open_worker(opened, queue, prefetch=10)
            rest = await take(other, 4)
            assert sorted(j.id for j in rest) == sorted([*ids[2:], late])
            assert all(j.attempt == 1 for j in rest), "a release must not count as an attempt"
            await other.ack(rest)
            assert await settled(other) == []

    run(body())


def test_release_while_consuming_stops_intake_so_another_worker_gets_the_job(queue: str) -> None:
    async def body() -> None:
        async with brokers() as opened:
            producer = await open_broker(opened)
            job_id = await producer.enqueue(queue, "give me back")
            first = await open_worker(opened, queue, prefetch=5)
            [job] = await take(first, 1)
            await first.release([job])
            second = await open_worker(opened, queue, prefetch=5)
            [again] = await take(second, 1)
            assert (again.id, again.attempt) == (job_id, 1)
            assert await first.claim(10) == []
            await second.ack([again])

    run(body())


# ---- a connection lost under the broker --------------------------------------------------------------------


async def rabbitmqctl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(30):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, f"rabbitmqctl {' '.join(args)}: {err.decode()}"
    return out.decode()


async def close_connection_named(name: str) -> None:
    """Have the server close the connection whose client called itself ``name`` (AMQP ``?name=`` in the URL)."""
    listing = await rabbitmqctl("list_connections", "--silent", "pid", "client_properties")
    pids = [line.split("\t")[0] for line in listing.splitlines() if f'"{name}"' in line]
    assert len(pids) == 1, f"no single connection named {name!r} in:\n{listing}"
    await rabbitmqctl("close_connection", pids[0], "lameduck test: closed under the broker")


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl on PATH (run as root)")
def test_a_connection_closed_by_the_server_fails_one_call_and_the_next_reconnects(queue: str) -> None:
    name = f"lameduck-test-{uuid.uuid4().hex[:8]}"

    async def body() -> None:
        async with brokers() as opened:
            producer = await open_broker(opened)
            job_id = await producer.enqueue(queue, {"n": 1}, key="k-1")
            worker = await open_worker(opened, queue, prefetch=5, url=f"{URL}?name={name}")
            [job] = await take(worker, 1)
            await close_connection_named(name)
            began = time.monotonic()
            await worker.wait(10)  # wakes when the loss is noticed
            assert time.monotonic() - began < 5
            assert await worker.extend([job]) == {job.id}, "a delivery of the closed connection is a lost lease"
            with pytest.raises(BrokerError, match=r"^rabbitmq 127\.0\.0\.1:5672: claim failed: connection lost"):
                await worker.claim(10)
            # The call after reconnects and consumes again: the broker requeued the job, the crash not counted.
            [again] = await take(worker, 1)
            assert (again.id, again.attempt, again.key, again.payload) == (job_id, 1, "k-1", {"n": 1})
            await worker.ack([job])  # the dead delivery cannot be acked: a no-op, the job is still there
            assert await worker.extend([again]) == set()
            await worker.ack([again])
            assert (await producer.status([queue]))[queue]["queued"] == 0

    run(body())


def test_an_aborted_socket_fails_one_call_and_the_next_reconnects(queue: str) -> None:
    async def body() -> None:
        async with brokers() as opened:
            producer = await open_broker(opened)
            await producer.enqueue(queue, "before")
            await kill(producer)
            with pytest.raises(BrokerError, match=r"^rabbitmq 127\.0\.0\.1:5672: enqueue failed: ") as caught:
                await producer.enqueue(queue, "lost")
            assert "\n" not in str(caught.value)
            assert caught.value.__cause__ is not None
            after = await producer.enqueue(queue, "after")
            worker = await open_worker(opened, queue, prefetch=5)
            jobs = await take(worker, 2)
            assert [j.payload for j in jobs] == ["before", "after"]
            assert jobs[1].id == after
            await worker.ack(jobs)

    run(body())


def test_an_unreachable_broker_is_a_broker_error() -> None:
    async def body() -> None:
        broker = RabbitMQBroker("amqp://guest:guest@127.0.0.1:1/")
        with pytest.raises(BrokerError, match=r"^rabbitmq 127\.0\.0\.1:1: connect failed: ") as caught:
            await broker.connect()
        assert "\n" not in str(caught.value)
        await broker.close()

    run(body())


# ---- delays and dead letters -------------------------------------------------------------------------------


def test_a_retry_with_a_delay_waits_in_the_delay_queue(queue: str) -> None:
    async def body() -> None:
        async with brokers() as opened:
            producer = await open_broker(opened)
            job_id = await producer.enqueue(queue, {"x": 1}, key="idem")
            worker = await open_worker(opened, queue, prefetch=5)
            [job] = await take(worker, 1)
            began = time.monotonic()
            await worker.retry(job, 1.5, "ValueError: flaky")
            assert (await producer.status([queue]))[queue] == {"queued": 0, "scheduled": 1, "dead": 0}
            assert await settled(worker, 1.0) == []
            [again] = await take(worker, 1, within=10)
            assert time.monotonic() - began >= 1.4
            assert (again.id, again.attempt, again.key, again.payload) == (job_id, 2, "idem", {"x": 1})
            assert again.receipt.headers[ERROR] == "ValueError: flaky"
            await worker.ack([again])

    run(body())


def test_a_job_that_keeps_killing_its_worker_ends_as_a_dead_letter(queue: str) -> None:
    """The delivery limit is the crash-loop backstop, since a crash does not count as an attempt."""

    async def body() -> None:
        async with brokers() as opened:
            producer = await open_broker(opened)
            job_id = await producer.enqueue(queue, "poison")
            deliveries = 0
            for _ in range(DELIVERY_LIMIT + 5):
                worker = await open_worker(opened, queue, prefetch=1)
                jobs = await take(worker, 1, within=2)
                await kill(worker)
                if not jobs:
                    break
                assert jobs[0].id == job_id
                deliveries += 1
            # The first delivery plus DELIVERY_LIMIT returns; the next one would exceed the limit.
            assert deliveries == DELIVERY_LIMIT + 1
            for _ in range(50):  # dead-lettering is asynchronous: up to 5 s
                counts = (await producer.status([queue]))[queue]
                if counts["dead"]:
                    break
                await asyncio.sleep(0.1)
            assert counts == {"queued": 0, "scheduled": 0, "dead": 1}

    run(body())
