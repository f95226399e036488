"""Smoke test for the benchmark suite (bench/): the smallest benchmark with tiny parameters, and the report writer.

The real numbers come from ``./scripts/bench``; this only keeps the suite runnable. It never touches the
repository's BENCHMARKS.md.
"""

from __future__ import annotations

from pathlib import Path

from bench import common, report, sigterm_exit
from bench.common import BARE, LAMEDUCK

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
