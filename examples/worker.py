"""A queue worker that drains: run it with ``lameduck work examples.worker:worker``.

Put jobs on its queues with ``python -m examples.worker 20`` (20 welcome emails and a report). Both use the
broker in ``LAMEDUCK_BROKER`` (or ``--broker``), else the embedded SQLite file ``lameduck-jobs.sqlite3``.
Press Ctrl-C (or send SIGTERM) while jobs run: claiming stops at once, running jobs finish until the drain
deadline, the rest go back to the queue, and the summary line counts completed and released jobs.
"""

from __future__ import annotations

import asyncio
import sys

import lameduck

worker = lameduck.Worker()


@worker.handler("emails", timeout=30, max_attempts=5)
async def send_welcome(job: lameduck.Job) -> None:
    # A real handler would call the mail API with job.idempotency_key, so a job that runs twice (its worker
    # died after sending, before the acknowledgement) sends one email.
    await asyncio.sleep(job.payload.get("seconds", 0.2))
    print(f"sent welcome to {job.payload['to']} (attempt {job.attempt}, key {job.idempotency_key})", flush=True)


@worker.handler("reports", max_attempts=3)
def build_report(job: lameduck.Job) -> None:
    # Sync handlers run in a thread: they check the token between steps so the drain deadline can stop them.
    for _ in range(job.payload.get("steps", 20)):
        if job.token.wait(0.05):
            job.token.raise_if_cancelled()
    print(f"report {job.payload['name']} built", flush=True)


async def main(count: int) -> None:
    for n in range(count):
        await lameduck.enqueue("emails", {"to": f"user{n}@example.com"}, key=f"welcome-{n}")
    await lameduck.enqueue("reports", {"name": "daily", "steps": 20})
    print(f"enqueued {count} emails and 1 report", flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10))
