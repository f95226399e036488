"""Benchmark 4: resident memory with N idle keep-alive connections, lameduck / bare uvicorn.

Each trial: fresh server; VmRSS once it answers (no connections), then N idle keep-alive connections (as in
``sigterm_exit``), a 1 s pause, and VmRSS again from /proc/PID/status. Trials alternate between the servers.
"""

from __future__ import annotations

import time

from bench import common
from bench.common import BARE, LAMEDUCK, BenchError, Result

NAME = "rss"
TARGET_RATIO = 1.05
SETTLE = 1.0


def measure_once(kind: str, *, connections: int, settle: float = SETTLE) -> tuple[int, int]:
    """(VmRSS KiB before any connection, VmRSS KiB with ``connections`` idle connections)."""
    with common.running(kind) as server:
        before = server.rss_kib()
        began = time.monotonic()
        socks = common.open_idle_connections(server.port, connections, timeout=common.KEEP_ALIVE_TIMEOUT - 2.0)
        try:
            time.sleep(settle)
            if time.monotonic() - began > common.KEEP_ALIVE_TIMEOUT - 0.5:
                raise BenchError("setup took too long; idle connections may have expired before the reading")
            return before, server.rss_kib()
        finally:
            common.close_all(socks)


def run(*, trials: int = 3, connections: int = 1000, log=print) -> Result:
    began = time.perf_counter()
    common.raise_nofile_limit()
    samples: dict[str, list[float]] = {LAMEDUCK: [], BARE: []}
    baseline: dict[str, list[float]] = {LAMEDUCK: [], BARE: []}
    for i in range(trials):
        order = (LAMEDUCK, BARE) if i % 2 == 0 else (BARE, LAMEDUCK)
        for kind in order:
            before, after = measure_once(kind, connections=connections)
            samples[kind].append(after / 1024)
            baseline[kind].append(before / 1024)
            log(
                f"  rss trial {i + 1}/{trials} {common.LABELS[kind]:>12}: {after / 1024:.1f} MiB "
                f"with {connections} connections ({before / 1024:.1f} MiB before)"
            )
    lameduck, bare = common.median(samples[LAMEDUCK]), common.median(samples[BARE])
    lb, bb = common.median(baseline[LAMEDUCK]), common.median(baseline[BARE])
    value = common.ratio(lameduck, bare)
    per_conn = {k: (common.median(samples[k]) - common.median(baseline[k])) * 1024 / connections for k in samples}
    result = Result(
        name=NAME,
        title=f"RSS with {connections} idle keep-alive connections",
        target=f"ratio ≤ {TARGET_RATIO}",
        unit="MiB",
        lameduck=lameduck,
        bare=bare,
        ratio=value,
        passed=value is not None and value <= TARGET_RATIO,
        lameduck_cell=f"{lameduck:.1f} MiB",
        bare_cell=f"{bare:.1f} MiB",
        samples=samples,
        notes=[
            f"{trials} trials per server, alternating; VmRSS {SETTLE:g} s after the last connection was opened",
            f"before any connection (median): lameduck {lb:.1f} MiB, bare uvicorn {bb:.1f} MiB "
            f"(ratio {lb / bb:.3f}); per idle connection: lameduck {per_conn[LAMEDUCK]:.1f} KiB, "
            f"bare uvicorn {per_conn[BARE]:.1f} KiB",
            f"before-connection samples (MiB): lameduck {[round(x, 1) for x in baseline[LAMEDUCK]]}, "
            f"bare uvicorn {[round(x, 1) for x in baseline[BARE]]}",
        ],
        commands=common.shown_commands(),
    )
    result.seconds = time.perf_counter() - began
    return result
