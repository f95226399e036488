"""Benchmark 2: SIGTERM → process exit with N idle keep-alive connections (lameduck with ``--lame-duck 0``).

Each trial: fresh server; open N connections, each after one complete ``GET /`` so it sits idle in keep-alive;
start a thread blocked in ``waitpid``; send SIGTERM; the figure is the time from the ``kill`` to the moment
``waitpid`` returns. Trials alternate between the servers. Bare uvicorn dies by re-raising SIGTERM
(return code -15); that is its exit and counts as one.
"""

from __future__ import annotations

import time

from bench import common
from bench.common import BARE, LAMEDUCK, BenchError, ExitWatch, Result

NAME = "sigterm_exit"
TARGET_MS = 50.0
LAMEDUCK_FLAGS = ("--lame-duck", "0")
#: Longest wait for the exit after SIGTERM before the trial counts as failed.
EXIT_TIMEOUT = 30.0
#: Pause between the last connection's response and SIGTERM, so every connection is idle, not between two
#: requests: lameduck gives a keep-alive connection that answered less than 50 ms ago (``WARM``) that long to
#: send its next request, which is a client mid-cycle, not an idle one. Both servers get the same pause.
IDLE_SETTLE = 0.2
#: The idle connections must still be open at SIGTERM: the whole setup stays well inside the keep-alive timeout.
SETUP_LIMIT = common.KEEP_ALIVE_TIMEOUT - 1.0
EXPECTED_RETURNCODE = {LAMEDUCK: 0, BARE: -15}


def extra_flags(kind: str) -> tuple[str, ...]:
    return LAMEDUCK_FLAGS if kind == LAMEDUCK else ()


def measure_once(kind: str, *, connections: int) -> tuple[float, int]:
    """One trial: milliseconds from SIGTERM to exit, and the return code."""
    with common.running(kind, extra=extra_flags(kind)) as server:
        began = time.monotonic()
        socks = common.open_idle_connections(server.port, connections, timeout=SETUP_LIMIT)
        try:
            if time.monotonic() - began > SETUP_LIMIT:
                raise BenchError(f"setup took longer than {SETUP_LIMIT:g} s; idle connections may have expired")
            time.sleep(IDLE_SETTLE)
            watch = ExitWatch(server.proc)
            sent = common.sigterm(server)
            if not watch.join(EXIT_TIMEOUT) or watch.exited_at is None or watch.returncode is None:
                raise BenchError(f"{kind} did not exit within {EXIT_TIMEOUT:g} s of SIGTERM")
            return (watch.exited_at - sent) * 1000, watch.returncode
        finally:
            common.close_all(socks)


def run(*, trials: int = 7, connections: int = 1000, log=print) -> Result:
    began = time.perf_counter()
    limits = common.raise_nofile_limit()
    samples: dict[str, list[float]] = {LAMEDUCK: [], BARE: []}
    codes: dict[str, set[int]] = {LAMEDUCK: set(), BARE: set()}
    for i in range(trials):
        order = (LAMEDUCK, BARE) if i % 2 == 0 else (BARE, LAMEDUCK)
        for kind in order:
            ms, code = measure_once(kind, connections=connections)
            samples[kind].append(ms)
            codes[kind].add(code)
            log(f"  sigterm_exit trial {i + 1}/{trials} {common.LABELS[kind]:>12}: {ms:.1f} ms (exit {code})")
    lameduck, bare = common.median(samples[LAMEDUCK]), common.median(samples[BARE])
    lp90, bp90 = common.p90(samples[LAMEDUCK]), common.p90(samples[BARE])
    notes = [
        f"{trials} trials per server, alternating; {connections} idle keep-alive connections; "
        f"RLIMIT_NOFILE soft/hard {limits[0]}/{limits[1]}; figure: kill() to waitpid() return",
        f"return codes: lameduck {sorted(codes[LAMEDUCK])}, bare uvicorn {sorted(codes[BARE])} "
        "(uvicorn re-raises SIGTERM: -15)",
        f"p90: lameduck {lp90:.1f} ms, bare uvicorn {bp90:.1f} ms",
    ]
    unexpected = {k: sorted(c - {EXPECTED_RETURNCODE[k]}) for k, c in codes.items() if c - {EXPECTED_RETURNCODE[k]}}
    if unexpected:
        notes.append(f"UNEXPECTED return codes: {unexpected}")
    result = Result(
        name=NAME,
        title=f"SIGTERM → exit, {connections} idle keep-alive connections (lameduck --lame-duck 0)",
        target=f"median ≤ {TARGET_MS:g} ms and ≤ bare",
        unit="ms",
        lameduck=lameduck,
        bare=bare,
        ratio=common.ratio(lameduck, bare),
        passed=lameduck <= TARGET_MS and lameduck <= bare and not unexpected.get(LAMEDUCK),
        lameduck_cell=f"{lameduck:.1f} ms (p90 {lp90:.1f})",
        bare_cell=f"{bare:.1f} ms (p90 {bp90:.1f})",
        samples=samples,
        notes=notes,
        commands=common.shown_commands(LAMEDUCK_FLAGS),
    )
    result.seconds = time.perf_counter() - began
    return result
