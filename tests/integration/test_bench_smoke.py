"""Smoke test for the benchmark suite (bench/): the smallest benchmarks with tiny parameters, and the report writer.

The real numbers come from ``./scripts/bench``; this only keeps the suite runnable. It never touches the
repository's BENCHMARKS.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import common, report, rollout, sigterm_exit
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
