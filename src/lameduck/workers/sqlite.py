"""The embedded default backend: one SQLite file shared by the worker processes of one machine.

WAL lets readers (``wait``'s polls, ``status``) proceed while one process writes; every write is a short
``BEGIN IMMEDIATE`` transaction, so two processes never both read a job as due and then both take it: the second
waits (up to the busy timeout) for the first to commit and then sees the row as running. ``synchronous=NORMAL``
can lose the last transactions on power loss, never corrupt the file; a lost ack runs the job again, a lost
enqueue is reported to nobody, which is the usual trade for a local queue.

The stdlib driver blocks, so each broker owns one thread that holds its connection and runs every call in turn;
the event loop only awaits. There is no cross-process notification: ``wait`` polls for due rows.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from lameduck.errors import BrokerError, ConfigError
from lameduck.workers.job import Job
from lameduck.workers.sqlfile import load
from lameduck.workers.sqlqueue import dump_payload, failure, held, index_name, load_payload, split_table

T = TypeVar("T")


def _path_of(url: str) -> str:
    """``sqlite:///relative/path.db`` → ``relative/path.db``; ``sqlite:////abs/path.db`` → ``/abs/path.db``."""
    parts = urlsplit(url)
    if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
        raise ConfigError(
            "--broker", f"a SQLite URL is sqlite:///relative/path.db or sqlite:////absolute/path.db (got {url!r})"
        )
    return unquote(parts.path[1:])


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the lock up front: a deferred one that reads first and then writes fails
    with SQLITE_BUSY at once (no busy timeout) when another process committed in between."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SQLiteBroker:
    kind = "sqlite"
    #: Seconds between the polls of an idle ``wait``: the latency of a job enqueued by another process.
    poll_interval = 0.1
    #: Seconds a write waits for another process's transaction before it fails with "database is locked".
    busy_timeout = 5.0

    def __init__(self, url: str) -> None:
        rest, self.table = split_table(url)
        self.path = _path_of(rest)
        self._sql = load("sqlite.sql", table=self.table, due_index=index_name(self.table, "due"))
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # only ever touched on the executor's thread
        self._queues: tuple[str, ...] = ()
        self._worker_id = ""
        self._lease = 30.0

    def __repr__(self) -> str:
        return f"<SQLiteBroker {self.path} table={self.table}>"

    # ---- the broker thread -------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL").fetchall()
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(sqlite3.Error):
                conn.close()

    def _run(self, operation: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return fn(self._conn or self._open())
        except sqlite3.Error as exc:
            # Whatever state the connection is in (mid-transaction, locked), a fresh one is cheap and certain.
            self._discard()
            raise failure(self.kind, operation, exc) from exc

    async def _call(self, operation: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        executor = self._executor
        if executor is None:
            raise BrokerError(f"{self.kind} broker: {operation} failed: not connected (call connect() first)")
        return await asyncio.get_running_loop().run_in_executor(executor, self._run, operation, fn)

    # ---- the protocol ------------------------------------------------------------------------------------

    async def connect(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lameduck-sqlite")
        sql = self._sql

        def create(conn: sqlite3.Connection) -> None:
            with _immediate(conn):
                conn.execute(sql["create_table"])
                conn.execute(sql["create_due_index"])

        await self._call("connect", create)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._discard)
        finally:
            executor.shutdown(wait=False)

    async def declare(self, queues: Sequence[str]) -> None:
        """Nothing to do: a queue is a column value, not an object."""

    async def enqueue(self, queue: str, payload: Any, *, key: str | None = None, delay: float = 0.0) -> str:
        text = dump_payload(payload)
        sql = self._sql

        def insert(conn: sqlite3.Connection) -> str:
            now = time.time()
            row = {"queue": queue, "payload": text, "key": key, "run_at": now + max(delay, 0.0), "now": now}
            with _immediate(conn):
                found = conn.execute(sql["enqueue"], row).fetchall()
                if not found:  # the key was used before: the first job stands
                    found = conn.execute(sql["find_key"], {"queue": queue, "key": key}).fetchall()
            return str(found[0][0])

        return await self._call("enqueue", insert)

    async def subscribe(self, queues: Sequence[str], *, worker_id: str, lease: float, prefetch: int) -> None:
        self._queues = tuple(queues)
        self._worker_id = worker_id
        self._lease = lease

    def _due(self, conn: sqlite3.Connection, now: float, limit: int) -> list[tuple[Any, ...]]:
        """The first ``limit`` due rows of the subscribed queues, oldest first (one index walk per queue)."""
        query = self._sql["due"]
        rows: list[tuple[Any, ...]] = []
        for queue in self._queues:
            rows.extend(conn.execute(query, {"queue": queue, "now": now, "limit": limit}).fetchall())
        if len(self._queues) > 1:
            rows.sort(key=lambda row: (row[5], row[0]))
        return rows[:limit]

    def _any_due(self, conn: sqlite3.Connection) -> bool:
        query, now = self._sql["any_due"], time.time()
        return any(conn.execute(query, {"queue": queue, "now": now}).fetchone()[0] for queue in self._queues)

    async def claim(self, limit: int) -> list[Job]:
        if limit <= 0 or not self._queues:
            return []
        sql, worker, lease = self._sql, self._worker_id, self._lease

        def take(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            # A read first: idle workers polling an empty queue must not queue up for the write lock.
            if not self._any_due(conn):
                return []
            with _immediate(conn):
                now = time.time()
                rows = self._due(conn, now, limit)
                if rows:
                    ids = json.dumps([row[0] for row in rows])
                    conn.execute(sql["claim"], {"worker": worker, "until": now + lease, "ids": ids})
            return rows

        rows = await self._call("claim", take)
        return [
            Job(str(job_id), queue, load_payload(payload), attempt, key, receipt=attempt)
            for job_id, queue, payload, attempt, key, _ in rows
        ]

    async def wait(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(self.poll_interval, remaining))
            if self._queues and await self._poll():
                return

    async def _poll(self) -> bool:
        """A hint for ``wait``: a failure here surfaces on the next ``claim``, where the runner handles it."""
        try:
            return await self._call("wait", self._any_due)
        except BrokerError:
            return False

    async def extend(self, jobs: Sequence[Job]) -> set[str]:
        if not jobs:
            return set()
        ids, attempts = held(jobs)
        pairs = json.dumps(list(zip(ids, attempts, strict=True)))
        sql, worker, lease = self._sql, self._worker_id, self._lease

        def renew(conn: sqlite3.Connection) -> set[str]:
            with _immediate(conn):
                until = time.time() + lease
                rows = conn.execute(sql["extend"], {"until": until, "held": pairs, "worker": worker}).fetchall()
            return {str(row[0]) for row in rows}

        kept = await self._call("extend", renew)
        return {job.id for job in jobs if job.id not in kept}

    async def ack(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        ids = json.dumps([int(job.id) for job in jobs])
        sql = self._sql

        def done(conn: sqlite3.Connection) -> None:
            with _immediate(conn):
                conn.execute(sql["ack"], {"ids": ids, "now": time.time()})

        await self._call("ack", done)

    async def retry(self, job: Job, delay: float, error: str) -> None:
        sql, worker = self._sql, self._worker_id

        def again(conn: sqlite3.Connection) -> None:
            params = {
                "id": int(job.id),
                "attempts": int(job.receipt),
                "worker": worker,
                "error": error,
                "run_at": time.time() + max(delay, 0.0),
            }
            with _immediate(conn):
                conn.execute(sql["retry"], params)

        await self._call("retry", again)

    async def bury(self, job: Job, error: str) -> None:
        sql = self._sql

        def dead(conn: sqlite3.Connection) -> None:
            with _immediate(conn):
                conn.execute(sql["bury"], {"id": int(job.id), "error": error, "now": time.time()})

        await self._call("bury", dead)

    async def release(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        ids, attempts = held(jobs)
        pairs = json.dumps(list(zip(ids, attempts, strict=True)))
        sql, worker = self._sql, self._worker_id

        def give_back(conn: sqlite3.Connection) -> None:
            with _immediate(conn):
                conn.execute(sql["release"], {"held": pairs, "worker": worker, "now": time.time()})

        await self._call("release", give_back)

    async def stop_claiming(self) -> list[Job]:
        return []

    async def status(self, queues: Sequence[str] | None = None) -> Mapping[str, Mapping[str, int]]:
        sql = self._sql
        query, only = ("status", None) if queues is None else ("status_of", json.dumps(list(queues)))

        def count(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(sql[query], {"now": time.time(), "queues": only}).fetchall()

        counts: dict[str, dict[str, int]] = {}
        for queue, state, n in await self._call("status", count):
            counts.setdefault(queue, {})[state] = int(n)
        return counts
