"""Benchmark 6: the PostgreSQL job queue (``lameduck work``) against procrastinate, pgqueuer and a bare SQL loop.

Three measurements, all on the same PostgreSQL, in one scratch database created for the run and dropped after it:

1. **Claim+complete throughput** (jobs/s) with a no-op handler. Per trial and system: the queue is emptied and
   refilled with N jobs before the worker starts (VACUUM ANALYZE and CHECKPOINT after the fill), then one worker
   process drains it at the same concurrency. The window runs from the handler's first call (the worker process
   writes ``time.time()`` once, identical code in every system) to the last completion *as the database
   recorded it* (each system's own completion timestamp, the ``now()`` of the statement that completed the job):
   lameduck and the bare loop ``finished_at`` of ``state = 'done'`` rows, procrastinate the ``at`` of its
   ``succeeded`` events, pgqueuer the ``created`` of its ``successful`` log rows. Every job must be done exactly
   once. Systems alternate (rotated order) across trials; the figure is the median.
   Target: lameduck ≥ 1.0x the best peer (procrastinate, pgqueuer); the bare loop is the practical limit.
2. **Stop-claiming latency after SIGTERM**: ``lameduck work`` drains a busy queue of short jobs; SIGTERM; the
   worker's own ``intake_stopped_ms`` (its ``worker.intake_stopped`` event and summary), and from the database
   the latest claim the worker made relative to the signal. The job table has no claim time, so an audit trigger
   (bench-only, on the benchmark's own table) copies every claim's ``lease_expires_at - lease`` (= the claim
   statement's ``now()``) to a side table before acks clear it. Target: ≤ 100 ms, and no claim later than that.
3. **Reclaim latency after SIGKILL**: worker A (``--lease 2``) holds K long jobs, worker B runs beside it with
   nothing to do; A is SIGKILLed; the figure is, per job, the time from the kill to B's claim (same audit
   trigger). Target: every job ≤ lease + one poll interval.

All processes are started here and ended by PID; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import common
from bench.common import BenchError, Result

NAME = "jobs"
LAMEDUCK = "lameduck"
PROCRASTINATE = "procrastinate"
PGQUEUER = "pgqueuer"
BARE_SQL = "bare-sql"
PEERS = (PROCRASTINATE, PGQUEUER)
ALL_SYSTEMS = (LAMEDUCK, PROCRASTINATE, PGQUEUER, BARE_SQL)
LABELS = {
    LAMEDUCK: "lameduck work",
    PROCRASTINATE: "procrastinate",
    PGQUEUER: "pgqueuer",
    BARE_SQL: "bare SQL loop",
}
#: Where the scratch database is created from (trust auth, as on the development machines and CI).
ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET_RATIO = 1.0
TARGET_STOP_MS = 100.0
#: Tables (the lameduck schema, created by lameduck's own broker).
THROUGHPUT_TABLE = {LAMEDUCK: "bench_lameduck", BARE_SQL: "bench_bare"}
STOP_TABLE = "bench_stop"
RECLAIM_TABLE = "bench_reclaim"
CLAIMS_TABLE = "bench_claims"
QUEUE = "bench"
#: Polling the database for progress: often enough for the figures (which come from the rows, not from here).
POLL = 0.1
STOP_TIMEOUT = 15.0


# -- the scratch database ---------------------------------------------------------------------------------------


def _connect(url: str) -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - both venvs have it
        raise BenchError("psycopg is not installed: pip install -e '.[postgres]'") from exc
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        raise BenchError(f"PostgreSQL is not reachable at {url}: {str(exc).strip()}") from exc


def _with_db(url: str, db: str) -> str:
    base, _, query = url.partition("?")
    head, _, _old = base.rpartition("/")
    return f"{head}/{db}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """CREATE DATABASE for this run; DROP it (FORCE: our workers may still be connected) whatever happens."""
    name = f"lameduck_bench_jobs_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with _connect(admin_url) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield _with_db(admin_url, name)
    finally:
        with _connect(admin_url) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _sql(dsn: str, *statements: str) -> list[tuple[Any, ...]]:
    """Run statements in one autocommit connection; return the last one's rows (if it has any)."""
    rows: list[tuple[Any, ...]] = []
    with _connect(dsn) as conn:
        for statement in statements:
            cursor = conn.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
    return rows


def _create_lameduck_table(dsn: str, table: str) -> None:
    """The job table as lameduck creates it (its broker's connect())."""
    import asyncio

    from lameduck.workers.broker import open_broker

    async def create() -> None:
        broker = open_broker(f"{dsn}?table={table}")
        await broker.connect()
        await broker.close()

    asyncio.run(create())


# -- processes --------------------------------------------------------------------------------------------------


@dataclass
class Proc:
    label: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def tail(self, limit: int = 1500) -> str:
        return self.text()[-limit:].strip()

    def events(self, name: str) -> list[dict[str, Any]]:
        """lameduck's JSON log lines named ``lameduck.NAME``."""
        found = []
        for line in self.text().splitlines():
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == f"lameduck.{name}":
                    found.append(event)
        return found


def _start(label: str, argv: Sequence[str], env: dict[str, str], workdir: Path) -> Proc:
    log_path = workdir / f"{label}-{uuid.uuid4().hex[:6]}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            list(argv), cwd=common.REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    return Proc(label, proc, log_path)


def _stop(proc: Proc, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int | None:
    """``sig`` by PID, wait ``timeout``, then SIGKILL by PID; returns the exit status."""
    if proc.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.proc.wait(timeout=timeout)
    if proc.proc.poll() is None:
        proc.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.proc.wait(timeout=common.REAP_TIMEOUT)
    return proc.proc.returncode


def _env(dsn: str, concurrency: int, **extra: str) -> dict[str, str]:
    env = common.child_env()
    env.update({"BENCH_JOBS_DSN": dsn, "BENCH_JOBS_CONCURRENCY": str(concurrency), "PGDSN": dsn})
    for key in ("BENCH_JOBS_MARK", "BENCH_JOBS_MAX_SLEEP"):
        env.pop(key, None)
    env.update(extra)
    return env


def _bin(name: str) -> str:
    """A console script next to this Python (the venv's), else the bare name."""
    script = Path(sys.executable).parent / name
    return str(script) if script.exists() else name


def _wait_for(what: str, check: Callable[[], bool], timeout: float, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.proc.poll() is not None:
            raise BenchError(f"{proc.label} exited with {proc.proc.returncode} while waiting for {what}: {proc.tail()}")
        if time.monotonic() > deadline:
            tail = f": {proc.tail()}" if proc is not None else ""
            raise BenchError(f"{what}: not within {timeout:g} s{tail}")
        time.sleep(POLL / 2)


# -- the systems ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class System:
    key: str
    #: Python modules the system's worker needs (checked before a run).
    needs: tuple[str, ...]
    #: How "done" is observed in the database (rendered in the report).
    done_by: str

    def available(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.needs)

    # Each returns SQL for this system's tables in the scratch database.
    def tables(self) -> list[str]:
        if self.key == PROCRASTINATE:
            return [
                "procrastinate_events",
                "procrastinate_jobs",
                "procrastinate_workers",
                "procrastinate_periodic_defers",
            ]
        if self.key == PGQUEUER:
            return ["pgqueuer_log", "pgqueuer", "pgqueuer_statistics"]
        return [THROUGHPUT_TABLE[self.key]]

    def remaining_sql(self) -> str:
        if self.key == PROCRASTINATE:
            return "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
        if self.key == PGQUEUER:
            return "SELECT count(*) FROM pgqueuer"  # a completed job's row is deleted (and logged)
        return f"SELECT count(*) FROM {THROUGHPUT_TABLE[self.key]} WHERE state IN ('queued', 'running')"

    def done_sql(self) -> str:
        """(jobs done, distinct jobs done, last completion as epoch seconds, first claim as epoch or NULL)."""
        if self.key == PROCRASTINATE:
            return (
                "SELECT count(*) FILTER (WHERE type = 'succeeded'), count(DISTINCT job_id) FILTER (WHERE type = "
                "'succeeded'), extract(epoch FROM max(at) FILTER (WHERE type = 'succeeded')), "
                "extract(epoch FROM min(at) FILTER (WHERE type = 'started')) FROM procrastinate_events"
            )
        if self.key == PGQUEUER:
            return (
                "SELECT count(*) FILTER (WHERE status = 'successful'), count(DISTINCT job_id) FILTER (WHERE status = "
                "'successful'), extract(epoch FROM max(created) FILTER (WHERE status = 'successful')), "
                "extract(epoch FROM min(created) FILTER (WHERE status = 'picked')) FROM pgqueuer_log"
            )
        table = THROUGHPUT_TABLE[self.key]
        return (
            f"SELECT count(*), count(*) FILTER (WHERE attempts = 1), extract(epoch FROM max(finished_at)), NULL "
            f"FROM {table} WHERE state = 'done'"
        )

    def argv(self, dsn: str, concurrency: int) -> list[str]:
        if self.key == LAMEDUCK:
            return [*common.lameduck_executable(), *lameduck_args(dsn, THROUGHPUT_TABLE[LAMEDUCK], concurrency)]
        if self.key == BARE_SQL:
            table = THROUGHPUT_TABLE[BARE_SQL]
            return [*_module("bare"), "--dsn", dsn, "--table", table, "--batch", str(concurrency)]
        if self.key == PROCRASTINATE:
            app = ["--app", "bench.jobs_peers.app", "--log-level", "warning"]
            return [_bin("procrastinate"), *app, "worker", "--queues", QUEUE, "--concurrency", str(concurrency)]
        batch = str(max(1, concurrency // 2))
        return [*_module("pgqueuer"), "--batch-size", batch, "--max-concurrent-tasks", str(concurrency)]

    def shown(self, concurrency: int) -> str:
        argv = self.argv("DSN", concurrency)
        argv[0] = {LAMEDUCK: "lameduck", PROCRASTINATE: "procrastinate"}.get(self.key, "python")
        if self.key == LAMEDUCK and argv[1:3] == ["-m", "lameduck"]:
            del argv[1:3]
        return shlex.join(argv).replace("DSN?table", "postgresql://…/DB?table").replace(" DSN", " postgresql://…/DB")


SYSTEMS = {
    s.key: s
    for s in (
        System(LAMEDUCK, ("lameduck", "psycopg"), "rows with `state = 'done'`; last = `max(finished_at)`"),
        System(
            PROCRASTINATE,
            ("procrastinate", "psycopg_pool"),
            "`procrastinate_events` of type `succeeded` (its trigger writes one per finished job); last = `max(at)`",
        ),
        System(
            PGQUEUER,
            ("pgqueuer", "asyncpg", "uvloop"),
            "`pgqueuer_log` rows with `status = 'successful'` (written in the statement that deletes the job); "
            "last = `max(created)`",
        ),
        System(BARE_SQL, ("psycopg",), "rows with `state = 'done'`; last = `max(finished_at)`"),
    )
}


def lameduck_args(dsn: str, table: str, concurrency: int, *extra: str) -> list[str]:
    broker = ["--broker", f"{dsn}?table={table}"]
    return ["work", "bench.jobs_apps:worker", *broker, "--concurrency", str(concurrency), "--port", "0", *LOGS, *extra]


LOGS = ("--log-format", "json")


def _module(command: str) -> list[str]:
    return [sys.executable, "-m", "bench.jobs_apps", command]


def _insert(dsn: str, table: str, count: int, seconds: str | None = None) -> None:
    """``count`` jobs ``{"n": g}`` (plus ``"seconds": <SQL expression of g>``) into a lameduck table, in one
    statement: the rows ``enqueue`` would write (queued, due now), without a round trip each."""
    payload = "jsonb_build_object('n', g)" if seconds is None else f"jsonb_build_object('n', g, 'seconds', {seconds})"
    _sql(
        dsn,
        f"INSERT INTO {table} (queue, payload) SELECT '{QUEUE}', {payload} FROM generate_series(1, {int(count)}) AS g",
        f"VACUUM ANALYZE {table}",
    )


def install(dsn: str, systems: Sequence[str], workdir: Path) -> None:
    """Each system's schema, by its own tool: lameduck's broker, ``procrastinate schema --apply``, ``pgq install``."""
    for key in systems:
        if key in THROUGHPUT_TABLE:
            _create_lameduck_table(dsn, THROUGHPUT_TABLE[key])
            continue
        argv = (
            [_bin("procrastinate"), "--app", "bench.jobs_peers.app", "schema", "--apply"]
            if key == PROCRASTINATE
            else [_bin("pgq"), "install"]
        )
        proc = _start(f"{key}-install", argv, _env(dsn, 1), workdir)
        try:
            code = proc.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            _stop(proc)
        if code != 0:
            raise BenchError(f"{shlex.join(argv[:1] + argv[1:])} failed ({code}): {proc.tail()}")


def fill(dsn: str, system: System, count: int, workdir: Path) -> None:
    """Empty the system's tables, enqueue ``count`` jobs, VACUUM ANALYZE, CHECKPOINT."""
    _sql(dsn, f"TRUNCATE {', '.join(system.tables())} RESTART IDENTITY CASCADE")
    if system.key in THROUGHPUT_TABLE:
        _insert(dsn, THROUGHPUT_TABLE[system.key], count)
    else:
        argv = [*_module("enqueue"), system.key, "--count", str(count)]
        proc = _start(f"{system.key}-enqueue", argv, _env(dsn, 1), workdir)
        try:
            code = proc.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            _stop(proc)
        if code != 0:
            raise BenchError(f"enqueueing {count} {system.key} jobs failed ({code}): {proc.tail()}")
    queued = _sql(dsn, system.remaining_sql())[0][0]
    if queued != count:
        raise BenchError(f"{system.key}: {queued} jobs queued after enqueueing {count}")
    _sql(dsn, *[f"VACUUM ANALYZE {t}" for t in system.tables()], "CHECKPOINT")


# -- 1. throughput ----------------------------------------------------------------------------------------------


@dataclass
class Drain:
    system: str
    jobs: int
    first_call: float = 0.0  # time.time() of the handler's first call
    last_done: float = 0.0  # the database's timestamp of the last completion
    first_claim_db: float | None = None  # the peers' own claim records, when they keep one
    spawned: float = 0.0
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.last_done - self.first_call

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else 0.0


def drain_once(dsn: str, system: System, *, jobs: int, concurrency: int, workdir: Path) -> Drain:
    fill(dsn, system, jobs, workdir)
    mark = workdir / f"mark-{system.key}-{uuid.uuid4().hex[:6]}"
    drain = Drain(system.key, jobs)
    env = _env(dsn, concurrency, BENCH_JOBS_MARK=str(mark))
    drain.spawned = time.time()
    proc = _start(system.key, system.argv(dsn, concurrency), env, workdir)
    try:
        with _connect(dsn) as conn:
            remaining_sql = system.remaining_sql()

            def empty() -> bool:
                return int(conn.execute(remaining_sql).fetchone()[0]) == 0

            # Generous: the slowest peer here does about 500 jobs/s; plus its start-up.
            _wait_for(f"{system.key} draining {jobs} jobs", empty, 30.0 + jobs / 200, proc)
    finally:
        code = _stop(proc)
    done, distinct, last, first_db = _sql(dsn, system.done_sql())[0]
    if int(done) != jobs or int(distinct) != jobs:
        drain.error = f"{system.key}: {done} completions ({distinct} distinct or first attempts) of {jobs} jobs"
        return drain
    try:
        drain.first_call = float(mark.read_text().strip())
    except (OSError, ValueError):
        drain.error = f"{system.key}: its handler never wrote the first-call mark (exit {code}): {proc.tail()}"
        return drain
    drain.last_done = float(last)
    drain.first_claim_db = float(first_db) if first_db is not None else None
    return drain


def _drain_line(one: Drain) -> str:
    if one.error:
        return f"ERROR {one.error}"
    lag = ""
    if one.first_claim_db:
        lag = f"; its own first-claim record {1000 * (one.first_call - one.first_claim_db):.1f} ms before that"
    return (
        f"{one.rate:>8,.0f} jobs/s ({one.jobs:,} in {one.seconds:.2f} s; first call {one.first_call - one.spawned:.2f} "
        f"s after spawn{lag})"
    )


# -- 2. stop-claiming after SIGTERM, 3. reclaim after SIGKILL --------------------------------------------------

AUDIT_SQL = (
    f"CREATE TABLE IF NOT EXISTS {CLAIMS_TABLE} (tbl text, job_id bigint, worker text, attempts integer, "
    "lease_expires_at timestamptz, stmt_now timestamptz)",
    """CREATE OR REPLACE FUNCTION bench_log_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_claims VALUES (TG_TABLE_NAME, NEW.id, NEW.claimed_by, NEW.attempts, NEW.lease_expires_at, now());
    RETURN NEW;
END $$""",
)


def _audit(dsn: str, table: str) -> None:
    """Every claim of ``table`` (the only update that raises ``attempts``) copied to bench_claims."""
    _create_lameduck_table(dsn, table)
    _sql(
        dsn,
        *AUDIT_SQL,
        f"DROP TRIGGER IF EXISTS bench_claim ON {table}",
        f"CREATE TRIGGER bench_claim AFTER UPDATE ON {table} FOR EACH ROW WHEN (NEW.attempts > OLD.attempts) "
        "EXECUTE FUNCTION bench_log_claim()",
    )


def _claims(conn: Any, table: str, worker: str, lease: float) -> list[tuple[int, float]]:
    """(job id, claimed at = lease_expires_at - lease, epoch seconds) of ``worker``'s claims in ``table``."""
    rows = conn.execute(
        f"SELECT job_id, extract(epoch FROM lease_expires_at - %s * interval '1 second') FROM {CLAIMS_TABLE} "
        "WHERE tbl = %s AND worker = %s ORDER BY 2",
        (lease, table, worker),
    ).fetchall()
    return [(int(r[0]), float(r[1])) for r in rows]


def _worker_id(proc: Proc, timeout: float = 20.0) -> str:
    found: list[str] = []

    def subscribed() -> bool:
        events = proc.events("worker.subscribed")
        if events:
            found.append(str(events[0]["worker_id"]))
        return bool(found)

    _wait_for(f"{proc.label} subscribing", subscribed, timeout, proc)
    return found[0]


@dataclass
class Stop:
    intake_stopped_ms: float | None = None
    summary_ms: float | None = None
    last_claim_ms: float | None = None  # latest claim minus the signal (negative: before it)
    claims_after: int = 0
    claims: int = 0
    done_before: int = 0
    released: int = 0
    exit_code: int | None = None
    error: str | None = None


def stop_once(dsn: str, *, jobs: int, concurrency: int, lease: float, busy_s: float, workdir: Path) -> Stop:
    """A busy worker (jobs of 0..20 ms, claimed continuously), SIGTERM after ``busy_s`` of work."""
    out = Stop()
    _sql(dsn, f"TRUNCATE {STOP_TABLE}, {CLAIMS_TABLE} RESTART IDENTITY")
    _insert(dsn, STOP_TABLE, jobs, "0.005 * (g % 5)")
    argv = [*common.lameduck_executable(), *lameduck_args(dsn, STOP_TABLE, concurrency, "--lease", f"{lease:g}")]
    proc = _start("lameduck-stop", argv, _env(dsn, concurrency), workdir)
    try:
        worker = _worker_id(proc)
        with _connect(dsn) as conn:

            def busy() -> bool:
                first = conn.execute(f"SELECT min(stmt_now) FROM {CLAIMS_TABLE}").fetchone()[0]
                return first is not None and time.time() - first.timestamp() >= busy_s

            _wait_for("the stop run's worker getting busy", busy, 20.0, proc)
            out.done_before = int(conn.execute(f"SELECT count(*) FROM {STOP_TABLE} WHERE state = 'done'").fetchone()[0])
            left = int(conn.execute(f"SELECT count(*) FROM {STOP_TABLE} WHERE state = 'queued'").fetchone()[0])
            if left < concurrency * 2:
                raise BenchError(f"the queue ran dry before SIGTERM ({left} queued): enqueue more jobs")
            sent = time.time()
            os.kill(proc.pid, signal.SIGTERM)
            try:
                out.exit_code = proc.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                out.error = "lameduck work did not exit within 30 s of SIGTERM"
            claims = _claims(conn, STOP_TABLE, worker, lease)
    finally:
        _stop(proc)
    stopped = proc.events("worker.intake_stopped")
    summary = proc.events("summary")
    if stopped:
        out.intake_stopped_ms = stopped[0].get("ms")
    if summary:
        out.summary_ms = summary[0].get("intake_stopped_ms")
        out.released = int(summary[0].get("jobs", {}).get("released", 0))
    if out.intake_stopped_ms is None and out.error is None:
        out.error = f"no worker.intake_stopped event (exit {out.exit_code}): {proc.tail()}"
    out.claims = len(claims)
    if claims:
        out.last_claim_ms = round((claims[-1][1] - sent) * 1000, 1)
        out.claims_after = sum(1 for _, at in claims if at > sent)
    return out


def reclaim_jitter(lease: float, poll_interval: float) -> float:
    """The kill's random delay spans two of the longer cycle: A renews every lease/3, B polls every interval."""
    return 2 * max(lease / 3, poll_interval)


@dataclass
class Reclaim:
    delays: list[float] = field(default_factory=list)  # seconds from SIGKILL to the second worker's claim, per job
    last_extend_age: float | None = None  # how long before the kill the dead worker's leases were last renewed
    error: str | None = None


def reclaim_once(
    dsn: str, *, jobs: int, lease: float, poll_interval: float, settle: float, rng: random.Random, workdir: Path
) -> Reclaim:
    out = Reclaim()
    _sql(dsn, f"TRUNCATE {RECLAIM_TABLE}, {CLAIMS_TABLE} RESTART IDENTITY")
    _insert(dsn, RECLAIM_TABLE, jobs, "600")
    flags = ("--lease", f"{lease:g}", "--poll-interval", f"{poll_interval:g}")
    argv = [*common.lameduck_executable(), *lameduck_args(dsn, RECLAIM_TABLE, jobs, *flags)]
    a = _start("lameduck-a", argv, _env(dsn, jobs), workdir)
    b: Proc | None = None
    try:
        a_id = _worker_id(a)
        with _connect(dsn) as conn:
            _wait_for(
                "worker A holding every job", lambda: len(_claims(conn, RECLAIM_TABLE, a_id, lease)) >= jobs, 20.0, a
            )
            b = _start("lameduck-b", argv, _env(dsn, jobs, BENCH_JOBS_MAX_SLEEP="0"), workdir)
            b_id = _worker_id(b)
            # B is in its steady state (a claim finds nothing, it waits a poll interval); the random part moves the
            # kill across both A's lease-renewal cycle (lease/3) and B's poll cycle, so neither phase is fixed.
            time.sleep(settle + rng.uniform(0, reclaim_jitter(lease, poll_interval)))
            if _claims(conn, RECLAIM_TABLE, b_id, lease):
                raise BenchError("worker B claimed a job before A was killed (A's lease ran out?)")
            leases = conn.execute(
                f"SELECT extract(epoch FROM max(lease_expires_at)) FROM {RECLAIM_TABLE} WHERE claimed_by = %s", (a_id,)
            ).fetchone()[0]
            killed = time.time()
            os.kill(a.pid, signal.SIGKILL)
            a.proc.wait(timeout=common.REAP_TIMEOUT)
            if leases is not None:
                out.last_extend_age = round(killed - (float(leases) - lease), 3)
            bound = lease + poll_interval + 10.0
            _wait_for(
                "worker B reclaiming every job",
                lambda: len(_claims(conn, RECLAIM_TABLE, b_id, lease)) >= jobs,
                bound,
                b,
            )
            out.delays = [round(at - killed, 3) for _, at in _claims(conn, RECLAIM_TABLE, b_id, lease)]
    except BenchError as exc:
        out.error = str(exc)
    finally:
        _stop(a, signal.SIGKILL)
        if b is not None:
            _stop(b)
    return out


# -- the benchmark ----------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} ms"


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def run(
    *,
    systems: Sequence[str] = ALL_SYSTEMS,
    jobs: int = 20_000,
    trials: int = 5,
    concurrency: int = 10,
    stop_trials: int = 9,
    stop_jobs: int = 5_000,
    stop_busy: float = 1.0,
    reclaim_trials: int = 5,
    lease: float = 2.0,
    poll_interval: float = 1.0,
    reclaim_settle: float = 0.5,
    seed: int = 1,
    admin_url: str = ADMIN_URL,
    log: Callable[[str], None] = print,
) -> Result:
    began = time.perf_counter()
    if LAMEDUCK not in systems:
        raise ValueError("the jobs benchmark judges lameduck: systems must include it")
    missing = [k for k in systems if not SYSTEMS[k].available()]
    if missing:
        raise BenchError(
            f"not installed here: {', '.join(missing)}; ./scripts/bench runs from .venv-bench, which has them "
            "(pip install -e '.[bench]')"
        )
    skipped = [k for k in ALL_SYSTEMS if k not in systems]
    cpu_before = postgres_cpu_seconds()
    drains: dict[str, list[Drain]] = {k: [] for k in systems}
    stops: list[Stop] = []
    reclaims: list[Reclaim] = []
    errors: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="lameduck-bench-jobs-"))
    try:
        with scratch_database(admin_url) as dsn:
            install(dsn, systems, workdir)
            for trial in range(trials):
                order = [systems[(trial + i) % len(systems)] for i in range(len(systems))]
                for key in order:
                    one = drain_once(dsn, SYSTEMS[key], jobs=jobs, concurrency=concurrency, workdir=workdir)
                    drains[key].append(one)
                    if one.error:
                        errors.append(one.error)
                    log(f"  jobs throughput trial {trial + 1}/{trials} {key:<13}: {_drain_line(one)}")
            _audit(dsn, STOP_TABLE)
            for trial in range(stop_trials):
                one_stop = stop_once(
                    dsn, jobs=stop_jobs, concurrency=concurrency, lease=10.0, busy_s=stop_busy, workdir=workdir
                )
                stops.append(one_stop)
                if one_stop.error:
                    errors.append(one_stop.error)
                log(
                    f"  jobs stop trial {trial + 1}/{stop_trials}: intake_stopped_ms {one_stop.intake_stopped_ms}, "
                    f"latest claim {_ms(one_stop.last_claim_ms)} after SIGTERM, {one_stop.claims_after} claims after "
                    f"it, {one_stop.released} released, exit {one_stop.exit_code}"
                    + (f" ERROR {one_stop.error}" if one_stop.error else "")
                )
            _audit(dsn, RECLAIM_TABLE)
            rng = random.Random(seed)
            for trial in range(reclaim_trials):
                one_reclaim = reclaim_once(
                    dsn,
                    jobs=concurrency,
                    lease=lease,
                    poll_interval=poll_interval,
                    settle=reclaim_settle,
                    rng=rng,
                    workdir=workdir,
                )
                reclaims.append(one_reclaim)
                if one_reclaim.error:
                    errors.append(one_reclaim.error)
                shown = (
                    f"median {common.median(one_reclaim.delays):.2f} s, max {max(one_reclaim.delays):.2f} s"
                    if one_reclaim.delays
                    else "—"
                )
                log(
                    f"  jobs reclaim trial {trial + 1}/{reclaim_trials}: {len(one_reclaim.delays)} jobs, {shown} "
                    f"(leases last renewed {one_reclaim.last_extend_age} s before the kill)"
                    + (f" ERROR {one_reclaim.error}" if one_reclaim.error else "")
                )
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    cpu_used = postgres_cpu_seconds() - cpu_before if cpu_before is not None else None
    return _result(
        systems=systems,
        skipped=skipped,
        drains=drains,
        stops=stops,
        reclaims=reclaims,
        errors=errors,
        params={
            "jobs": jobs,
            "trials": trials,
            "concurrency": concurrency,
            "stop_trials": stop_trials,
            "stop_jobs": stop_jobs,
            "stop_busy": stop_busy,
            "reclaim_trials": reclaim_trials,
            "lease": lease,
            "poll_interval": poll_interval,
            "reclaim_settle": reclaim_settle,
            "seed": seed,
            "jitter": reclaim_jitter(lease, poll_interval),
        },
        began=began,
        server_cpu=cpu_used,
    )


def _result(
    *,
    systems: Sequence[str],
    skipped: Sequence[str],
    drains: dict[str, list[Drain]],
    stops: list[Stop],
    reclaims: list[Reclaim],
    errors: list[str],
    params: dict[str, Any],
    began: float,
    server_cpu: float | None,
) -> Result:
    rates = {k: [round(d.rate, 1) for d in v if d.error is None] for k, v in drains.items()}
    medians = {k: common.median(v) for k, v in rates.items() if v}
    lameduck = medians.get(LAMEDUCK)
    peers = {k: medians[k] for k in PEERS if k in medians}
    best = max(peers, key=lambda k: peers[k]) if peers else None
    ratios = {k: common.ratio(lameduck, medians[k]) for k in medians if k != LAMEDUCK}
    throughput_ok = None if best is None else (ratios[best] or 0) >= TARGET_RATIO

    stop_ms = [s.intake_stopped_ms for s in stops if s.intake_stopped_ms is not None]
    last_claims = [s.last_claim_ms for s in stops if s.last_claim_ms is not None]
    stop_ok = (
        None  # not run (stop_trials=0): no verdict
        if not params["stop_trials"]
        else bool(stops)
        and len(stop_ms) == len(stops)
        and max(stop_ms) <= TARGET_STOP_MS
        and all(ms <= TARGET_STOP_MS for ms in last_claims)
    )
    bound = params["lease"] + params["poll_interval"]
    delays = [d for r in reclaims for d in r.delays]
    reclaim_ok = (
        None
        if not params["reclaim_trials"]
        else bool(delays) and all(not r.error for r in reclaims) and max(delays) <= bound
    )

    verdicts = [v for v in (throughput_ok, stop_ok, reclaim_ok) if v is not None]
    concurrency = params["concurrency"]
    notes = [
        f"throughput: {params['jobs']:,} jobs pre-enqueued per trial, {params['trials']} trials per system (order "
        f"rotated each trial), one worker process per system at concurrency {concurrency}; jobs/s = N ÷ (last "
        "completion recorded by the database - the handler's first call)",
        "throughput medians: "
        + "; ".join(f"{LABELS[k]} **{medians[k]:,.0f} jobs/s**" for k in systems if k in medians),
        "lameduck ÷ each: "
        + "; ".join(f"{LABELS[k]} **{ratios[k]:.2f}x**" for k in systems if k in ratios and ratios[k] is not None),
    ]
    if skipped:
        notes.append(
            f"not run: {', '.join(LABELS[k] for k in skipped)} (quick mode runs lameduck and the bare loop only: the "
            "peers are installed in .venv-bench, never in the test venv); the throughput target is not judged"
        )
    notes.append(
        f"stop-claiming: {len(stops)} SIGTERMs to a busy `lameduck work --concurrency {concurrency}` "
        f"({params['stop_jobs']:,} jobs of 0..20 ms queued, SIGTERM {params['stop_busy']:g} s after its first claim): "
        f"intake_stopped_ms median {_ms(common.median(stop_ms) if stop_ms else None)}, max "
        f"{_ms(max(stop_ms) if stop_ms else None)}; latest claim relative to the signal, from the database: max "
        f"{_ms(max(last_claims) if last_claims else None)} (negative: before it); claims after the signal: "
        f"{sum(s.claims_after for s in stops)}"
    )
    notes.append(
        f"reclaim: {len(reclaims)} runs, worker A (`--lease {params['lease']:g} --poll-interval "
        f"{params['poll_interval']:g} --concurrency {concurrency}`) holding {concurrency} jobs SIGKILLed at a random "
        f"moment (seed {params['seed']}: {params['reclaim_settle']:g} s + U(0, {params['jitter']:g} s) after worker B, "
        "same flags, had subscribed, so the kill falls anywhere in A's renewal cycle and B's poll cycle): kill → B's "
        "claim per job, median "
        f"{_s(common.median(delays) if delays else None)}, max {_s(max(delays) if delays else None)} over "
        f"{len(delays)} jobs (bound lease + poll = {bound:g} s)"
    )
    for err in errors:
        notes.append(f"ERROR: {err}")
    commands = {f"{LABELS[k]}": SYSTEMS[k].shown(concurrency) for k in systems}
    best_cell = f"best peer: {LABELS[best]} {peers[best]:,.0f} jobs/s" if best else "no peer run"
    bare = medians.get(BARE_SQL)
    result = Result(
        name=NAME,
        title="PostgreSQL job queue: throughput vs procrastinate/pgqueuer, stop-claiming, reclaim",
        target=f"≥ {TARGET_RATIO:g}x best peer jobs/s; stop ≤ {TARGET_STOP_MS:g} ms; reclaim ≤ lease + poll",
        unit="jobs/s",
        lameduck=lameduck,
        bare=peers[best] if best else None,
        ratio=ratios.get(best) if best else None,
        passed=(all(verdicts) if verdicts else None) if not errors else False,
        lameduck_cell=(
            f"{lameduck:,.0f} jobs/s; stop {_ms(max(stop_ms) if stop_ms else None)}; reclaim max "
            f"{_s(max(delays) if delays else None)}"
            if lameduck
            else "—"
        ),
        bare_cell=best_cell + (f" (bare SQL loop {bare:,.0f})" if bare else ""),
        samples=dict(rates),
        notes=notes,
        commands=commands,
        details={
            "jobs": {
                "systems": list(systems),
                "skipped": list(skipped),
                "medians": medians,
                "ratios": ratios,
                "best": best,
                "verdicts": {"throughput": throughput_ok, "stop": stop_ok, "reclaim": reclaim_ok},
                "done_by": {k: SYSTEMS[k].done_by for k in systems},
                "drains": {
                    k: [
                        {
                            "rate": round(d.rate, 1),
                            "seconds": round(d.seconds, 3),
                            "startup_s": round(d.first_call - d.spawned, 3) if d.first_call else None,
                            "first_claim_lead_ms": round(1000 * (d.first_call - d.first_claim_db), 1)
                            if d.first_claim_db and d.first_call
                            else None,
                            "error": d.error,
                        }
                        for d in v
                    ]
                    for k, v in drains.items()
                },
                "stops": [s.__dict__ for s in stops],
                "reclaims": [r.__dict__ for r in reclaims],
                "params": params,
            },
            "server_cpu_seconds": server_cpu,
        },
    )
    if errors and result.error is None and not any(rates.values()):
        result.error = errors[0]
    result.seconds = time.perf_counter() - began
    return result


# -- the PostgreSQL server's CPU (it does this benchmark's database work: not "other processes") --------------


def postgres_cpu_seconds() -> float | None:
    """CPU seconds used by the local PostgreSQL server so far: the postmaster (with its reaped children) plus its
    live children, from /proc. None when no postmaster is visible (a server elsewhere, or no /proc)."""
    hz = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[str, int, float, float]] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                    raw = stat.read()
                comm = raw[raw.index("(") + 1 : raw.rindex(")")]
                rest = raw.rsplit(")", 1)[1].split()
                own = (int(rest[11]) + int(rest[12])) / hz
                children = (int(rest[13]) + int(rest[14])) / hz
                stats[int(entry)] = (comm, int(rest[1]), own, children)
    masters = [
        pid
        for pid, (comm, ppid, _, _) in stats.items()
        if comm == "postgres" and stats.get(ppid, ("",))[0] != "postgres"
    ]
    if not masters:
        return None
    total = 0.0
    for master in masters:
        total += stats[master][2] + stats[master][3]
        total += sum(own for comm, ppid, own, _ in stats.values() if ppid == master)
    return total
