"""Benchmark 5: rolling deploys behind HAProxy (``lameduck rollout``), lameduck serve against the usual ASGI servers.

Each run is one ``lameduck rollout … --json FILE -- <server command with {port}>`` subprocess: 3 replicas behind a
real HAProxy, a seeded load of fast GETs, slow GETs (``/sleep?ms=300``) and POSTs, every replica replaced once as
Kubernetes does (endpoint removal after a random 0.5..2.0 s propagation delay, in parallel with the preStop hook,
then SIGTERM, SIGKILL at the 30 s grace period). The matrix is server x preStop (none, ``sleep:5``) x load balancer
(``tcp``: kube-proxy, no retries; ``http``: an ingress, retries with redispatch) x fixed seeds.

Every server runs with its *default* shutdown settings, bound to 127.0.0.1, one worker process, no access log:
what people deploy. lameduck gets ``--lame-duck 5``, what it picks by itself under Kubernetes.

Target: lameduck with no preStop hook has 0 failed requests out of ≥ 10,000 in both LB modes for every seed.
The peers are reported, not judged: the report shows where (which termination step) and why they fail.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import common
from bench.common import APP, HOST, BenchError, Result

NAME = "rollout"
TARGET_MIN_REQUESTS = 10_000
PORT = "{port}"
SLOW_PATH = "/sleep?ms=300"
POST_PATH = "/orders"
PRESTOP_SLEEP = "sleep:5"
#: lameduck's lame-duck window: what it uses by itself under Kubernetes (longer than the 2 s propagation maximum).
LAMEDUCK_LAME_DUCK = "5"
#: SIGINT, then this long for ``lameduck rollout`` to clean up its replicas and HAProxy, before SIGKILL by PID.
CLEANUP_TIMEOUT = 40.0
#: Termination steps, in the order a replica goes through them (``removed`` may come before or after SIGTERM).
STEPS = ("removed", "sigterm", "listener-closed", "exit")


# -- the servers ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    key: str
    label: str
    #: The executable (next to this Python) or module that runs it, and the arguments after it.
    script: str
    module: str
    args: tuple[str, ...]
    #: Modules that must be importable for the server to run.
    needs: tuple[str, ...]
    #: How it shuts down by default, as read from its source and seen in these runs (rendered in BENCHMARKS.md).
    mechanism: str = ""

    def available(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.needs)

    def argv(self) -> list[str]:
        if self.key == LAMEDUCK:
            return [*common.lameduck_executable(), *self.args]
        script = Path(sys.executable).parent / self.script
        base = [str(script)] if self.script and script.exists() else [sys.executable, "-m", self.module]
        return [*base, *self.args]

    def shown(self) -> str:
        """The command as a person would type it (``{port}`` left for ``lameduck rollout`` to fill in)."""
        return " ".join([self.script or f"python -m {self.module}", *map(_quote, self.args)])


def _quote(arg: str) -> str:
    plain = arg.replace(PORT, "port")
    return arg if plain == shlex.quote(plain) else shlex.quote(arg)


LAMEDUCK = "lameduck"
UVICORN = "uvicorn"
HYPERCORN = "hypercorn"
GUNICORN = "gunicorn"
GRANIAN = "granian"

SERVERS: dict[str, Server] = {
    s.key: s
    for s in (
        Server(
            LAMEDUCK,
            "lameduck serve",
            "lameduck",
            "lameduck",
            ("serve", APP, "--host", HOST, "--port", PORT, "--log-level", "warning", "--lame-duck", LAMEDUCK_LAME_DUCK),
            ("lameduck", "uvicorn"),
            "At SIGTERM it fails its readiness probe and keeps serving for the lame-duck window (5 s, longer than "
            "the 2 s propagation maximum) with its listener open, answering with `Connection: close` so pinned "
            "keep-alive connections move to other replicas; only then does it close the listener and drain.",
        ),
        Server(
            UVICORN,
            "uvicorn",
            "",
            "uvicorn",
            (APP, "--host", HOST, "--port", PORT, "--no-access-log", "--log-level", "warning"),
            ("uvicorn",),
            "At SIGTERM it closes its listener and its idle keep-alive connections at once (in a direct probe: "
            "connects refused and an idle connection closed within 10 ms of SIGTERM), finishes in-flight requests "
            "with `Connection: close` and exits.",
        ),
        Server(
            HYPERCORN,
            "hypercorn",
            "hypercorn",
            "hypercorn",
            ("--bind", f"{HOST}:{PORT}", "--log-level", "warning", APP),
            ("hypercorn",),
            "At SIGTERM the master process sets an event that its worker process polls every 0.1 s; the worker "
            "then closes its idle keep-alive connections and stops accepting, but the master keeps its copy of the "
            "listening socket open until the worker has exited, so connects still complete in the kernel's backlog "
            "and are reset at the exit (in a direct probe with a 2 s request in flight: 7 connects made 0.02 to "
            "1.2 s after SIGTERM were all reset at the exit, 1.84 s after SIGTERM). HAProxy has already sent the "
            "request on such a connection, and `retry-on conn-failure` does not retry it. It also answers the "
            "requests in flight at SIGTERM without `Connection: close` and closes the connection right after (a "
            "direct probe), so a client that reuses the connection loses its next request.",
        ),
        Server(
            GUNICORN,
            "gunicorn + UvicornWorker",
            "gunicorn",
            "gunicorn",
            ("-k", "uvicorn_worker.UvicornWorker", "-b", f"{HOST}:{PORT}", "-w", "1", "--log-level", "warning", APP),
            ("gunicorn", "uvicorn_worker"),
            "At SIGTERM the arbiter closes the listening socket and passes SIGTERM to the worker, which stops as "
            "uvicorn does (in a direct probe: connects refused and an idle connection closed within 15 ms of "
            "SIGTERM, in-flight requests finished with `Connection: close`); `--graceful-timeout` (30 s) only "
            "bounds how long the arbiter waits for the worker.",
        ),
        Server(
            GRANIAN,
            "granian",
            "granian",
            "granian",
            ("--interface", "asgi", "--host", HOST, "--port", PORT, "--log-level", "warning", APP),
            ("granian",),
            "At SIGTERM it closes its listener and its idle keep-alive connections at once (in a direct probe: "
            "connects refused and an idle connection closed within 2 ms of SIGTERM), finishes in-flight requests "
            "and exits.",
        ),
    )
}
ALL_SERVERS = tuple(SERVERS)
PRESTOPS = ("none", PRESTOP_SLEEP)
LBS = ("tcp", "http")


def rollout_argv(
    server: Server,
    *,
    lb: str,
    prestop: str,
    seed: int,
    rate: float,
    connections: int,
    settle: float,
    replicas: int,
    json_path: Path | None,
) -> list[str]:
    argv = [*common.lameduck_executable(), "rollout"] if json_path is not None else ["lameduck", "rollout"]
    argv += ["--replicas", str(replicas)] if replicas != 3 else []
    argv += ["--lb", lb, "--prestop", prestop, "--seed", str(seed), "--rate", f"{rate:g}"]
    argv += ["--connections", str(connections), "--settle", f"{settle:g}"]
    argv += ["--slow-path", SLOW_PATH, "--post-path", POST_PATH]
    argv += ["--json", str(json_path) if json_path is not None else "FILE"]
    return [*argv, "--", *(server.argv() if json_path is not None else [server.shown()])]


# -- one run ----------------------------------------------------------------------------------------------------


@dataclass
class Run:
    server: str
    prestop: str
    lb: str
    seed: int
    returncode: int | None = None
    wall_s: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def requests(self) -> int:
        return int(self.data.get("requests", 0))

    @property
    def failed(self) -> int:
        return int(self.data.get("failed", 0))

    @property
    def ok(self) -> bool:
        return self.error is None and self.returncode == 0 and self.failed == 0

    def offsets(self) -> list[dict[str, float]]:
        """Per replaced replica: each termination step in seconds after its SIGTERM (removal can be negative)."""
        found = []
        for replica in self.data.get("replicas", []):
            events = replica.get("events", {})
            if events.get("sigterm") is None:
                continue
            term = float(events["sigterm"])
            row = {step: float(events[step]) - term for step in STEPS if events.get(step) is not None}
            row["killed"] = 1.0 if replica.get("killed") else 0.0
            found.append(row)
        return found


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc), deepest last."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (rollout cleans up its replicas and HAProxy), then SIGKILL it and whatever it left, by PID."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=CLEANUP_TIMEOUT)
    if proc.poll() is None:
        for pid in [*_children(proc.pid), proc.pid]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=common.REAP_TIMEOUT)


def run_once(
    server: Server,
    *,
    lb: str,
    prestop: str,
    seed: int,
    rate: float,
    connections: int,
    settle: float,
    replicas: int = 3,
    workdir: Path,
) -> Run:
    """One ``lameduck rollout`` subprocess, bounded in time; its JSON report is read into the ``Run``."""
    run = Run(server.key, prestop, lb, seed)
    out = workdir / f"{server.key}-{prestop.replace(':', '')}-{lb}-{seed}.json"
    argv = rollout_argv(
        server,
        lb=lb,
        prestop=prestop,
        seed=seed,
        rate=rate,
        connections=connections,
        settle=settle,
        replicas=replicas,
        json_path=out,
    )
    # The rollout's own bound (settle, each replacement's grace and startup) plus HAProxy and cleanup.
    timeout = 2 * settle + replicas * (30 + 30) + 60
    began = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            argv, cwd=common.REPO, env=common.child_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        try:
            run.returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            run.error = f"did not finish within {timeout:g} s"
        finally:
            _stop(proc)
        run.wall_s = time.perf_counter() - began
        log.seek(0)
        tail = log.read().decode(errors="replace")[-1500:]
    if run.error is None and run.returncode not in (0, 1):
        run.error = f"lameduck rollout exited {run.returncode}: {tail.strip()}"
    if out.exists():
        run.data = json.loads(out.read_text(encoding="utf-8"))
        out.unlink()
        run.data.pop("timeline", None)  # the per-second buckets: large, and not used by the report
        if run.data.get("errors") and run.error is None:
            run.error = "; ".join(run.data["errors"])
    elif run.error is None:
        run.error = f"no JSON report was written: {tail.strip()}"
    return run


# -- summaries --------------------------------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def merge_causes(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """The runs' ``causes`` added up by (failure kind, step just before): count, replicas, delay range, seeds."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        for cause in run.data.get("causes", []):
            key = (cause["kind"], cause["after"])
            into = merged.setdefault(
                key,
                {"kind": key[0], "after": key[1], "count": 0, "replicas": set(), "from_s": None, "to_s": None},
            )
            into["count"] += int(cause["count"])
            into["replicas"].update(cause.get("replicas", []))
            lo, hi = float(cause["from_s"]), float(cause["to_s"])
            into["from_s"] = lo if into["from_s"] is None else min(into["from_s"], lo)
            into["to_s"] = hi if into["to_s"] is None else max(into["to_s"], hi)
    ordered = sorted(merged.values(), key=lambda c: -c["count"])
    return [{**c, "replicas": sorted(c["replicas"])} for c in ordered]


def summarize(runs: Sequence[Run]) -> dict[str, Any]:
    """One matrix cell (server x preStop x LB) over its seeds."""
    kinds: dict[str, int] = {}
    requests_by: dict[str, int] = {}
    for run in runs:
        for kind, count in run.data.get("failed_by_kind", {}).items():
            kinds[kind] = kinds.get(kind, 0) + int(count)
        for kind, count in run.data.get("failed_by_request", {}).items():
            requests_by[kind] = requests_by.get(kind, 0) + int(count)
    offsets = [row for run in runs for row in run.offsets()]
    timing = {step: _median([row[step] for row in offsets if step in row]) for step in STEPS}
    first = runs[0]
    return {
        "server": first.server,
        "prestop": first.prestop,
        "lb": first.lb,
        "seeds": [r.seed for r in runs],
        "requests": [r.requests for r in runs],
        "failed": [r.failed for r in runs],
        "errors": [r.error for r in runs if r.error],
        "failed_by_kind": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "failed_by_request": dict(sorted(requests_by.items(), key=lambda kv: -kv[1])),
        "causes": merge_causes(runs),
        "timing": timing,
        "killed": sum(int(row["killed"]) for row in offsets),
        "replaced": len(offsets),
        "duration_s": [float(r.data.get("duration_s", 0.0)) for r in runs],
        "wall_s": [round(r.wall_s, 1) for r in runs],
    }


def _rate_check(runs: Sequence[Run], rate: float) -> str:
    """How closely the load client kept its schedule: requests ÷ (rate x load time), lowest and median."""
    shares = []
    for run in runs:
        if not run.requests:
            continue
        replicas = run.data.get("replicas", [])
        ups = [float(r["events"]["up"]) for r in replicas[: len(replicas) // 2] if r["events"].get("up") is not None]
        load_s = float(run.data.get("duration_s", 0.0)) - (max(ups) if ups else 0.0)
        if load_s > 0:
            shares.append(run.requests / (rate * load_s))
    if not shares:
        return "no run sent requests"
    return (
        f"the load client kept its schedule: requests ÷ (rate x load time) is {min(shares):.3f} at the lowest, "
        f"{statistics.median(shares):.3f} median"
    )


# -- the benchmark ----------------------------------------------------------------------------------------------


def run(
    *,
    servers: Sequence[str] = ALL_SERVERS,
    prestops: Sequence[str] = PRESTOPS,
    lbs: Sequence[str] = LBS,
    seeds: Sequence[int] = (1, 2, 3),
    rate: float = 500.0,
    connections: int = 64,
    settle: float = 5.0,
    replicas: int = 3,
    min_requests: int = TARGET_MIN_REQUESTS,
    log: Callable[[str], None] = print,
) -> Result:
    began = time.perf_counter()
    common.raise_nofile_limit()
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        raise BenchError("haproxy is not installed (./scripts/bench installs it: apt-get install haproxy)")
    if LAMEDUCK not in servers:
        raise ValueError("the rollout benchmark judges lameduck: servers must include it")
    missing = [k for k in servers if not SERVERS[k].available()]
    if missing:
        raise BenchError(
            f"not installed here: {', '.join(missing)}; ./scripts/bench runs from .venv-bench, which has them "
            "(pip install -e '.[bench]')"
        )
    runs: list[Run] = []
    total = len(seeds) * len(lbs) * len(servers) * len(prestops)
    workdir = Path(tempfile.mkdtemp(prefix="lameduck-bench-rollout-"))
    try:
        for seed in seeds:
            for lb in lbs:
                for key in servers:
                    for prestop in prestops:
                        one = run_once(
                            SERVERS[key],
                            lb=lb,
                            prestop=prestop,
                            seed=seed,
                            rate=rate,
                            connections=connections,
                            settle=settle,
                            replicas=replicas,
                            workdir=workdir,
                        )
                        runs.append(one)
                        kinds = ", ".join(f"{k} {v}" for k, v in one.data.get("failed_by_kind", {}).items())
                        log(
                            f"  rollout {len(runs):>2}/{total} seed {seed} --lb {lb:<4} {key:<9} preStop "
                            f"{prestop:<7}: {one.requests:>6,} requests, {one.failed:>4,} failed"
                            f"{f' ({kinds})' if kinds else ''} [{one.wall_s:.0f} s]"
                            f"{f' ERROR {one.error}' if one.error else ''}"
                        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    cells = []
    for key in servers:
        for prestop in prestops:
            for lb in lbs:
                mine = [r for r in runs if (r.server, r.prestop, r.lb) == (key, prestop, lb)]
                cells.append(summarize(mine))

    judged = [r for r in runs if r.server == LAMEDUCK and r.prestop == "none"]
    misses = [r for r in judged if not r.ok or r.requests < min_requests]
    errors = [r for r in runs if r.error is not None]
    lameduck_failed = sum(r.failed for r in judged)
    lameduck_requests = sum(r.requests for r in judged)
    least = min((r.requests for r in judged), default=0)
    uvicorn = [r for r in runs if r.server == UVICORN and r.prestop == "none"]
    least_text = f"of ≥ {min_requests:,} requests " if min_requests else ""
    target = (
        f"lameduck, no preStop: 0 failed {least_text}in every run ({len(lbs)} LB modes, "
        f"seeds {', '.join(map(str, seeds))})"
    )
    notes = [
        f"{len(runs)} runs: servers {', '.join(servers)} x preStop {', '.join(prestops)} x --lb {', '.join(lbs)} x "
        f"seeds {', '.join(map(str, seeds))}; {replicas} replicas, {rate:g} req/s on {connections} connections, "
        f"settle {settle:g} s, rollout defaults otherwise (grace 30 s, propagation 0.5..2.0 s, "
        "readiness check every 1 s, fall 3)",
        f"lameduck, no preStop: {lameduck_failed:,} failed of {lameduck_requests:,} requests; fewest requests in "
        f"one run {least:,}",
        _rate_check(runs, rate),
    ]
    for miss in misses:
        notes.append(
            f"MISSED: lameduck --prestop {miss.prestop} --lb {miss.lb} seed {miss.seed}: {miss.failed} failed of "
            f"{miss.requests:,} ({miss.data.get('failed_by_kind', {})}); causes {miss.data.get('causes', [])}"
            f"{f'; error {miss.error}' if miss.error else ''}"
        )
    for bad in errors:
        notes.append(f"run error: {bad.server} --prestop {bad.prestop} --lb {bad.lb} seed {bad.seed}: {bad.error}")
    example = rollout_argv(
        SERVERS[LAMEDUCK],
        lb="LB",
        prestop="PRESTOP",
        seed=0,
        rate=rate,
        connections=connections,
        settle=settle,
        replicas=replicas,
        json_path=None,
    )
    commands = {
        "rollout": shlex.join(example[: example.index("--")]).replace("--seed 0", "--seed SEED") + " -- SERVER…",
        **{f"SERVER = {SERVERS[k].label}": SERVERS[k].shown() for k in servers},
    }
    result = Result(
        name=NAME,
        title=f"Rolling deploy behind HAProxy ({replicas} replicas, lameduck rollout): failed requests",
        target=target,
        unit="failed",
        lameduck=float(lameduck_failed),
        bare=float(sum(r.failed for r in uvicorn)) if uvicorn else None,
        passed=not misses,
        lameduck_cell=f"{lameduck_failed:,} failed / {lameduck_requests:,} (no preStop, {len(judged)} runs)",
        bare_cell=(
            f"{sum(r.failed for r in uvicorn):,} failed / {sum(r.requests for r in uvicorn):,} (no preStop)"
            if uvicorn
            else "—"
        ),
        notes=notes,
        commands=commands,
        details={
            "cells": cells,
            "servers": {k: {"label": SERVERS[k].label, "mechanism": SERVERS[k].mechanism} for k in servers},
            "seeds": list(seeds),
            "min_requests": min_requests,
        },
    )
    if errors:
        result.error = f"{len(errors)} of {len(runs)} rollout runs could not run: {errors[0].error}"
    result.seconds = time.perf_counter() - began
    return result
