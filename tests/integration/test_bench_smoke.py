"""Smoke test for the benchmark suite (bench/): the smallest benchmarks with tiny parameters, and the report writer.

The real numbers come from ``./scripts/bench``; this only keeps the suite runnable. It never touches the
repository's BENCHMARKS.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from bench import common, jobs, k8s_check, pid1, report, rollout, sigterm_exit
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


def test_k8s_check_quick_mode_measures_check_and_bare_parse_in_process_and_as_clis(tmp_path: Path) -> None:
    """`python -m bench --only k8s_check --quick`: the generated stream, both in-process figures, both CLIs (time and
    peak RSS through the launcher). The verdict is not asserted: at 200 documents the CLI is mostly start-up."""
    before = _fingerprint(BENCHMARKS_MD)
    _fn, full, quick = BENCHMARKS[k8s_check.NAME]
    assert full["documents"] >= 2000

    stream = k8s_check.stream(quick["documents"])
    assert stream == k8s_check.stream(quick["documents"])  # deterministic: a fixed seed
    assert stream.documents == stream.copies * stream.per_copy
    assert abs(stream.documents - quick["documents"]) <= stream.per_copy
    assert k8s_check.bare_parse(stream.text) == stream.documents

    lines: list[str] = []
    result = k8s_check.run(**quick, log=lines.append)
    assert result.error is None, result.notes
    details = result.details
    assert details["consistent"], result.notes  # every copy of the corpus gave the same findings
    assert details["findings"] > 0
    assert details["cli_findings"] == details["findings"]  # the CLI checked the same stream as check_text
    assert len(result.samples["check_text"]) == len(result.samples["bare parse"]) == quick["trials"]
    assert len(result.samples["check CLI"]) == len(result.samples["bare CLI"]) == quick["cli_trials"]
    assert result.ratio is not None
    assert result.ratio > 1  # the check parses too, and then runs the rules
    peak = details["peak_rss_mib"]
    # the launcher keeps this process's RSS out of the children's ru_maxrss
    assert details["rss_floor_mib"] < min(peak["bare CLI"]) < min(peak["check CLI"])
    assert [row["passed"] is None for row in details["rows"]] == [False, True, False, False]
    assert result.passed is not None
    assert len(lines) == 1 + quick["trials"] + quick["cli_trials"]

    out = tmp_path / "BENCH.md"
    report.write([result], out, report.machine(), command="pytest", mode="smoke", seconds=1.0)
    text = out.read_text(encoding="utf-8")
    assert "| measurement | lameduck | baseline | ratio | target | verdict | commands |" in text
    assert "python -m lameduck k8s check - --format json < bench.yaml" in text
    assert "bare uvicorn **" not in text  # its figures are not labelled as uvicorn's
    assert _fingerprint(BENCHMARKS_MD) == before


# In CI a skip fails the session (tests/conftest.py), as for tests/acceptance/test_pid1.py.
@pytest.mark.skipif(pid1.unshare_problem() is not None, reason="PID namespaces unavailable (unshare --pid)")
def test_pid1_quick_mode_measures_the_init_against_init_off_and_a_bare_python(tmp_path: Path) -> None:
    before = _fingerprint(BENCHMARKS_MD)
    _fn, _full, quick = BENCHMARKS[pid1.NAME]
    lines: list[str] = []
    result = pid1.run(**quick, log=lines.append)
    assert result.error is None, result.notes
    trials = result.details["trials"]
    assert [len(trials[v]) for v in (pid1.INIT, pid1.OFF, pid1.SLEEP)] == [quick["trials"]] * 3
    for trial in trials[pid1.INIT] + trials[pid1.OFF]:
        assert trial["returncode"] == 0
        assert trial["exit_ms"] > 0
        assert 0 < trial["draining_ms"] < trial["exit_ms"]
    assert all(t["forwarded_ms"] is not None for t in trials[pid1.INIT])  # the init logged its forward
    assert all(t["forwarded_ms"] is None for t in trials[pid1.OFF])
    assert result.ratio is not None
    assert 1 < result.ratio < 3  # the lean init against a bare interpreter

    reaping = result.details["reaping"]
    for run in reaping[pid1.INIT]:  # every orphan was reaped, none is left
        assert run["reaped_s"] is not None
        assert run["reaped_s"] < pid1.TARGET_REAP_S
        assert run["zombies_after"] == 0
    for run in reaping[pid1.OFF]:  # the baseline shows the measurement can fail: nobody reaps them
        assert run["exited_s"] is not None
        assert run["zombies_after"] >= quick["orphans"]
    assert result.passed is not None
    assert len(lines) == 3 * quick["trials"] + 2 * quick["zombie_trials"]

    out = tmp_path / "BENCH.md"
    report.write([result], out, report.machine(), command="pytest", mode="smoke", seconds=1.0)
    text = out.read_text(encoding="utf-8")
    assert "| measurement | lameduck | baseline | ratio | target | verdict | commands |" in text
    assert "unshare --fork --pid --mount-proc --kill-child lameduck serve bench.pid1:app" in text
    assert _fingerprint(BENCHMARKS_MD) == before
