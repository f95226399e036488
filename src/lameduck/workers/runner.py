"""The worker runtime: claims jobs while the service is ready, runs their handlers, and drains.

This is the effector the driver feeds (it implements ``runtime.intake.Intake``). What it promises:
- it claims only while READY, at most ``concurrency`` jobs at a time, and stops claiming at the first signal (the
  claim loop wakes at once; a claim already under way returns and its jobs are released, never started);
- a job leaves the queue only when its handler returned (``ack``) or the poison policy gave up (``bury``); a
  failure is retried with backoff; at the drain deadline handlers are cancelled (sync ones see ``job.token``) and
  their jobs released, the attempt not counted;
- live jobs' leases are extended every lease/3, so only a dead worker's jobs are reclaimed;
- a broker failure is retried until the deadline that matters (the job's lease, or the drain deadline); if it
  never recovers the job stays claimed, its lease runs out, it runs again; the exit code says so.
Acks are group-committed: completions that arrive while one ack is in flight go out together in the next.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lameduck.core.ledger import Kind, Result
from lameduck.core.retry import Bury, heartbeat_interval
from lameduck.errors import BrokerError
from lameduck.runtime import tracking
from lameduck.runtime.driver import Driver
from lameduck.runtime.events import emit
from lameduck.workers.broker import Broker
from lameduck.workers.job import Job
from lameduck.workers.worker import Handler, Worker

#: First pause between retries of a failed broker call; doubles up to _RETRY_MAX.
_RETRY_FIRST = 0.05
_RETRY_MAX = 1.0
#: How long giving back held jobs may take after the drain deadline's cancellation (from the cleanup budget).
ABANDON_WAIT = 1.0
#: Errors stored with a failed job are cut to this many characters.
_ERROR_MAX = 2000


def worker_id() -> str:
    """Unique per process start: a restarted worker must never pass for its dead predecessor."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _AckBatch:
    """Group commit: the first completion sends its ack; those arriving meanwhile go out together next."""

    def __init__(self, send: Callable[[list[Job]], Awaitable[bool]]) -> None:
        self._send = send
        self._waiting: list[tuple[Job, asyncio.Future[bool]]] = []
        self._flushing = False

    async def ack(self, job: Job) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((job, future))
        if not self._flushing:
            self._flushing = True
            try:
                # One loop turn first: handlers finishing in this same turn join the batch, so a claim of n
                # costs one ack round trip instead of two (the jobs benchmark measured +25 %).
                await asyncio.sleep(0)
                while self._waiting:
                    batch, self._waiting = self._waiting, []
                    ok = False
                    try:
                        ok = await self._send([j for j, _ in batch])
                    finally:
                        for _, f in batch:
                            if not f.done():
                                f.set_result(ok)
            finally:
                self._flushing = False
                # Cancelled while flushing: whoever is still waiting learns the ack did not happen.
                for _, f in self._waiting:
                    if not f.done():
                        f.set_result(False)
                self._waiting = []
        return await future


class Runner:
    """Runs one ``Worker`` against one broker inside a lameduck service."""

    name = "worker"

    def __init__(
        self,
        worker: Worker,
        broker: Broker,
        driver: Driver,
        *,
        concurrency: int,
        lease: float,
        poll_interval: float,
        seed: int | None = None,
    ) -> None:
        if not worker.handlers:
            raise ValueError(f"{worker!r} has no handlers: decorate functions with @worker.handler(queue)")
        self.worker = worker
        self.broker = broker
        self.driver = driver
        self.concurrency = concurrency
        self.lease = lease
        self.poll_interval = poll_interval
        self.id = worker_id()
        self._rand = random.Random(seed)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="lameduck-job")
        self._acks = _AckBatch(self._send_acks)
        #: Claimed and not yet settled (acked, retried, buried or released), by job id: the heartbeat's list.
        self._held: dict[str, Job] = {}
        #: Held jobs whose handler returned and whose ack is on its way: no longer the heartbeat's business (the
        #: backend may already have them done, and would report their lease "lost").
        self._acking: set[str] = set()
        self._running: dict[asyncio.Task[Any], Job] = {}
        self._slot_free = asyncio.Event()
        self._stop = asyncio.Event()
        self._stopping = False
        self._claim_loop: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._counts = {"completed": 0, "failed": 0, "retried": 0, "dead": 0, "released": 0, "unsettled": 0}
        self._intake_stopped_ms: float | None = None

    # -- Intake ----------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and subscribe, retrying while the backend is not up yet (containers start in any order);
        the startup timeout bounds this, and then the process exits 3."""
        pause = _RETRY_FIRST
        while True:
            try:
                await self.broker.connect()
                await self.broker.subscribe(
                    self.worker.queues, worker_id=self.id, lease=self.lease, prefetch=self.concurrency
                )
                break
            except BrokerError as exc:
                if pause == _RETRY_FIRST:
                    emit(
                        "broker.retrying",
                        f"connect failed, retrying: {exc}",
                        level=logging.WARNING,
                        operation="connect",
                    )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
        emit(
            "worker.subscribed",
            f"{self.broker.kind}: consuming {', '.join(self.worker.queues)}",
            broker=self.broker.kind,
            queues=self.worker.queues,
            worker_id=self.id,
            concurrency=self.concurrency,
            lease=self.lease,
        )

    def begin(self) -> None:
        self._claim_loop = tracking.start(self._claim_forever(), name="lameduck:claim")
        self._heartbeat = self.driver.tracker.service(self._extend_forever(), name="heartbeat")

    def stop_intake(self) -> None:
        self._stopping = True
        self._stop.set()

    def pending(self) -> set[asyncio.Task[Any]]:
        tasks: set[asyncio.Task[Any]] = set(self._running)
        if self._claim_loop is not None and not self._claim_loop.done():
            tasks.add(self._claim_loop)
        return tasks

    async def abandon(self) -> int:
        held = list(self._held.values())
        if not held:
            return 0
        for job in held:
            job.token.cancel("drain deadline")
        emit("jobs.abandoned", f"releasing {len(held)} job(s) whose handler did not stop", jobs=len(held))
        if await self._release(held, until=self.driver.now() + ABANDON_WAIT):
            return 0
        self._counts["unsettled"] += len(held)
        return len(held)

    async def close(self) -> None:
        self._stopping = True
        self._stop.set()
        for task in (self._claim_loop, self._heartbeat):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.2)
        if self._held:  # a shutdown that skipped the drain (startup aborted): give them back, best effort
            await self.abandon()
        try:
            await self.broker.close()
        except BrokerError as exc:
            emit("broker.close_failed", str(exc), level=logging.WARNING)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def figures(self) -> dict[str, Any]:
        jobs = {k: v for k, v in self._counts.items() if v or k in ("completed", "released")}
        out: dict[str, Any] = {"jobs": jobs}
        if self._intake_stopped_ms is not None:
            out["intake_stopped_ms"] = self._intake_stopped_ms
        return out

    # -- claiming --------------------------------------------------------------------------------------------

    async def _claim_forever(self) -> None:
        try:
            while not self._stopping:
                free = self.concurrency - len(self._running)
                if free <= 0:
                    self._slot_free.clear()
                    await self._until(self._slot_free.wait())
                    continue
                try:
                    jobs = await self.broker.claim(free)
                except BrokerError as exc:
                    emit("broker.claim_failed", str(exc), level=logging.WARNING, retry_in=self.poll_interval)
                    await self._until(asyncio.sleep(self.poll_interval))
                    continue
                if self._stopping:
                    await self._release(jobs)
                    break
                for job in jobs:
                    self._start(job)
                if len(jobs) < free:
                    await self._until(self.broker.wait(self.poll_interval))
                else:
                    await asyncio.sleep(0)  # let completions (and their acks) run before the next claim
        finally:
            await self._stop_claiming()

    async def _until(self, waiting: Awaitable[Any]) -> None:
        """Await ``waiting`` unless intake stops first (then it is cancelled)."""
        if self._stopping:
            if asyncio.iscoroutine(waiting):
                waiting.close()
            return
        waiter = tracking.start(_await(waiting), name="lameduck:claim-wait")
        stop = tracking.start(self._stop.wait(), name="lameduck:claim-stop")
        try:
            await asyncio.wait([waiter, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, stop):
                task.cancel()
            await asyncio.gather(waiter, stop, return_exceptions=True)

    async def _stop_claiming(self) -> None:
        stopped_at = self.driver.lifecycle.stopped_at
        if stopped_at is not None:
            self._intake_stopped_ms = round((self.driver.now() - stopped_at) * 1000, 1)
        try:
            leftovers = await self.broker.stop_claiming()
        except BrokerError as exc:
            emit("broker.stop_failed", str(exc), level=logging.WARNING)
            leftovers = []
        await self._release(leftovers)
        emit("worker.intake_stopped", "claiming stopped", ms=self._intake_stopped_ms, in_flight=len(self._running))

    async def _release(self, jobs: list[Job], *, until: float | None = None) -> bool:
        """Give ``jobs`` back to the queue (never started, cut off by the deadline, or abandoned)."""
        if not jobs:
            return True
        for job in jobs:
            self._held[job.id] = job
        deadline = self._deadline_for_settling() if until is None else until
        if not await self._retrying("release", self.broker.release, jobs, until=deadline):
            return False
        self._settled(jobs)
        self._counts["released"] += len(jobs)
        return True

    def _start(self, job: Job) -> None:
        handler = self.worker.handlers.get(job.queue)
        self._held[job.id] = job
        task: asyncio.Task[Any]
        if handler is None:  # a broker delivering a queue we did not subscribe to: give it back
            task = tracking.start(self._release([job]), name=f"lameduck:release:{job.id}")
        elif handler.retry.over(job.attempt):
            task = tracking.start(self._bury_crashed(job), name=f"lameduck:bury:{job.id}")
        else:
            task = tracking.start(self._handle(job, handler), name=f"job:{job.queue}:{job.id}")
        self._running[task] = job
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._running.pop(task)
        self._slot_free.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            emit("worker.bug", f"{task.get_name()} raised", level=logging.ERROR, exc_info=exc)

    # -- one job ---------------------------------------------------------------------------------------------

    async def _handle(self, job: Job, handler: Handler) -> None:
        ledger = self.driver.lifecycle.ledger
        ledger.begin(Kind.JOB)
        result = Result.ABORTED
        try:
            try:
                await self._invoke(handler, job)
            except asyncio.CancelledError:
                job.token.cancel("drain deadline")
                if self.driver.tracker.aborting:
                    emit("job.cancelled", "drain deadline: job released", job=job.id, queue=job.queue)
                    await self._release([job])
                raise
            except Exception as exc:
                if await self._failed(job, handler, exc):
                    result = Result.FAILED
            else:
                self._acking.add(job.id)
                try:
                    acked = await self._acks.ack(job)
                finally:
                    self._acking.discard(job.id)
                if acked:
                    self._settled([job])
                    self._counts["completed"] += 1
                    result = Result.COMPLETED
                else:
                    self._counts["unsettled"] += 1
        finally:
            ledger.end(Kind.JOB, result)

    async def _invoke(self, handler: Handler, job: Job) -> None:
        try:
            async with asyncio.timeout(handler.timeout):
                if handler.is_async:
                    await handler.fn(job)
                else:
                    context = contextvars.copy_context()
                    await asyncio.get_running_loop().run_in_executor(self._pool, context.run, handler.fn, job)
        except TimeoutError:
            job.token.cancel("timeout")
            raise TimeoutError(f"attempt took longer than its timeout of {handler.timeout:g} s") from None

    async def _failed(self, job: Job, handler: Handler, exc: BaseException) -> bool:
        error = f"{type(exc).__name__}: {exc}"[:_ERROR_MAX]
        decision = handler.retry.decide(job.attempt, self._rand.random())
        until = self._deadline_for_settling()
        fields = {"job": job.id, "queue": job.queue, "attempt": job.attempt, "error": error}
        where = f"{job.queue}:{job.id}"
        if isinstance(decision, Bury):
            emit("job.dead", f"{where} buried after attempt {job.attempt}: {error}", level=logging.ERROR, **fields)
            ok = await self._retrying("bury", self.broker.bury, job, error, until=until)
            counter = "dead"
        else:
            emit(
                "job.failed",
                f"{where} attempt {job.attempt} failed, retry in {decision.delay:.1f} s: {error}",
                level=logging.WARNING,
                retry_in=round(decision.delay, 3),
                exc_info=exc if isinstance(exc, Exception) and not isinstance(exc, TimeoutError) else None,
                **fields,
            )
            ok = await self._retrying("retry", self.broker.retry, job, decision.delay, error, until=until)
            counter = "retried"
        self._counts["failed"] += 1
        if ok:
            self._settled([job])
            self._counts[counter] += 1
        else:
            self._counts["unsettled"] += 1
        return ok

    async def _bury_crashed(self, job: Job) -> None:
        error = f"its worker died or lost the lease during each of {job.attempt - 1} attempts"
        emit("job.dead", f"{job.queue}:{job.id} buried: {error}", level=logging.ERROR, job=job.id, queue=job.queue)
        if await self._retrying("bury", self.broker.bury, job, error, until=self._deadline_for_settling()):
            self._settled([job])
            self._counts["dead"] += 1

    # -- broker calls ----------------------------------------------------------------------------------------

    async def _send_acks(self, jobs: list[Job]) -> bool:
        return await self._retrying("ack", self.broker.ack, jobs, until=self._deadline_for_settling())

    def _deadline_for_settling(self) -> float:
        """How long a settling call may be retried: until the drain deadline once draining (then the abandon
        window), otherwise for one lease (after that the job is someone else's to run anyway)."""
        now = self.driver.now()
        if self.driver.tracker.aborting:
            return now + ABANDON_WAIT
        deadline = self.driver.lifecycle.drain_deadline
        if deadline is not None:
            return max(deadline.at, now + _RETRY_FIRST)
        return now + self.lease

    async def _retrying(self, what: str, call: Callable[..., Awaitable[Any]], *args: Any, until: float) -> bool:
        pause = _RETRY_FIRST
        tries = 0
        while True:
            tries += 1
            try:
                await call(*args)
            except BrokerError as exc:
                left = until - self.driver.now()
                if left <= 0:
                    emit(
                        "broker.gave_up",
                        f"{what} failed {tries} time(s), giving up: {exc}",
                        level=logging.ERROR,
                        operation=what,
                        tries=tries,
                    )
                    return False
                if tries == 1:
                    emit("broker.retrying", f"{what} failed, retrying: {exc}", level=logging.WARNING, operation=what)
                await asyncio.sleep(min(pause, left))
                pause = min(pause * 2, _RETRY_MAX)
            else:
                if tries > 1:
                    emit("broker.recovered", f"{what} succeeded after {tries} tries", operation=what, tries=tries)
                return True

    def _settled(self, jobs: list[Job]) -> None:
        for job in jobs:
            self._held.pop(job.id)

    async def _extend_forever(self) -> None:
        interval = heartbeat_interval(self.lease)
        while True:
            await asyncio.sleep(interval)
            jobs = [job for job in self._held.values() if job.id not in self._acking]
            if not jobs:
                continue
            began = time.monotonic()
            try:
                lost = await self.broker.extend(jobs)
            except BrokerError as exc:
                emit("broker.extend_failed", str(exc), level=logging.WARNING, jobs=len(jobs))
                continue
            # Settled (or being acked) while the extend was on its way: not lost, just done.
            for job_id in sorted(i for i in lost if i in self._held and i not in self._acking):
                emit(
                    "job.lease_lost",
                    f"lease of job {job_id} was lost; another worker may run it too",
                    level=logging.WARNING,
                    job=job_id,
                    extend_ms=round((time.monotonic() - began) * 1000, 1),
                )


async def _await(waiting: Awaitable[Any]) -> None:
    await waiting
