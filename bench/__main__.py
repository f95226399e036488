"""``python -m bench``: run the benchmarks, print a summary, write BENCHMARKS.md.

    python -m bench                       # everything (about 25 minutes), writes BENCHMARKS.md
    python -m bench --quick               # smoke mode: few trials, short runs, writes nothing by default
    python -m bench --only drain --only rss --output /tmp/b.md
    python -m bench --only rollout        # the rolling-deploy matrix against the peer servers (about 22 minutes)
    python -m bench --only jobs           # lameduck work vs procrastinate, pgqueuer, a bare SQL loop (PostgreSQL)
    python -m bench --only k8s_check --only pid1   # k8s check vs a bare YAML parse; lameduck as PID 1 (unshare)

The rollout benchmark needs the peer servers (hypercorn, gunicorn + uvicorn-worker, granian) and haproxy; the jobs
benchmark needs PostgreSQL at 127.0.0.1:5432 (BENCH_PG_ADMIN_URL overrides it) and, in full mode, procrastinate and
pgqueuer: ``./scripts/bench`` runs all of this from .venv-bench, which has them (``pip install -e '.[bench]'``).

A full run (no --quick, no --only) writes BENCHMARKS.md at the repository root; other runs write only when
--output is given, so a partial or quick run never replaces the real results.
Exit status: 0 every target met; 1 a target was missed; 2 a benchmark could not run.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common, drain, jobs, k8s_check, pid1, report, rollout, rss, sigterm_exit, throughput
from bench.common import Result

#: name -> (function, full parameters, quick parameters)
BENCHMARKS: dict[str, tuple[Callable[..., Result], dict[str, Any], dict[str, Any]]] = {
    throughput.NAME: (
        throughput.run,
        {"rounds": 5, "seconds": 8, "warmup": 2, "connections": 64, "threads": 1},
        {"rounds": 1, "seconds": 2, "warmup": 1, "connections": 64, "threads": 1},
    ),
    sigterm_exit.NAME: (sigterm_exit.run, {"trials": 9, "connections": 1000}, {"trials": 2, "connections": 200}),
    drain.NAME: (
        drain.run,
        {"trials": 5, "k": 20, "lo_ms": 500, "hi_ms": 1500},
        {"trials": 1, "k": 6, "lo_ms": 300, "hi_ms": 600},
    ),
    rss.NAME: (rss.run, {"trials": 3, "connections": 1000}, {"trials": 1, "connections": 200}),
    rollout.NAME: (
        rollout.run,
        {
            "servers": rollout.ALL_SERVERS,
            "prestops": rollout.PRESTOPS,
            "lbs": rollout.LBS,
            "seeds": (1, 2, 3),
            "rate": 500.0,
            "connections": 64,
            "settle": 4.0,
            "min_requests": rollout.TARGET_MIN_REQUESTS,
        },
        {
            "servers": (rollout.LAMEDUCK, rollout.UVICORN),
            "prestops": ("none",),
            "lbs": rollout.LBS,
            "seeds": (1,),
            "rate": 200.0,
            "connections": 32,
            "settle": 2.0,
            "min_requests": 0,
        },
    ),
    # Concurrency 10 for every system: lameduck work's default, and what an I/O-bound worker process typically
    # runs; 20,000 jobs then take 3..20 s per system, long enough that start and end are exact to well under 1 %.
    # Quick mode runs lameduck and the bare loop only (the peers live in .venv-bench, not in the test venv).
    jobs.NAME: (
        jobs.run,
        {
            "systems": jobs.ALL_SYSTEMS,
            "jobs": 20_000,
            "trials": 5,
            "concurrency": 10,
            "stop_trials": 9,
            "stop_jobs": 5_000,
            "reclaim_trials": 9,
            "lease": 2.0,
            "poll_interval": 1.0,
        },
        {
            "systems": (jobs.LAMEDUCK, jobs.BARE_SQL),
            "jobs": 2_000,
            "trials": 1,
            "concurrency": 10,
            "stop_trials": 1,
            "stop_jobs": 3_000,
            "reclaim_trials": 1,
            "lease": 2.0,
            "poll_interval": 1.0,
        },
    ),
    # ~2,000 documents: the size of `helm template` for a big umbrella chart (about 2.4 MB).
    k8s_check.NAME: (
        k8s_check.run,
        {"documents": 2000, "trials": 7, "cli_trials": 7},
        {"documents": 200, "trials": 2, "cli_trials": 2},
    ),
    pid1.NAME: (
        pid1.run,
        {"trials": 12, "zombie_trials": 3, "orphans": 200},
        {"trials": 2, "zombie_trials": 1, "orphans": 200},
    ),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="lameduck serve vs bare uvicorn: throughput, SIGTERM exit, drain exactness, RSS; rolling "
        "deploys behind HAProxy against uvicorn, hypercorn, gunicorn + UvicornWorker and granian; and lameduck work's "
        "PostgreSQL queue against procrastinate, pgqueuer and a bare SQL loop; lameduck k8s check against a bare YAML "
        "parse; lameduck serve as a PID namespace's PID 1 against --init off and a bare Python.",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(BENCHMARKS),
        metavar="NAME",
        help=f"run only NAME ({', '.join(BENCHMARKS)}); repeatable",
    )
    parser.add_argument("--quick", action="store_true", help="smoke mode: fewer trials, shorter runs")
    parser.add_argument(
        "--output", type=Path, default=None, help="write the markdown report here (default: BENCHMARKS.md on full runs)"
    )
    parser.add_argument("--no-write", action="store_true", help="print only, write no report")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.only or list(BENCHMARKS)
    mode = "quick" if args.quick else "full"
    output: Path | None = args.output
    if output is None and not args.quick and not args.only:
        output = common.REPO / "BENCHMARKS.md"
    if args.no_write:
        output = None
    limits = common.raise_nofile_limit()
    meta = report.machine()
    print(
        f"lameduck bench ({mode}): {', '.join(names)}; nproc {meta['nproc']}, Python {meta['python']}, "
        f"uvicorn {meta['uvicorn']}; pinning: {meta['pinning']}; RLIMIT_NOFILE {limits[0]}",
        flush=True,
    )
    began = time.perf_counter()
    results: list[Result] = []
    for name in names:
        fn, full, quick = BENCHMARKS[name]
        params = quick if args.quick else full
        print(f"[{name}] {params}", flush=True)
        before = common.CpuSnapshot.take()
        try:
            result = fn(**params, log=lambda line: print(line, flush=True))
        except Exception as exc:
            traceback.print_exc()
            result = Result(name=name, title=name, target="—", unit="")
            result.error = f"{type(exc).__name__}: {exc}"
        after = common.CpuSnapshot.take()
        result.foreign_cpus, result.steal_cpus = after.since(before)
        # A server the benchmark itself drives (the jobs benchmark's PostgreSQL) is not "other processes".
        if (server := result.details.get("server_cpu_seconds")) is not None:
            result.foreign_cpus = max(0.0, result.foreign_cpus - server / max(after.at - before.at, 1e-9))
        results.append(result)
        print(
            f"[{name}] {result.verdict} ({result.seconds:.0f} s; other processes used {result.foreign_cpus:.2f} CPUs, "
            f"steal {result.steal_cpus:.2f})",
            flush=True,
        )
    elapsed = time.perf_counter() - began
    meta["git_end"] = report.machine()["git"]  # the source measured, again: another commit may have landed meanwhile
    busy = [r.name for r in results if (r.foreign_cpus or 0) > common.NOISY_FOREIGN_CPUS]
    if busy:
        print(f"\nWARNING: other processes used CPU during {', '.join(busy)}; those figures are noisy")
    print()
    print(report.summary(results))
    shown_args = " ".join(sys.argv[1:] if argv is None else argv)
    command = "./scripts/bench" if not shown_args else f"python -m bench {shown_args}"
    if output is not None:
        report.write(results, output, meta, command=command, mode=mode, seconds=elapsed)
        print(f"\nwrote {output} ({elapsed:.0f} s in total)")
    else:
        print(f"\n({elapsed:.0f} s in total; no report written: pass --output PATH to write one)")
    if any(r.error is not None for r in results):
        return 2
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
