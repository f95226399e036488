"""Smoke test for the benchmark suite (bench/): the smallest benchmarks with tiny parameters, and the report writer.

The real numbers come from ``./scripts/bench``; this only keeps the suite runnable. It never touches the
repository's BENCHMARKS.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from bench import common, jobs, report, rollout, sigterm_exit
from bench.__main__ import BENCHMARKS
from bench.common import BARE, LAMEDUCK

from lameduck.verify.haproxy import HAProxyMissingError, find_haproxy

BENCHMARKS_MD = common.REPO / "BENCHMARKS.md"


def _fingerprint(path: Path) -> tuple[int, int] | None:
    return (path.stat().st_mtime_ns, path.stat().st_size) if path.exists() else None


def test_sigterm_exit_measures_both_servers_and_writes_only_where_told(tmp_path: Path) -> None:
    before = _fingerprint(BENCHMARKS_MD)
    common.raise_nofile_limit()

    ms, code = sigterm_exit.measure_once(LAMEDUCK, connections=50)
    assert ms > 0
    assert code == 0  # lameduck exits 0 after a clean drain

    result = sigterm_exit.run(trials=1, connections=50, log=lambda _line: None)
    assert result.error is None
    assert result.lameduck is not None
    assert result.lameduck > 0
    assert result.bare is not None
    assert result.bare > 0
    assert len(result.samples[LAMEDUCK]) == len(result.samples[BARE]) == 1

    out = tmp_path / "BENCH.md"
    report.write([result], out, report.machine(), command="pytest", mode="smoke", seconds=1.0)
    text = out.read_text(encoding="utf-8")
    assert "| benchmark | target | lameduck | bare uvicorn |" in text
    assert sigterm_exit.NAME in text
    assert _fingerprint(BENCHMARKS_MD) == before


def _haproxy() -> str | None:
    try:
        return find_haproxy()
    except HAProxyMissingError:
        return None


# In CI a skip fails the session (tests/conftest.py): scripts/tools installs haproxy there.
@pytest.mark.skipif(_haproxy() is None, reason="haproxy is not installed (apt-get install -y haproxy)")
def test_rollout_runs_lameduck_and_uvicorn_and_reports_where_they_fail(tmp_path: Path) -> None:
    before = _fingerprint(BENCHMARKS_MD)
    lines: list[str] = []
    result = rollout.run(
        servers=(rollout.LAMEDUCK, rollout.UVICORN),
        prestops=("none",),
        lbs=("tcp",),
        seeds=(1,),
        rate=100.0,
        connections=8,
        settle=1.0,
        replicas=1,
        min_requests=0,
        log=lines.append,
    )
    assert result.error is None
    assert len(lines) == 2
    cells = result.details["cells"]
    assert [(c["server"], c["prestop"], c["lb"]) for c in cells] == [
        (rollout.LAMEDUCK, "none", "tcp"),
        (rollout.UVICORN, "none", "tcp"),
    ]
    for cell in cells:
        assert cell["requests"][0] > 0
        assert cell["replaced"] == 1  # the one replica was replaced and its termination steps were recorded
        assert cell["timing"]["exit"] is not None
    assert result.passed is (cells[0]["failed"] == [0])

    out = tmp_path / "BENCH.md"
    report.write([result], out, report.machine(), command="pytest", mode="smoke", seconds=1.0)
    text = out.read_text(encoding="utf-8")
    assert "#### Rollout matrix" in text
    assert "| lameduck serve | none | tcp |" in text
    assert "| uvicorn | none | tcp |" in text
    assert "**uvicorn**:" in text
    assert _fingerprint(BENCHMARKS_MD) == before


def test_jobs_quick_mode_runs_lameduck_and_the_bare_loop_without_the_peers(tmp_path: Path) -> None:
    """The jobs benchmark as `python -m bench --only jobs --quick` runs it, from the test venv: procrastinate and
    pgqueuer are not installed here, and quick mode leaves them out and says so (it is not a skip)."""
    before = _fingerprint(BENCHMARKS_MD)
    _fn, full, quick = BENCHMARKS[jobs.NAME]
    assert set(full["systems"]) == set(jobs.ALL_SYSTEMS)
    assert set(quick["systems"]) == {jobs.LAMEDUCK, jobs.BARE_SQL}
    lines: list[str] = []
    result = jobs.run(**{**quick, "poll_interval": 0.5}, log=lines.append)

    assert result.error is None, result.notes
    details = result.details["jobs"]
    assert details["skipped"] == [jobs.PROCRASTINATE, jobs.PGQUEUER]
    assert any("not run: procrastinate, pgqueuer (quick mode" in note for note in result.notes)
    assert details["verdicts"]["throughput"] is None  # no peer ran: not judged, and not faked
    assert result.lameduck is not None
    assert result.lameduck > 0
    assert details["medians"][jobs.BARE_SQL] > 0
    assert len(result.samples[jobs.LAMEDUCK]) == len(result.samples[jobs.BARE_SQL]) == quick["trials"]
    assert details["ratios"][jobs.BARE_SQL] is not None

    (stop,) = details["stops"]
    assert stop["exit_code"] == 0
    assert stop["intake_stopped_ms"] is not None
    assert stop["intake_stopped_ms"] < 1000  # bench/ reports the real figure against its 100 ms target
    assert stop["claims"] > 0  # the audit trigger saw the worker's claims

    (reclaim,) = details["reclaims"]
    assert reclaim["error"] is None
    assert len(reclaim["delays"]) == quick["concurrency"]  # every job the killed worker held was claimed again
    lease = quick["lease"]
    assert all(lease * 0.5 <= d <= lease + 0.5 + 5.0 for d in reclaim["delays"]), reclaim["delays"]
    assert result.passed is not None
    assert len(lines) == quick["trials"] * 2 + quick["stop_trials"] + quick["reclaim_trials"]

    with psycopg.connect(jobs.ADMIN_URL, autocommit=True) as conn:  # the scratch database is gone
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"lameduck_bench_jobs_{os.getpid()}_%",)
        ).fetchall()
    assert left == []

    out = tmp_path / "BENCH.md"
    report.write([result], out, report.machine(), command="pytest", mode="smoke", seconds=1.0)
    text = out.read_text(encoding="utf-8")
    assert "| lameduck work |" in text
    assert "| bare SQL loop |" in text
    assert "| procrastinate | not run (quick mode) |" in text
    assert "| stop run |" in text
    assert _fingerprint(BENCHMARKS_MD) == before
