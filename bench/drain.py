"""Benchmark 3: drain exactness, the time from the last in-flight response to process exit.

Each trial: fresh server (lameduck with ``--lame-duck 0``); K requests to ``/sleep?ms=X`` with X spread evenly
from LO to HI ms, each on its own connection (asyncio streams); once every request has been written and
``SETTLE`` seconds have passed (all of them are now in flight, none finished: SETTLE < LO), SIGTERM at instant T.
The client notes when the longest request's response has been read completely (T_long_end); a thread blocked in
``waitpid`` notes the exit E. The figure is E - T_long_end. Every request must succeed with 200.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench import common
from bench.common import BARE, LAMEDUCK, BenchError, ExitWatch, Result, Server

NAME = "drain"
TARGET_MS = 50.0
LAMEDUCK_FLAGS = ("--lame-duck", "0")
#: Pause between the last request written and SIGTERM (must be shorter than the shortest sleep).
SETTLE = 0.2
EXIT_TIMEOUT = 30.0
EXPECTED_RETURNCODE = {LAMEDUCK: 0, BARE: -15}


@dataclass(frozen=True)
class Reply:
    ms: int
    status: int
    done: float  # perf_counter when the body had been read completely
    connection: str


@dataclass(frozen=True)
class Trial:
    tail_ms: float  # E - T_long_end
    total_ms: float  # E - T (SIGTERM)
    returncode: int
    close_headers: int  # responses that carried Connection: close


def extra_flags(kind: str) -> tuple[str, ...]:
    return LAMEDUCK_FLAGS if kind == LAMEDUCK else ()


def spread(k: int, lo_ms: int, hi_ms: int) -> list[int]:
    if k == 1:
        return [hi_ms]
    return [round(lo_ms + (hi_ms - lo_ms) * i / (k - 1)) for i in range(k)]


async def _request(port: int, ms: int, written: asyncio.Queue[int]) -> Reply:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(common.HOST, port), timeout=5.0)
    try:
        writer.write(common.request_bytes(f"/sleep?ms={ms}"))
        await writer.drain()
        written.put_nowait(ms)
        head = await reader.readuntil(b"\r\n\r\n")
        status, headers = common.parse_head(head[:-4])
        await reader.readexactly(int(headers.get("content-length", "0")))
        done = time.perf_counter()
        return Reply(ms, status, done, headers.get("connection", ""))
    finally:
        writer.close()


async def _trial(server: Server, sleeps: list[int]) -> tuple[list[Reply], float]:
    written: asyncio.Queue[int] = asyncio.Queue()
    tasks = [asyncio.create_task(_request(server.port, ms, written)) for ms in sleeps]
    try:
        async with asyncio.timeout(10.0):
            for _ in sleeps:
                await written.get()
        await asyncio.sleep(SETTLE)
        sent = common.sigterm(server)
        async with asyncio.timeout(max(sleeps) / 1000 + 10.0):
            replies = await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return list(replies), sent


def measure_once(kind: str, *, k: int, lo_ms: int, hi_ms: int) -> Trial:
    if lo_ms <= SETTLE * 1000:
        raise ValueError(f"the shortest sleep ({lo_ms} ms) must exceed the settle pause ({SETTLE * 1000:g} ms)")
    sleeps = spread(k, lo_ms, hi_ms)
    with common.running(kind, extra=extra_flags(kind)) as server:
        watch = ExitWatch(server.proc)
        try:
            replies, sent = asyncio.run(_trial(server, sleeps))
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            raise BenchError(f"{kind}: a drain request failed: {exc!r}") from exc
        if not watch.join(EXIT_TIMEOUT) or watch.exited_at is None or watch.returncode is None:
            raise BenchError(f"{kind} did not exit within {EXIT_TIMEOUT:g} s of SIGTERM")
        bad = [r for r in replies if r.status != 200]
        if bad:
            raise BenchError(f"{kind}: {len(bad)} of {len(replies)} drain requests did not get 200: {bad[:3]}")
        longest = max(replies, key=lambda r: r.ms)
        return Trial(
            tail_ms=(watch.exited_at - longest.done) * 1000,
            total_ms=(watch.exited_at - sent) * 1000,
            returncode=watch.returncode,
            close_headers=sum(r.connection.lower() == "close" for r in replies),
        )


def run(*, trials: int = 5, k: int = 20, lo_ms: int = 500, hi_ms: int = 1500, log=print) -> Result:
    began = time.perf_counter()
    common.raise_nofile_limit()
    runs: dict[str, list[Trial]] = {LAMEDUCK: [], BARE: []}
    for i in range(trials):
        order = (LAMEDUCK, BARE) if i % 2 == 0 else (BARE, LAMEDUCK)
        for kind in order:
            trial = measure_once(kind, k=k, lo_ms=lo_ms, hi_ms=hi_ms)
            runs[kind].append(trial)
            log(
                f"  drain trial {i + 1}/{trials} {common.LABELS[kind]:>12}: exit - last response "
                f"{trial.tail_ms:.1f} ms (SIGTERM → exit {trial.total_ms:.0f} ms, exit {trial.returncode})"
            )
    samples = {kind: [t.tail_ms for t in trials_] for kind, trials_ in runs.items()}
    totals = {kind: [t.total_ms for t in trials_] for kind, trials_ in runs.items()}
    codes = {kind: sorted({t.returncode for t in trials_}) for kind, trials_ in runs.items()}
    closes = {kind: sum(t.close_headers for t in trials_) for kind, trials_ in runs.items()}
    lameduck, bare = common.median(samples[LAMEDUCK]), common.median(samples[BARE])
    unexpected = {kind: c for kind, c in codes.items() if set(c) - {EXPECTED_RETURNCODE[kind]}}
    notes = [
        f"{trials} trials per server, alternating; K={k} requests to /sleep?ms=X, X = {lo_ms}…{hi_ms} ms evenly "
        f"spread; SIGTERM {SETTLE * 1000:g} ms after the last request was written; all responses 200",
        f"figure: E - T_long_end (exit seen by waitpid minus the client reading the {hi_ms} ms response); "
        f"max: lameduck {max(samples[LAMEDUCK]):.1f} ms, bare uvicorn {max(samples[BARE]):.1f} ms",
        f"SIGTERM → exit median: lameduck {common.median(totals[LAMEDUCK]):.0f} ms, "
        f"bare uvicorn {common.median(totals[BARE]):.0f} ms",
        f"return codes: lameduck {codes[LAMEDUCK]}, bare uvicorn {codes[BARE]}; responses with Connection: close: "
        f"lameduck {closes[LAMEDUCK]}/{trials * k}, bare uvicorn {closes[BARE]}/{trials * k}",
    ]
    if unexpected:
        notes.append(f"UNEXPECTED return codes: {unexpected}")
    result = Result(
        name=NAME,
        title=f"Drain exactness: exit - last response, {k} in-flight requests (lameduck --lame-duck 0)",
        target=f"median ≤ {TARGET_MS:g} ms",
        unit="ms",
        lameduck=lameduck,
        bare=bare,
        ratio=common.ratio(lameduck, bare),
        passed=lameduck <= TARGET_MS and LAMEDUCK not in unexpected,
        lameduck_cell=f"{lameduck:.1f} ms",
        bare_cell=f"{bare:.1f} ms",
        samples=samples,
        notes=notes,
        commands=common.shown_commands(LAMEDUCK_FLAGS),
    )
    result.seconds = time.perf_counter() - began
    return result
