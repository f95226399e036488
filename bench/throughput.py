"""Benchmark 1: keep-alive throughput of ``GET /`` with wrk, lameduck / bare uvicorn.

Rounds alternate the order (bare first, then lameduck first, ...) so slow drift hits both servers alike; every
run gets a fresh server pinned to CPU 0, a short wrk warm-up whose numbers are discarded, then the measured
wrk run pinned to CPU 1.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time

from bench import common
from bench.common import BARE, LAMEDUCK, BenchError, Result

NAME = "throughput"
TARGET_RATIO = 0.97

#: Shown in the report when the ratio misses the target: what the last investigation found (with its commit).
ANALYSIS_WHEN_MISSED = (
    "what to look at: lameduck's only per-request cost is LameduckMiddleware.__call__. On commit 1b76b38 it cost "
    "~2.7 µs per request (ratio 0.81-0.85: StrEnum-keyed ledger dicts, a send wrapper per request, "
    "asyncio.current_task() plus a task set); commit adc7e7e cut it to one bool read and three slot increments, "
    "~130 ns over a bare pass-through wrapper (ratio 0.978 in the run that followed). A pass-through wrapper alone "
    "measured 0.983, so a miss now is most likely machine noise: compare the per-round samples"
)

_RPS = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.MULTILINE)
_SOCKET_ERRORS = re.compile(r"Socket errors:.*", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


def wrk_command(port: int, *, seconds: int, connections: int, threads: int) -> list[str]:
    url = f"http://{common.HOST}:{port}/"
    return [*common.pin(common.CLIENT_CPU), "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", url]


def run_wrk(port: int, *, seconds: int, connections: int, threads: int) -> tuple[float, str]:
    """Run wrk once; return (requests/s, problems seen in its output: socket errors, non-2xx)."""
    command = wrk_command(port, seconds=seconds, connections=connections, threads=threads)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}")
    match = _RPS.search(done.stdout)
    if match is None:
        raise BenchError(f"no Requests/sec in wrk output: {done.stdout}")
    problems = []
    if errors := _SOCKET_ERRORS.search(done.stdout):
        problems.append(errors.group(0).strip())
    if non_2xx := _NON_2XX.search(done.stdout):
        problems.append(f"non-2xx responses: {non_2xx.group(1)}")
    return float(match.group(1)), "; ".join(problems)


def measure_once(kind: str, *, seconds: int, warmup: int, connections: int, threads: int) -> tuple[float, str]:
    with common.running(kind) as server:
        if warmup > 0:
            run_wrk(server.port, seconds=warmup, connections=connections, threads=threads)
        return run_wrk(server.port, seconds=seconds, connections=connections, threads=threads)


def run(
    *, rounds: int = 3, seconds: int = 8, warmup: int = 2, connections: int = 64, threads: int = 1, log=print
) -> Result:
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not on PATH (./scripts/bench installs it with apt-get)")
    began = time.perf_counter()
    samples: dict[str, list[float]] = {LAMEDUCK: [], BARE: []}
    problems: list[str] = []
    for i in range(rounds):
        order = (BARE, LAMEDUCK) if i % 2 == 0 else (LAMEDUCK, BARE)
        for kind in order:
            rps, problem = measure_once(kind, seconds=seconds, warmup=warmup, connections=connections, threads=threads)
            samples[kind].append(rps)
            if problem:
                problems.append(f"round {i + 1} {common.LABELS[kind]}: {problem}")
            log(f"  throughput round {i + 1}/{rounds} {common.LABELS[kind]:>12}: {rps:,.0f} req/s")
    lameduck, bare = common.median(samples[LAMEDUCK]), common.median(samples[BARE])
    value = common.ratio(lameduck, bare)
    pinned = "server on CPU 0, wrk on CPU 1 (taskset)" if common.pinning_available() else "no CPU pinning"
    result = Result(
        name=NAME,
        title=f"Throughput, keep-alive GET / (wrk -t{threads} -c{connections} -d{seconds}s)",
        target=f"ratio ≥ {TARGET_RATIO}",
        unit="req/s",
        lameduck=lameduck,
        bare=bare,
        ratio=value,
        passed=value is not None and value >= TARGET_RATIO,
        lameduck_cell=f"{lameduck:,.0f} req/s",
        bare_cell=f"{bare:,.0f} req/s",
        samples=samples,
        notes=[
            f"{rounds} interleaved rounds, fresh server per run, {warmup} s wrk warm-up discarded; {pinned}; "
            "medians of Requests/sec",
            *problems,
            *([] if value is not None and value >= TARGET_RATIO else [ANALYSIS_WHEN_MISSED]),
        ],
        commands={
            **common.shown_commands(),
            "wrk": " ".join(wrk_command(0, seconds=seconds, connections=connections, threads=threads)).replace(
                ":0/", ":P/"
            ),
        },
    )
    result.seconds = time.perf_counter() - began
    return result
