"""The peers of ``python -m bench --only jobs``: a procrastinate App and a pgqueuer factory, each with one task /
entrypoint that runs the same handler as lameduck's (``bench.jobs_apps.handle``: a no-op for the throughput runs).

Imported only by the peers' own command lines, from .venv-bench (``pip install -e '.[bench]'``):
    procrastinate --app bench.jobs_peers.app schema --apply
    procrastinate --app bench.jobs_peers.app worker --queues bench --concurrency C
    pgq install
    python -m bench.jobs_apps pgqueuer --batch-size C/2 --max-concurrent-tasks C
The last is what ``pgq run bench.jobs_peers:create_pgqueuer --batch-size C/2 --max-concurrent-tasks C`` does
(``pgqueuer.run`` on uvloop, SIGTERM/SIGINT stop it), without the CLI: pgqueuer 1.6.0's ``pgq run`` fails before
it starts with typer 0.29 (``AttributeError: 'str' object has no attribute 'name'`` in its log-level setup).
Environment: BENCH_JOBS_DSN (the database), BENCH_JOBS_CONCURRENCY (procrastinate's pool gets C + 2 connections:
one per concurrent fetch loop plus its listener and heartbeat, so the pool is never what limits it).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import procrastinate
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from pgqueuer.models import Job

from bench.jobs_apps import QUEUE, handle

DSN = os.environ.get("BENCH_JOBS_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
CONCURRENCY = int(os.environ.get("BENCH_JOBS_CONCURRENCY", "10"))
ENTRYPOINT = "noop"

# -- procrastinate ----------------------------------------------------------------------------------------------

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=DSN, min_size=CONCURRENCY + 2, max_size=CONCURRENCY + 2)
)


@app.task(queue=QUEUE, name=ENTRYPOINT)
async def noop(**payload: Any) -> None:
    await handle(payload)


# -- pgqueuer ---------------------------------------------------------------------------------------------------


@asynccontextmanager
async def create_pgqueuer() -> AsyncIterator[QueueManager]:
    """The factory ``pgq run`` enters: one asyncpg connection (pgqueuer's default driver), one entrypoint."""
    connection = await asyncpg.connect(DSN)
    try:
        qm = QueueManager(Queries(AsyncpgDriver(connection)))

        @qm.entrypoint(ENTRYPOINT)
        async def run_job(job: Job) -> None:
            await handle(json.loads(job.payload) if job.payload else {})

        yield qm
    finally:
        await connection.close()
