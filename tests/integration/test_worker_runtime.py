"""The worker runtime above the adapters: a real driver, real probes socket, the in-memory broker.

Each test runs ``lameduck.serve.serve`` (what ``lameduck work`` runs) in this process and stops it through the
same entry point a signal uses (``request_stop``). The broker is the memory backend, whose semantics the contract
suite pins to the real ones; faults are injected by a subclass that fails chosen calls.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lameduck.config import Settings
from lameduck.core.outcome import Outcome
from lameduck.errors import BrokerError
from lameduck.runtime import api, events
from lameduck.runtime.driver import Driver
from lameduck.runtime.hooks import Registry
from lameduck.serve import serve
from lameduck.servers import listener
from lameduck.workers.job import Job
from lameduck.workers.memory import MemoryBroker
from lameduck.workers.worker import Worker

Control = Callable[[Driver, MemoryBroker], Awaitable[None]]


class Run:
    def __init__(self, outcome: Outcome, log: list[dict[str, Any]], broker: MemoryBroker) -> None:
        self.outcome = outcome
        self.log = log
        self.broker = broker

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.log if e["event"] == f"lameduck.{name}"]

    @property
    def summary(self) -> dict[str, Any]:
        [line] = self.named("summary")
        return line

    async def status(self, queue: str) -> dict[str, int]:
        return dict((await self.broker.status()).get(queue, {}))


def run_worker(
    worker: Worker, control: Control, *, broker: MemoryBroker | None = None, timeout: float = 30, **settings: Any
) -> Run:
    broker = broker or MemoryBroker.named(uuid.uuid4().hex)
    values = {"port": 0, "grace": 6, "cleanup_timeout": 1, "poll_interval": 0.05, "watchdog": 0, **settings}
    config = Settings.load(values, {}, work_only=True)
    stream = io.StringIO()
    events.configure("json", "debug", stream)
    sock = listener.bind("127.0.0.1", 0, 64)

    async def main() -> Outcome:
        async def drive() -> None:
            for _ in range(500):
                if api.is_running():
                    break
                await asyncio.sleep(0.01)
            await control(api.current(), broker)

        async with asyncio.timeout(timeout):
            controller = asyncio.get_running_loop().create_task(drive())
            outcome = await serve(None, config, [sock], Registry(), worker=worker, broker=broker)
            await controller
            return outcome

    outcome = asyncio.run(main())
    log = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    return Run(outcome, log, broker)


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def ready(driver: Driver) -> None:
    await until(driver.lifecycle.is_ready)


def test_jobs_are_handled_and_acknowledged() -> None:
    worker = Worker()
    done: list[Any] = []

    @worker.handler("emails")
    async def send(job: Job) -> None:
        done.append(job.payload)

    async def control(driver: Driver, broker: MemoryBroker) -> None:
        for n in range(50):
            await broker.enqueue("emails", {"n": n})
        await ready(driver)
        await until(lambda: len(done) == 50)
        driver.request_stop("test")

    run = run_worker(worker, control)
    assert run.outcome.exit_code == 0
    assert sorted(p["n"] for p in done) == list(range(50))
    assert run.summary["jobs"]["completed"] == 50
    assert asyncio.run(run.status("emails")) == {"done": 50}


def test_concurrency_is_capped() -> None:
    worker = Worker()
    active = 0
    peak = 0
    finished = 0

    @worker.handler("work")
    async def handle(job: Job) -> None:
        nonlocal active, peak, finished
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.02)
        active -= 1
        finished += 1

    async def control(driver: Driver, broker: MemoryBroker) -> None:
        for n in range(40):
            await broker.enqueue("work", n)
        await ready(driver)
        await until(lambda: finished == 40)
        driver.request_stop("test")

    run = run_worker(worker, control, concurrency=3)
    assert run.outcome.exit_code == 0
    assert peak == 3


def test_failures_are_retried_with_backoff_then_buried() -> None:
    worker = Worker()
    attempts: list[tuple[int, float]] = []

    @worker.handler("flaky", max_attempts=3, backoff=0.2, jitter=0)
    async def handle(job: Job) -> None:
        attempts.append((job.attempt, time.monotonic()))
        raise ValueError("upstream said no")

    async def control(driver: Driver, broker: MemoryBroker) -> None:
        await broker.enqueue("flaky", {})
        await ready(driver)
        await until(lambda: len(attempts) == 3)
        await until(lambda: bool(driver.intakes[0].figures()["jobs"].get("dead")))
        driver.request_stop("test")

    run = run_worker(worker, control)
    assert [a for a, _ in attempts] == [1, 2, 3]
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.18
    assert gaps[1] >= 0.38
    assert len(run.named("job.failed")) == 2
    [dead] = run.named("job.dead")
    assert "ValueError: upstream said no" in dead["error"]
    assert asyncio.run(run.status("flaky")) == {"dead": 1}
    assert run.outcome.exit_code == 0  # the job failed; the shutdown aborted nothing
    assert run.summary["jobs"]["dead"] == 1


def test_a_job_timeout_is_a_failed_attempt() -> None:
    worker = Worker()
    calls = 0

    @worker.handler("slow", timeout=0.1, max_attempts=2, backoff=0.05)
    async def handle(job: Job) -> None:
        nonlocal calls
        calls += 1
        if job.attempt == 1:
            await asyncio.sleep(5)

    async def control(driver: Driver, broker: MemoryBroker) -> None:
        await broker.enqueue("slow", "x")
        await ready(driver)
        await until(lambda: driver.intakes[0].figures()["jobs"]["completed"] == 1)
        driver.request_stop("test")

    run = run_worker(worker, control)
    assert calls == 2
    [failed] = run.named("job.failed")
    assert "timeout of 0.1 s" in failed["error"]
    assert run.outcome.exit_code == 0


def test_stop_claims_nothing_new_and_finishes_what_runs() -> None:
    worker = Worker()
    started: list[int] = []
    finished: list[int] = []

    @worker.handler("jobs")
    async def handle(job: Job) -> None:
        started.append(job.payload)
        await asyncio.sleep(0.5)
        finished.append(job.payload)

    async def control(driver: Driver, broker: MemoryBroker) -> None:
        for n in range(10):
            await broker.enqueue("jobs", n)
        await ready(driver)
        await until(lambda: len(started) == 4)
        driver.request_stop("test")

    run = run_worker(worker, control, concurrency=4)
    assert run.outcome.exit_code == 0
    assert sorted(finished) == sorted(started)
    assert len(started) == 4
    assert asyncio.run(run.status("jobs")) == {"done": 4, "queued": 6}
    [stopped] = run.named("worker.intake_stopped")
    assert stopped["ms"] < 500  # the target is < 100 ms: bench/ measures it; this only catches a hang
    assert run.summary["jobs"]["completed"] == 4


def test_the_deadline_releases_unfinished_jobs_without_counting_the_attempt() -> None:
    worker = Worker()
    started = 0

    @worker.handler("long")
    async def handle(job: Job) -> None:
        nonlocal started
        started += 1
        await asyncio.sleep(60)

    async def control(driver: Driver, broker: MemoryBroker) -> None:
        for n in range(3):
            await broker.enqueue("long", n)
        await ready(driver)
        await until(lambda: started == 3)
        driver.request_stop("test")

    run = run_worker(worker, control, drain_timeout=0.5)
    assert run.outcome.exit_code == 1
    assert run.summary["jobs"]["released"] == 3
    assert run.summary["aborted"] == {"job": 3}
    assert asyncio.run(run.status("long")) == {"queued": 3}
    rows = run.broker._store.rows.values()
    assert all(r.attempts == 0 for r in rows)  # released: the interrupted attempt does not count


def test_sync_handlers_run_in_threads_and_see_the_token() -> None:
    worker = Worker()
    saw_token = threading.Event()
    threads: set[str] = set()

    @worker.handler("sync")
    def handle(job: Job) -> None:
        threads.add(threading.current_thread().name)
        if job.payload == "forever":
            for _ in range(3000):  # bounded: 30 s at most
                if job.token.wait(0.01):
                    saw_token.set()
                    job.token.raise_if_cancelled()
            raise AssertionError("the token never fired")

    async def control(driver: Driver, broker: MemoryBroker) -> None:
        await broker.enqueue("sync", "quick")
        await ready(driver)
        await until(lambda: driver.intakes[0].figures()["jobs"]["completed"] == 1)
        await broker.enqueue("sync", "forever")
        await until(lambda: driver.lifecycle.ledger.in_flight() == 1)
        driver.request_stop("test")

    run = run_worker(worker, control, drain_timeout=0.3)
    assert saw_token.wait(5)
    assert all(name.startswith("lameduck-job") for name in threads)
    assert run.outcome.exit_code == 1
    assert asyncio.run(run.status("sync")) == {"done": 1, "queued": 1}


def test_a_handler_that_ignores_cancellation_is_abandoned_and_its_job_released() -> None:
    worker = Worker()
    started = asyncio.Event()

    @worker.handler("stubborn")
    async def handle(job: Job) -> None:
        started.set()
        for _ in range(100):  # bounded: swallows cancellation for up to ~10 s
            try:
                await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                continue

    async def control(driver: Driver, broker: MemoryBroker) -> None:
        await broker.enqueue("stubborn", "x")
        await ready(driver)
        await started.wait()
        driver.request_stop("test")

    run = run_worker(worker, control, drain_timeout=0.3)
    assert run.outcome.exit_code == 1
    assert run.named("drain.abandoned")
    assert run.named("jobs.abandoned")
    assert asyncio.run(run.status("stubborn")) == {"queued": 1}


class FlakyAcks(MemoryBroker):
    """Fails the first ``failures`` acks, as a database restarting under the worker would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def ack(self, jobs: Any) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise BrokerError("memory broker: ack failed: injected")
        await super().ack(jobs)


def test_broker_faults_are_retried_within_the_budget() -> None:
    worker = Worker()
    handled = 0

    @worker.handler("q")
    async def handle(job: Job) -> None:
        nonlocal handled
        handled += 1

    async def control(driver: Driver, broker: MemoryBroker) -> None:
        await broker.enqueue("q", 1)
        await ready(driver)
        await until(lambda: driver.intakes[0].figures()["jobs"]["completed"] == 1)
        driver.request_stop("test")

    broker = FlakyAcks(failures=3)
    run = run_worker(worker, control, broker=broker)
    assert run.outcome.exit_code == 0
    assert run.named("broker.retrying")
    assert run.named("broker.recovered")
    assert asyncio.run(run.status("q")) == {"done": 1}


def test_a_broker_that_stays_down_during_the_drain_means_exit_1_and_nothing_marked_done() -> None:
    worker = Worker()
    started = asyncio.Event()

    @worker.handler("q")
    async def handle(job: Job) -> None:
        started.set()
        await asyncio.sleep(0.3)

    async def control(driver: Driver, broker: MemoryBroker) -> None:
        await broker.enqueue("q", 1)
        await ready(driver)
        await started.wait()
        driver.request_stop("test")

    broker = FlakyAcks(failures=10**6)
    run = run_worker(worker, control, broker=broker, drain_timeout=1)
    assert run.outcome.exit_code == 1
    assert run.named("broker.retrying")  # until the deadline; then the job is given back, not marked done
    assert asyncio.run(run.status("q")) == {"queued": 1}
    assert run.summary["aborted"] == {"job": 1}


@pytest.mark.parametrize("lame_duck", [None, 2.0])
def test_lameduck_work_needs_no_lame_duck_window(lame_duck: float | None) -> None:
    settings = {} if lame_duck is None else {"lame_duck": lame_duck}
    config = Settings.load(settings, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, work_only=True)
    assert config.lame_duck_seconds == (0.0 if lame_duck is None else lame_duck)
