"""What the SQL backends promise beyond the contract suite, against the real services.

SQLite: separate OS processes share one file and never take the same job; a lock held past the busy timeout is a
BrokerError, not a hang. PostgreSQL (the ``test`` database): a killed connection costs one failed call; many
processes creating the schema at once all succeed; ``?table=`` separates queues; a cancelled ``wait`` leaves the
broker usable. Every test works in its own file or table and removes it; every loop is bounded.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from lameduck.errors import BrokerError, ConfigError
from lameduck.workers.broker import open_broker
from lameduck.workers.postgres import PostgresBroker
from lameduck.workers.sqlfile import load
from lameduck.workers.sqlite import SQLiteBroker

T = TypeVar("T")
PG = "postgresql://postgres@127.0.0.1:5432/test"
REPO = Path(__file__).resolve().parents[2]


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def children(script: str, args: list[list[str]], timeout: float = 60.0) -> list[str]:
    """Run ``script`` in one Python process per argument list at once; their stdouts, or fail with stderr."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *a], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for a in args
    ]
    outs: list[str] = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, err
            outs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    return outs


# ---- SQLite ------------------------------------------------------------------------------------------------

CLAIMER = """
import asyncio, json, sys, time
from lameduck.workers.sqlfile import load
from lameduck.workers.sqlite import SQLiteBroker

async def main(url, name, start_at):
    broker = SQLiteBroker(url)
    await broker.connect()
    await broker.subscribe(["q"], worker_id=name, lease=60, prefetch=10)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    got, idle_since, give_up = [], time.monotonic(), time.monotonic() + 30
    while time.monotonic() - idle_since < 1.0 and time.monotonic() < give_up:
        jobs = await broker.claim(5)
        if jobs:
            idle_since = time.monotonic()
            got.extend(job.id for job in jobs)
            time.sleep(0.002)  # a handler's work, so the processes interleave
            await broker.ack(jobs)
        else:
            await broker.wait(0.05)
    await broker.close()
    print(json.dumps(got))

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""

FIRST_CONNECT = """
import asyncio, sys, time
from lameduck.workers.sqlfile import load
from lameduck.workers.sqlite import SQLiteBroker

async def main(url, name, start_at):
    await asyncio.sleep(max(0.0, start_at - time.time()))
    broker = SQLiteBroker(url)
    await broker.connect()
    print(await broker.enqueue("q", name))
    await broker.close()

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


def test_sqlite_processes_never_take_the_same_job(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"

    async def fill() -> set[str]:
        broker = SQLiteBroker(url)
        await broker.connect()
        try:
            return {await broker.enqueue("q", n) for n in range(600)}
        finally:
            await broker.close()

    ids = run(fill())
    start_at = str(time.time() + 3.0)  # after every child has imported and connected
    outs = children(CLAIMER, [[url, f"w{n}", start_at] for n in range(3)])
    taken = [json.loads(out) for out in outs]
    flat = [job_id for got in taken for job_id in got]
    assert len(flat) == len(set(flat)), "a job was claimed by two processes"
    assert set(flat) == ids
    assert sum(1 for got in taken if got) >= 2, "the processes did not actually compete"


def test_sqlite_many_processes_create_one_file_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    start_at = str(time.time() + 1.5)
    outs = children(FIRST_CONNECT, [[url, f"p{n}", start_at] for n in range(4)])
    assert len({out.strip() for out in outs}) == 4
    conn = sqlite3.connect(tmp_path / "fresh.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM lameduck_jobs").fetchone()[0] == 4
    finally:
        conn.close()


def test_sqlite_a_lock_held_past_the_busy_timeout_is_a_broker_error(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"

    async def body() -> None:
        broker = SQLiteBroker(f"sqlite:///{path}")
        broker.busy_timeout = 0.2
        await broker.connect()
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            began = time.monotonic()
            with pytest.raises(BrokerError, match=r"^sqlite broker: enqueue failed: OperationalError: .*locked"):
                await broker.enqueue("q", "blocked")
            assert time.monotonic() - began < 3
            blocker.execute("ROLLBACK")
            assert await broker.enqueue("q", "after")
            assert (await broker.status(["q"]))["q"] == {"queued": 1}
        finally:
            blocker.close()
            await broker.close()

    run(body())


def test_sqlite_unopenable_file_is_a_broker_error(tmp_path: Path) -> None:
    async def body() -> None:
        broker = SQLiteBroker(f"sqlite:///{tmp_path / 'missing-dir' / 'jobs.db'}")
        with pytest.raises(BrokerError, match=r"^sqlite broker: connect failed: OperationalError: unable to open"):
            await broker.connect()
        await broker.close()

    run(body())


def test_sqlite_table_parameter_isolates(tmp_path: Path) -> None:
    base = f"sqlite:///{tmp_path / 'jobs.db'}"

    async def body() -> None:
        one, two = SQLiteBroker(f"{base}?table=one_jobs"), SQLiteBroker(f"{base}?table=two_jobs")
        await one.connect()
        await two.connect()
        try:
            job_id = await one.enqueue("q", "for one")
            for broker in (one, two):
                await broker.subscribe(["q"], worker_id="w", lease=30, prefetch=10)
            assert await two.claim(10) == []
            [job] = await one.claim(10)
            assert job.id == job_id
            await one.ack([job])
        finally:
            await one.close()
            await two.close()

    run(body())


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///jobs.db?table=Jobs",
        "sqlite:///jobs.db?table=1jobs",
        "sqlite:///jobs.db?table=jobs;drop",
        "sqlite:///jobs.db?table=" + "x" * 64,
        "sqlite:///jobs.db?table=a&table=b",
        "sqlite://host/jobs.db",
        "sqlite://",
        f"{PG}?table=bad-name",
        f"{PG}?table=",
    ],
)
def test_invalid_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="--broker"):
        open_broker(url)


# ---- PostgreSQL --------------------------------------------------------------------------------------------


@pytest.fixture
def table() -> Iterator[str]:
    """A table of its own for the test, dropped afterwards whatever happened."""
    name = f"ldit_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


def terminate(application_name: str) -> int:
    with psycopg.connect(PG, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [application_name],
        ).fetchall()
    return len(rows)


def test_postgres_a_killed_connection_costs_one_call(table: str) -> None:
    app = f"ldit-{uuid.uuid4().hex[:8]}"

    async def body() -> None:
        broker = PostgresBroker(f"{PG}?table={table}&application_name={app}")
        await broker.connect()
        await broker.subscribe(["q"], worker_id="w", lease=30, prefetch=10)
        try:
            await broker.enqueue("q", 1)
            [job] = await broker.claim(10)
            assert terminate(app) == 2  # the main connection and the claimer
            for call in (lambda: broker.enqueue("q", 2), lambda: broker.extend([job])):
                with pytest.raises(BrokerError, match=r"^postgres broker: (enqueue|extend) failed: ") as caught:
                    await call()
                assert "\n" not in str(caught.value)
                assert isinstance(caught.value.__cause__, psycopg.OperationalError)
            assert await broker.extend([job]) == set()
            await broker.enqueue("q", 3)
            await broker.ack([job])
            later = await broker.claim(10)
            assert len(later) == 1
            assert later[0].payload == 3  # the enqueue that failed did not happen
            await broker.ack(later)
            assert (await broker.status(["q"]))["q"] == {"done": 2}
        finally:
            await broker.close()

    run(body())


def test_postgres_unreachable_server_is_a_broker_error() -> None:
    async def body() -> None:
        broker = PostgresBroker("postgresql://postgres@127.0.0.1:1/test")
        with pytest.raises(BrokerError, match=r"^postgres broker: connect failed: OperationalError: "):
            await broker.connect()
        await broker.close()

    run(body())


CREATOR = """
import asyncio, sys
from lameduck.workers.postgres import PostgresBroker

async def main(url):
    broker = PostgresBroker(url)
    await broker.connect()
    print(await broker.enqueue("q", "from a process"))
    await broker.close()

asyncio.run(main(sys.argv[1]))
"""


def test_postgres_concurrent_schema_creation(table: str) -> None:
    url = f"{PG}?table={table}"
    procs = [
        subprocess.Popen([sys.executable, "-c", CREATOR, url], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]

    async def tasks() -> None:
        brokers = [PostgresBroker(url) for _ in range(6)]
        try:
            await asyncio.gather(*(b.connect() for b in brokers))
            await asyncio.gather(*(b.enqueue("q", "from a task") for b in brokers))
        finally:
            for b in brokers:
                await b.close()

    try:
        run(tasks())
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    with psycopg.connect(PG) as conn:
        count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert count == (9,)


def test_postgres_table_parameter_isolates(table: str) -> None:
    other = f"{table}_b"

    async def body() -> None:
        one, two = PostgresBroker(f"{PG}?table={table}"), PostgresBroker(f"{PG}?table={other}")
        try:
            await one.connect()
            await two.connect()
            job_id = await one.enqueue("q", "for one")
            for broker in (one, two):
                await broker.subscribe(["q"], worker_id="w", lease=30, prefetch=10)
            assert await two.claim(10) == []
            assert await two.status() == {}
            [job] = await one.claim(10)
            assert job.id == job_id
            await one.ack([job])
        finally:
            await one.close()
            await two.close()

    try:
        run(body())
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {other}")


def test_postgres_longest_table_name_gets_distinct_index(table: str) -> None:
    longest = (table + "_" + "x" * 63)[:63]

    async def body() -> None:
        broker = PostgresBroker(f"{PG}?table={longest}")
        try:
            await broker.connect()
            await broker.connect()  # the second time finds the schema
            await broker.enqueue("q", 1)
        finally:
            await broker.close()

    try:
        run(body())
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {longest}")


def test_postgres_wait_is_safe_to_cancel(table: str) -> None:
    async def body() -> None:
        broker = PostgresBroker(f"{PG}?table={table}")
        producer = PostgresBroker(f"{PG}?table={table}")
        await broker.connect()
        await producer.connect()
        try:
            await broker.subscribe(["q"], worker_id="w", lease=30, prefetch=10)
            await producer.enqueue("q", "held")
            [job] = await broker.claim(10)
            waiting = asyncio.get_running_loop().create_task(broker.wait(30))
            await asyncio.sleep(0.3)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await broker.release([job])  # what the runner does at SIGTERM
            [again] = await broker.claim(10)
            assert again.id == job.id
            assert again.attempt == 1
            await broker.ack([again])
            # The listener still works: a job from another broker wakes the next wait.
            await broker.wait(0.01)  # consume notifications already delivered

            async def later() -> None:
                await asyncio.sleep(0.3)
                await producer.enqueue("q", "wake")

            began = time.monotonic()
            task = asyncio.get_running_loop().create_task(later())
            await broker.wait(10)
            await task
            assert time.monotonic() - began < 5
        finally:
            await broker.close()
            await producer.close()

    run(body())


def test_postgres_wait_ignores_other_queues(table: str) -> None:
    async def body() -> None:
        broker = PostgresBroker(f"{PG}?table={table}")
        await broker.connect()
        try:
            await broker.subscribe(["mine"], worker_id="w", lease=30, prefetch=10)
            await broker.wait(0.01)  # LISTEN now

            async def noise() -> None:
                for n in range(5):
                    await broker.enqueue("theirs", n)
                    await asyncio.sleep(0.05)

            task = asyncio.get_running_loop().create_task(noise())
            began = time.monotonic()
            await broker.wait(0.6)
            await task
            assert time.monotonic() - began >= 0.5
        finally:
            await broker.close()

    run(body())


# ---- both ----------------------------------------------------------------------------------------------------


def test_query_files_name_every_query_and_reject_unknown_names() -> None:
    sqlite_names, postgres_names = set(load("sqlite.sql", table="t")), set(load("postgres.sql", table="t"))
    operations = {"enqueue", "find_key", "claim", "extend", "ack", "release", "retry", "bury", "status", "status_of"}
    assert operations <= sqlite_names
    assert operations <= postgres_names
    with pytest.raises(KeyError, match=r"no query 'nope' in .*sqlite\.sql; known: .*claim"):
        load("sqlite.sql", table="t")["nope"]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_several_queues_come_out_oldest_first(kind: str, tmp_path: Path, table: str) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}" if kind == "sqlite" else f"{PG}?table={table}"

    async def body() -> None:
        broker = open_broker(url)
        await broker.connect()
        try:
            ids = [await broker.enqueue(queue, n) for n, queue in enumerate(["a", "b", "a", "c", "b", "a"])]
            await broker.subscribe(["a", "b"], worker_id="w", lease=30, prefetch=10)
            first = await broker.claim(3)
            rest = await broker.claim(10)
            assert [job.id for job in first + rest] == [ids[n] for n in (0, 1, 2, 4, 5)]
            await broker.ack(first + rest)
            assert await broker.status(["a", "c"]) == {"a": {"done": 3}, "c": {"queued": 1}}
        finally:
            await broker.close()

    run(body())


def test_postgres_close_ends_a_wait_and_later_calls_fail(table: str) -> None:
    async def body() -> None:
        broker = PostgresBroker(f"{PG}?table={table}")
        await broker.connect()
        await broker.subscribe(["q"], worker_id="w", lease=30, prefetch=10)
        waiting = asyncio.get_running_loop().create_task(broker.wait(30))
        await asyncio.sleep(0.3)
        began = time.monotonic()
        await broker.close()
        await asyncio.wait_for(waiting, 5)
        assert time.monotonic() - began < 5
        with pytest.raises(BrokerError, match="not connected"):
            await broker.claim(1)
        await broker.connect()  # a closed broker can be opened again
        assert await broker.claim(1) == []
        await broker.close()

    run(body())
