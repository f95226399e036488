"""The PostgreSQL backend: many machines, one table, ``FOR UPDATE SKIP LOCKED`` so claimers never wait on each other.

Every operation is one autocommit statement (one round trip, one transaction) and a batch is one statement, not
one per job. Time is always the server's ``now()``: worker clocks may disagree, the database's cannot.

A broker holds up to three connections, each opened on first use and reopened on the call after it broke: the
main one (enqueue, ack, retry, bury, release, status: a producer needs only this), the claimer (claim, extend), so
that finishing jobs never queues behind taking new ones, and the listener, parked in ``LISTEN`` for ``wait``.
Enqueue, release and retry ``NOTIFY`` in the statement that changes the row, so a waiting worker never wakes
before the row is visible to it.

Other URL query parameters go to libpq (``sslmode``, ``application_name``, ``options``...). Commits wait for the
WAL flush as the server is configured; ``options=-c%20synchronous_commit%3Doff`` roughly doubles the jobs/s of
small batches, at the price that a database crash may forget the last fraction of a second of enqueues and acks
(acked jobs then run again, enqueued ones are lost).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager, suppress
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus

from lameduck.errors import BrokerError, ConfigError
from lameduck.workers.job import Job
from lameduck.workers.sqlfile import load
from lameduck.workers.sqlqueue import dump_payload, failure, held, index_name, split_table

Conn = psycopg.AsyncConnection[tuple[Any, ...]]

KIND = "postgres"
#: Seconds to wait for the server to answer a connection attempt (libpq waits forever by default).
CONNECT_TIMEOUT = 5


class _Link:
    """One connection: opened on first use, replaced on the first use after it broke or was left mid-query
    (a cancelled call), so a lost connection costs exactly one failed call."""

    def __init__(self, conninfo: str, on_open: Callable[[Conn], Awaitable[None]] | None = None) -> None:
        self._conninfo = conninfo
        self._on_open = on_open
        self._conn: Conn | None = None
        #: Between the broker's connect() and close(): a closed broker must not quietly reconnect.
        self.open = False
        #: One call at a time, so the state checked before a call is the state the previous call left.
        self._lock = asyncio.Lock()

    async def _connection(self) -> Conn:
        conn = self._conn
        if conn is not None and (conn.closed or conn.info.transaction_status != TransactionStatus.IDLE):
            self._conn = None
            with suppress(psycopg.Error):
                await conn.close()
            conn = None
        if conn is None:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            try:
                if self._on_open is not None:
                    await self._on_open(conn)
            except BaseException:
                await conn.close()
                raise
            self._conn = conn
        return conn

    @asynccontextmanager
    async def use(self, operation: str) -> AsyncIterator[Conn]:
        async with self._lock:
            if not self.open:
                raise BrokerError(f"{KIND} broker: {operation} failed: not connected (call connect() first)")
            try:
                yield await self._connection()
            except psycopg.Error as exc:
                raise failure(KIND, operation, exc) from exc

    async def close(self) -> None:
        """Without the lock: a ``wait`` parked on the listener must not delay shutdown; it fails and returns."""
        self.open = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(psycopg.Error):
                await conn.close()


class PostgresBroker:
    kind = KIND

    def __init__(self, url: str) -> None:
        rest, self.table = split_table(url)
        try:
            params = conninfo_to_dict(rest)
        except psycopg.Error as exc:
            raise ConfigError("--broker", f"not a valid PostgreSQL URL: {exc}") from None
        params.setdefault("connect_timeout", CONNECT_TIMEOUT)
        params.setdefault("application_name", "lameduck")
        conninfo = make_conninfo("", **params)
        self._due_index = index_name(self.table, "due")
        self._sql = load("postgres.sql", table=self.table, due_index=self._due_index)
        listen = self._sql["listen"]

        async def start_listening(conn: Conn) -> None:
            await conn.execute(listen)

        self._main = _Link(conninfo)
        self._claimer = _Link(conninfo)
        self._listener = _Link(conninfo, on_open=start_listening)
        self._queues: tuple[str, ...] = ()
        self._worker_id = ""
        self._lease = 30.0

    def __repr__(self) -> str:  # the URL may carry a password: never print it
        return f"<PostgresBroker table={self.table}>"

    async def connect(self) -> None:
        sql = self._sql
        names = {"table": self.table, "due_index": self._due_index}
        for link in (self._main, self._claimer, self._listener):
            link.open = True
        async with self._main.use("connect") as conn:
            row = await (await conn.execute(sql["schema_exists"], names)).fetchone()
            if row is not None and row[0]:
                return  # the usual case: no lock, so starting a worker never waits behind running ones
            # CREATE ... IF NOT EXISTS still fails when two sessions create the same table at the same moment.
            async with conn.transaction():
                await conn.execute(sql["lock_schema"], names)
                await conn.execute(sql["create_table"])
                await conn.execute(sql["create_due_index"])

    async def close(self) -> None:
        for link in (self._listener, self._claimer, self._main):
            await link.close()

    async def declare(self, queues: Sequence[str]) -> None:
        """Nothing to do: a queue is a column value, not an object."""

    async def enqueue(self, queue: str, payload: Any, *, key: str | None = None, delay: float = 0.0) -> str:
        params = {"queue": queue, "payload": dump_payload(payload), "key": key, "delay": max(float(delay), 0.0)}
        async with self._main.use("enqueue") as conn:
            # A conflicting key is either committed (find_key sees it) or was deleted in between (insert again).
            for _ in range(3):
                row = await (await conn.execute(self._sql["enqueue"], params, prepare=True)).fetchone()
                if row is None:
                    row = await (await conn.execute(self._sql["find_key"], params)).fetchone()
                if row is not None:
                    return str(row[0])
        raise BrokerError(f"{KIND} broker: enqueue failed: key {key!r} on {queue!r} neither inserted nor found")

    async def subscribe(self, queues: Sequence[str], *, worker_id: str, lease: float, prefetch: int) -> None:
        self._queues = tuple(queues)
        self._worker_id = worker_id
        self._lease = float(lease)

    async def claim(self, limit: int) -> list[Job]:
        if limit <= 0 or not self._queues:
            return []
        params = {"worker": self._worker_id, "lease": self._lease, "queues": list(self._queues), "limit": limit}
        async with self._claimer.use("claim") as conn:
            rows = await (await conn.execute(self._sql["claim"], params, prepare=True)).fetchall()
        rows.sort(key=lambda row: (row[5], row[0]))  # RETURNING has no order: restore the queue's
        return [Job(str(row[0]), row[1], row[2], row[3], row[4], receipt=row[3]) for row in rows]

    async def wait(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        if not self._queues:
            await asyncio.sleep(max(timeout, 0.0))
            return
        try:
            async with asyncio.timeout_at(deadline), self._listener.use("wait") as conn:
                while (remaining := deadline - loop.time()) > 0:
                    async with aclosing(conn.notifies(timeout=remaining, stop_after=1)) as notes:
                        async for note in notes:
                            if note.payload in self._queues:
                                return
        except TimeoutError:
            return
        except BrokerError:
            if not self._listener.open:
                return  # closed while waiting
            # Only a hint: the next claim reports the failure (and the runner retries it). Don't let the
            # caller's loop spin meanwhile.
            await asyncio.sleep(max(deadline - loop.time(), 0.0))

    async def extend(self, jobs: Sequence[Job]) -> set[str]:
        if not jobs:
            return set()
        ids, attempts = held(jobs)
        params = {"lease": self._lease, "ids": ids, "attempts": attempts, "worker": self._worker_id}
        async with self._claimer.use("extend") as conn:
            rows = await (await conn.execute(self._sql["extend"], params, prepare=True)).fetchall()
        kept = {str(row[0]) for row in rows}
        return {job.id for job in jobs if job.id not in kept}

    async def ack(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        async with self._main.use("ack") as conn:
            await conn.execute(self._sql["ack"], {"ids": [int(job.id) for job in jobs]}, prepare=True)

    async def retry(self, job: Job, delay: float, error: str) -> None:
        params = {
            "id": int(job.id),
            "attempts": int(job.receipt),
            "worker": self._worker_id,
            "delay": max(float(delay), 0.0),
            "error": error,
        }
        async with self._main.use("retry") as conn:
            await conn.execute(self._sql["retry"], params)

    async def bury(self, job: Job, error: str) -> None:
        async with self._main.use("bury") as conn:
            await conn.execute(self._sql["bury"], {"id": int(job.id), "error": error})

    async def release(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        ids, attempts = held(jobs)
        async with self._main.use("release") as conn:
            await conn.execute(self._sql["release"], {"ids": ids, "attempts": attempts, "worker": self._worker_id})

    async def stop_claiming(self) -> list[Job]:
        return []

    async def status(self, queues: Sequence[str] | None = None) -> Mapping[str, Mapping[str, int]]:
        async with self._main.use("status") as conn:
            if queues is None:
                cursor = await conn.execute(self._sql["status"])
            else:
                cursor = await conn.execute(self._sql["status_of"], {"queues": list(queues)})
            rows = await cursor.fetchall()
        counts: dict[str, dict[str, int]] = {}
        for queue, state, n in rows:
            counts.setdefault(queue, {})[state] = int(n)
        return counts
