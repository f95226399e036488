"""What ``python -m bench --only jobs`` runs: the lameduck Worker and the bare SQL loop it is measured against.

Every system's handler does the same thing (``handle``): note the instant of its first call (once per process,
for the throughput window's start) and sleep for the payload's ``seconds`` if it has any (the throughput runs
enqueue none: a no-op). The peers' apps (procrastinate, pgqueuer) live in bench/jobs_peers.py, which imports
them; this module needs only lameduck and psycopg, so it also runs from the test venv.

Environment: BENCH_JOBS_MARK (file the first call's ``time.time()`` is written to), BENCH_JOBS_MAX_SLEEP (caps
every sleep: the second worker of the reclaim run finishes what it takes over at once).

``python -m bench.jobs_apps bare --dsn DSN --table T --batch N --worker-id ID`` runs the bare loop;
``python -m bench.jobs_apps enqueue SYSTEM --count N`` fills a peer's queue through its own API;
``python -m bench.jobs_apps pgqueuer --batch-size B --max-concurrent-tasks C`` runs pgqueuer's worker the way
``pgq run bench.jobs_peers:create_pgqueuer`` would (see bench/jobs_peers.py for why not through that CLI).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import lameduck

QUEUE = "bench"
_MAX_SLEEP = float(os.environ.get("BENCH_JOBS_MAX_SLEEP", "3600"))
_marked = False


def mark_first() -> None:
    """On the first call in this process, write ``time.time()`` to $BENCH_JOBS_MARK (one write per process)."""
    global _marked  # noqa: PLW0603 - one flag per process, checked on every job
    if _marked:
        return
    _marked = True
    path = os.environ.get("BENCH_JOBS_MARK")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, f"{time.time():.6f}\n".encode())
        finally:
            os.close(fd)


async def handle(payload: Any) -> None:
    """The job every system runs: a no-op unless the payload asks for a sleep."""
    mark_first()
    seconds = payload.get("seconds") if isinstance(payload, dict) else None
    if seconds:
        await asyncio.sleep(min(float(seconds), _MAX_SLEEP))


worker = lameduck.Worker(name="bench")


@worker.handler(QUEUE)
async def run_job(job: lameduck.Job) -> None:
    await handle(job.payload)


# -- the bare loop ----------------------------------------------------------------------------------------------

#: The claim and the completion the bare loop runs: the same table (lameduck's schema, created by its broker),
#: the same row transitions (queued -> running with a lease -> done), no runtime around them.
BARE_CLAIM = """
UPDATE {table}
SET state = 'running', claimed_by = %(worker)s, attempts = attempts + 1,
    lease_expires_at = now() + interval '30 seconds', run_at = now() + interval '30 seconds'
WHERE id IN (
    SELECT id FROM {table}
    WHERE queue = %(queue)s AND state IN ('queued', 'running') AND run_at <= now()
    ORDER BY run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, payload
"""
BARE_COMPLETE = """
UPDATE {table}
SET state = 'done', finished_at = now(), claimed_by = NULL, lease_expires_at = NULL
WHERE id = ANY(%(ids)s::bigint[]) AND state = 'running'
"""


def bare_loop(dsn: str, table: str, batch: int, worker_id: str, limit_s: float) -> int:
    """Claim up to ``batch`` rows, complete them in one statement, repeat until a claim finds nothing (every job
    was enqueued before the start) or ``limit_s`` passes. Returns the number of jobs completed."""
    import psycopg

    claim = BARE_CLAIM.format(table=table)
    complete = BARE_COMPLETE.format(table=table)
    done = 0
    deadline = time.monotonic() + limit_s
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            rows = conn.execute(claim, {"worker": worker_id, "queue": QUEUE, "limit": batch}, prepare=True).fetchall()
            if not rows:
                break
            mark_first()
            conn.execute(complete, {"ids": [row[0] for row in rows]}, prepare=True)
            done += len(rows)
    return done


def run_pgqueuer(batch_size: int, max_concurrent_tasks: int) -> int:
    """``pgqueuer.run`` on uvloop, as ``pgq run`` runs it: SIGTERM/SIGINT stop it."""
    import pgqueuer
    import uvloop

    from bench.jobs_peers import create_pgqueuer

    uvloop.run(pgqueuer.run(create_pgqueuer, batch_size=batch_size, max_concurrent_tasks=max_concurrent_tasks or None))
    return 0


async def enqueue_peer(system: str, count: int) -> None:
    """Enqueue ``count`` jobs ``{"n": i}`` with the peer's own API (procrastinate: ``batch_defer_async``;
    pgqueuer: ``Queries.enqueue`` with lists), in one batch each."""
    if system == "procrastinate":
        from bench.jobs_peers import app, noop

        async with app.open_async():
            await noop.batch_defer_async(*[{"n": i} for i in range(count)])
        return
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    from bench.jobs_peers import DSN, ENTRYPOINT

    connection = await asyncpg.connect(DSN)
    try:
        payloads: list[bytes | None] = [json.dumps({"n": i}).encode() for i in range(count)]
        await Queries(AsyncpgDriver(connection)).enqueue([ENTRYPOINT] * count, payloads, [0] * count)
    finally:
        await connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.jobs_apps")
    sub = parser.add_subparsers(dest="command", required=True)
    bare = sub.add_parser("bare", help="the bare claim + batched completion loop")
    bare.add_argument("--dsn", required=True)
    bare.add_argument("--table", required=True)
    bare.add_argument("--batch", type=int, default=10)
    bare.add_argument("--worker-id", default="bare")
    bare.add_argument("--limit", type=float, default=600.0, help="stop after this many seconds whatever happens")
    pgq = sub.add_parser("pgqueuer", help="what `pgq run bench.jobs_peers:create_pgqueuer` does (from .venv-bench)")
    pgq.add_argument("--batch-size", type=int, default=10)
    pgq.add_argument("--max-concurrent-tasks", type=int, default=0)
    enqueue = sub.add_parser("enqueue", help="fill a peer's queue with its own API (from .venv-bench)")
    enqueue.add_argument("system", choices=("procrastinate", "pgqueuer"))
    enqueue.add_argument("--count", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "enqueue":
        asyncio.run(enqueue_peer(args.system, args.count))
        return 0
    if args.command == "pgqueuer":
        return run_pgqueuer(args.batch_size, args.max_concurrent_tasks)
    done = bare_loop(args.dsn, args.table, args.batch, args.worker_id, args.limit)
    print(f"bare loop: {done} jobs done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
