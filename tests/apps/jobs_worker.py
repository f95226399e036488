"""A worker for the acceptance tests: records each job's start and end to a file, sleeps as the payload says.

Environment: JOBS_QUEUE (queue name), JOBS_RECORD (file to append to), JOBS_MAX_SLEEP (caps every sleep: a
second worker that must finish quickly what the first one released).
"""

from __future__ import annotations

import asyncio
import os
import time

import lameduck

QUEUE = os.environ.get("JOBS_QUEUE", "jobs")
MAX_SLEEP = float(os.environ.get("JOBS_MAX_SLEEP", "3600"))
_fd = os.open(os.environ.get("JOBS_RECORD", os.devnull), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

worker = lameduck.Worker()


def record(what: str, job: lameduck.Job) -> None:
    os.write(_fd, f"{what} {job.payload['n']} {job.attempt} {os.getpid()} {time.time():.6f}\n".encode())


@worker.handler(QUEUE, max_attempts=50, backoff=0.05)
async def handle(job: lameduck.Job) -> None:
    record("start", job)
    await asyncio.sleep(min(float(job.payload.get("seconds", 0)), MAX_SLEEP))
    if job.payload.get("fail_first") and job.attempt == 1:
        raise RuntimeError("first attempt fails")
    record("done", job)


@worker.handler(f"{QUEUE}.sync", max_attempts=50)
def handle_sync(job: lameduck.Job) -> None:
    """Ignores its token on purpose: the drain must abandon it, release its job and still exit in time."""
    record("start", job)
    time.sleep(min(float(job.payload.get("seconds", 0)), MAX_SLEEP))
    record("done", job)
