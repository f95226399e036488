"""``lameduck rollout``: a rolling deploy on one machine, modelled on Kubernetes, behind a real HAProxy.

The model, per replica and one replica at a time (Kubernetes' Deployment controller with ``maxSurge 0``,
``maxUnavailable 1`` — the replacement is created as soon as the old pod starts terminating):

1. the old replica's termination starts, and at once its replacement is started;
2. in parallel: endpoint removal reaches the load balancer after a random propagation delay (the Endpoints
   controller, then every kube-proxy or the ingress), and the preStop model runs (none, or ``sleep S``);
3. after preStop, SIGTERM; the grace period counts from step 1 (it includes preStop, as in Kubernetes);
   at its end, SIGKILL;
4. the step ends when the old replica is gone and HAProxy has seen the replacement pass its readiness check.

A bounded, seeded load runs through HAProxy the whole time; every request the load sent is accounted for.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import random
import shlex
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from lameduck._version import __version__
from lameduck.errors import LameduckError
from lameduck.runtime.tracking import start, together
from lameduck.verify.haproxy import HAProxy, HAProxyConfig
from lameduck.verify.load import Load, RequestKind
from lameduck.verify.samples import Sample, buckets, by_kind
from lameduck.verify.target import HOST, Target, TargetError, free_port
from lameduck.verify.view import Lane, Marker, Span, Table, Timeline, View

#: Failures are attributed to the last replica event at most this long before them.
ATTRIBUTION_WINDOW = 5.0
#: The kubelet's one-time extension when preStop used up the grace period (kubernetes/pkg/kubelet/kuberuntime).
PRESTOP_EXTENSION = 2.0
#: How often the listener watcher tries to connect to a terminating replica.
LISTENER_POLL = 0.02


@dataclass(frozen=True)
class RolloutOptions:
    command: tuple[str, ...]
    replicas: int = 3
    lb: Literal["tcp", "http"] = "tcp"
    propagation: tuple[float, float] = (0.5, 2.0)
    prestop: float | None = None  # None: no preStop hook; else a preStop ``sleep`` of this many seconds
    grace: float = 30.0
    seed: int = 1
    rate: float = 300.0
    connections: int = 32
    mix: tuple[float, float, float] = (80.0, 15.0, 5.0)  # fast / slow / post weights
    path: str = "/"
    slow_path: str | None = None
    post_path: str | None = None
    post_bytes: int = 512
    ready_path: str = "/health/ready"
    settle: float = 2.0
    startup_timeout: float = 30.0
    check_interval: float = 1.0
    request_timeout: float = 10.0
    env: dict[str, str] | None = None

    @property
    def kinds(self) -> tuple[RequestKind, ...]:
        """The request kinds that have a path; a kind without one is left out of the mix."""
        fast, slow, post = self.mix
        kinds = [RequestKind("fast", "GET", self.path, fast)]
        if self.slow_path:
            kinds.append(RequestKind("slow", "GET", self.slow_path, slow))
        if self.post_path:
            kinds.append(RequestKind("post", "POST", self.post_path, post))
        return tuple(k for k in kinds if k.weight > 0)

    @property
    def retries(self) -> int:
        """kube-proxy never retries a refused connect (the client gets the RST); an ingress does (3, redispatch)."""
        return 0 if self.lb == "tcp" else 3

    @property
    def prestop_text(self) -> str:
        return "none" if self.prestop is None else f"sleep:{self.prestop:g}"


@dataclass
class Replica:
    name: str
    target: Target
    events: dict[str, float] = field(default_factory=dict)  # marker kind -> perf_counter

    @property
    def port(self) -> int:
        return self.target.port


@dataclass
class RolloutReport:
    options: RolloutOptions
    started: str
    origin: float
    ended: float
    samples: list[Sample]
    replicas: list[Replica]
    errors: list[str]
    lb_connect_errors: int | None = None  # connects HAProxy made to replicas that failed (refused, mostly)

    @property
    def failed(self) -> list[Sample]:
        return [s for s in self.samples if not s.ok]

    @property
    def passed(self) -> bool:
        return bool(self.samples) and not self.failed and not self.errors

    def t(self, at: float | None) -> float | None:
        return None if at is None else round(at - self.origin, 4)

    def markers(self) -> list[Marker]:
        found = [
            Marker(t=round(at - self.origin, 4), kind=kind, lane=r.name, label=f"{LABELS.get(kind, kind)} {r.name}")
            for r in self.replicas
            for kind, at in r.events.items()
        ]
        return sorted(found, key=lambda m: m["t"])

    def causes(self) -> list[dict[str, Any]]:
        """Each failure next to the termination event just before it: *where* a peer fails says *why*.

        Only the steps of a termination can cause a failure (a replica that starts or comes UP cannot), so a
        failure is attributed to the last of those within ``ATTRIBUTION_WINDOW`` before it, on any replica.
        """
        events = sorted(
            (at, kind, r.name) for r in self.replicas for kind, at in r.events.items() if kind in _TERMINATION
        )
        grouped: dict[tuple[str, str], list[tuple[float, str]]] = {}
        for sample in self.failed:
            before = [(at, kind, name) for at, kind, name in events if 0 <= sample.done - at <= ATTRIBUTION_WINDOW]
            if before:
                at, kind, name = before[-1]
                grouped.setdefault((sample.lb_kind, LABELS[kind]), []).append((sample.done - at, name))
            else:
                grouped.setdefault((sample.lb_kind, "no termination event"), []).append((0.0, ""))
        return [
            {
                "kind": kind,
                "after": after,
                "count": len(found),
                "replicas": sorted({name for _, name in found if name}),
                "from_s": round(min(d for d, _ in found), 3),
                "to_s": round(max(d for d, _ in found), 3),
            }
            for (kind, after), found in sorted(grouped.items(), key=lambda item: -len(item[1]))
        ]

    def timeline(self) -> Timeline:
        end = max(1.0, round(self.ended - self.origin, 3))
        lanes = [Lane(name=r.name, spans=self._spans(r, end)) for r in self.replicas]
        return Timeline(
            title=f"rollout of {self.options.replicas} replicas, --lb {self.options.lb}, "
            f"--prestop {self.options.prestop_text}, seed {self.options.seed}",
            bucket=1.0,
            end=end,
            buckets=buckets(self.samples, self.origin, 1.0, end, coarse=True),
            lanes=lanes,
            markers=self.markers(),
        )

    def _spans(self, replica: Replica, end: float) -> list[Span]:
        ev = {k: v - self.origin for k, v in replica.events.items()}
        points: list[tuple[float, str]] = []
        if "started" in ev:
            points.append((ev["started"], "starting"))
        if "up" in ev:
            points.append((ev["up"], "serving"))
        if "removed" in ev and ("exit" not in ev or ev["removed"] < ev["exit"]):
            points.append((ev["removed"], "removed"))
        if "sigterm" in ev:
            points.append((ev["sigterm"], "terminating"))
        if "exit" in ev:
            points.append((ev["exit"], "killed" if "kill" in ev else "exited"))
        points.sort()
        spans: list[Span] = []
        for index, (at, state) in enumerate(points):
            until = points[index + 1][0] if index + 1 < len(points) else end
            # Removed while already terminating: it is still terminating.
            shown = "terminating" if state == "removed" and "sigterm" in ev and at > ev["sigterm"] else state
            if spans and spans[-1]["state"] == shown:
                spans[-1]["end"] = round(max(at, until), 4)  # one span per stretch in the same state
                continue
            spans.append(Span(state=shown, start=round(at, 4), end=round(max(at, until), 4)))
        return spans

    def to_json(self) -> dict[str, Any]:
        o = self.options
        failed = self.failed
        return {
            "tool": "lameduck rollout",
            "version": __version__,
            "started": self.started,
            "command": list(o.command),
            "options": {
                "replicas": o.replicas,
                "lb": o.lb,
                "propagation": list(o.propagation),
                "prestop": o.prestop_text,
                "grace": o.grace,
                "seed": o.seed,
                "rate": o.rate,
                "connections": o.connections,
                "mix": {k.name: {"request": k.label, "weight": k.weight} for k in o.kinds},
                "retries": o.retries,
            },
            "verdict": "PASS" if self.passed else "FAIL",
            "duration_s": round(self.ended - self.origin, 3),
            "requests": len(self.samples),
            "ok": len(self.samples) - len(failed),
            "failed": len(failed),
            "failed_by_kind": by_kind(self.samples, coarse=True),
            "failed_by_request": dict(Counter(s.label for s in failed).most_common()),
            "by_request": dict(Counter(s.label for s in self.samples).most_common()),
            "causes": self.causes(),
            "errors": self.errors,
            "lb_connect_errors": self.lb_connect_errors,
            "replicas": [
                {
                    "name": r.name,
                    "port": r.port,
                    "exit_code": r.target.exit_code if "exit" in r.events else None,
                    "killed": "kill" in r.events,
                    "events": {k: self.t(v) for k, v in sorted(r.events.items(), key=lambda kv: kv[1])},
                }
                for r in self.replicas
            ],
            "timeline": self.timeline(),
        }

    def to_view(self) -> View:
        o = self.options
        failed = self.failed
        kinds = by_kind(self.samples, coarse=True)
        if self.passed:
            headline = f"0 failed requests out of {len(self.samples):,} through {o.replicas} replacements"
        else:
            detail = ", ".join(f"{k} {v}" for k, v in kinds.items())
            headline = f"{len(failed):,} of {len(self.samples):,} requests failed ({detail})" if failed else ""
            headline = "; ".join(x for x in [headline, *self.errors] if x) or "no requests were sent"
        totals = Table(
            title="requests",
            columns=["request", "sent", "ok", "failed", "failures by kind"],
            rows=[],
        )
        for kind in o.kinds:
            mine = [s for s in self.samples if s.label == kind.name]
            bad = [s for s in mine if not s.ok]
            totals["rows"].append(
                [
                    kind.label,
                    f"{len(mine):,}",
                    f"{len(mine) - len(bad):,}",
                    f"{len(bad):,}",
                    _kinds(by_kind(bad, coarse=True)),
                ]
            )
        totals["rows"].append(
            ["all", f"{len(self.samples):,}", f"{len(self.samples) - len(failed):,}", f"{len(failed):,}", _kinds(kinds)]
        )
        replicas = Table(
            title="replicas",
            columns=["replica", "port", "up", "removed", "SIGTERM", "listener closed", "exit", "exit code"],
            rows=[
                [
                    r.name,
                    str(r.port),
                    *(_at(self.t(r.events.get(k))) for k in ("up", "removed", "sigterm", "listener-closed")),
                    _at(self.t(r.events.get("exit"))) + (" (SIGKILL)" if "kill" in r.events else ""),
                    "" if "exit" not in r.events else str(r.target.exit_code),
                ]
                for r in self.replicas
            ],
        )
        tables = [totals, replicas]
        if failed:
            tables.append(
                Table(
                    title="where the failures happened",
                    columns=["failure", "count", "after", "replicas", "delay"],
                    rows=[
                        [
                            c["kind"],
                            str(c["count"]),
                            c["after"],
                            " ".join(c["replicas"]),
                            f"+{c['from_s']:.3f} … +{c['to_s']:.3f} s",
                        ]
                        for c in self.causes()
                    ],
                )
            )
        meta = [
            ("command", shlex.join(o.command)),
            (
                "load balancer",
                f"HAProxy, --lb {o.lb} ({'kube-proxy' if o.lb == 'tcp' else 'ingress'} model), retries {o.retries}",
            ),
            ("replicas", str(o.replicas)),
            ("propagation", f"{o.propagation[0]:g}..{o.propagation[1]:g} s"),
            ("preStop", o.prestop_text),
            ("grace", f"{o.grace:g} s"),
            (
                "load",
                f"{o.rate:g} req/s on {o.connections} connections: "
                + ", ".join(f"{k.label} weight {k.weight:g}" for k in o.kinds),
            ),
            ("seed", str(o.seed)),
            (
                "HAProxy connect errors",
                "-"
                if self.lb_connect_errors is None
                else f"{self.lb_connect_errors} (connects to replicas that failed; with --lb tcp the client sees "
                "each as an EOF or reset, where kube-proxy would show a refused connect)",
            ),
            ("started", self.started),
            ("lameduck", __version__),
        ]
        return View(
            title="lameduck rollout",
            verdict="PASS" if self.passed else "FAIL",
            headline=headline,
            meta=meta,
            tables=tables,
            timelines=[self.timeline()],
        )


#: The replica events that belong to a termination (failures are attributed to these only).
_TERMINATION = frozenset({"removed", "prestop", "sigterm", "listener-closed", "kill", "exit"})
LABELS = {
    "started": "started",
    "up": "UP in HAProxy",
    "removed": "endpoint removed",
    "prestop": "preStop",
    "sigterm": "SIGTERM",
    "listener-closed": "listener closed",
    "kill": "SIGKILL",
    "exit": "exit",
}


def _at(t: float | None) -> str:
    return "" if t is None else f"{t:.2f} s"


def _kinds(kinds: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in kinds.items()) or "-"


Notify = Callable[[str, str, float], None]
#: Called about twice a second while the load runs: (seconds since start, requests so far, failed so far).
Progress = Callable[[float, int, int], None]


class Rollout:
    """One rollout: HAProxy, the replicas, the load. Everything started here is ended here, by PID."""

    def __init__(self, options: RolloutOptions, notify: Notify | None = None, progress: Progress | None = None) -> None:
        self.options = options
        self.notify = notify
        self.progress = progress
        self.rng = random.Random(f"lameduck-rollout-{options.seed}")
        self.origin = time.perf_counter()
        self.replicas: list[Replica] = []
        self.errors: list[str] = []
        self.load: Load | None = None
        self.lb_connect_errors: int | None = None
        self.workdir = tempfile.mkdtemp(prefix="lameduck-rollout-")
        port = free_port()
        self.haproxy = HAProxy(
            HAProxyConfig(
                mode=options.lb,
                port=port,
                check_path=options.ready_path,
                check_interval=options.check_interval,
                retries=options.retries,
            ),
            self.workdir,
        )
        self.lb_port = port

    def mark(self, replica: Replica, kind: str, at: float | None = None) -> float:
        at = time.perf_counter() if at is None else at
        replica.events.setdefault(kind, at)
        if self.notify is not None:
            self.notify(replica.name, kind, at - self.origin)
        return at

    async def run(self) -> RolloutReport:
        started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        o = self.options
        stop = asyncio.Event()
        load_task: asyncio.Task[None] | None = None
        ticker: asyncio.Task[None] | None = None
        try:
            await self.haproxy.start()
            first = [self.new_replica() for _ in range(o.replicas)]
            await _all(*(self.bring_up(r) for r in first))
            self.load = Load(
                HOST, self.lb_port, o.kinds, connections=o.connections, rate=o.rate, seed=o.seed,
                post_bytes=o.post_bytes, timeout=o.request_timeout,
            )  # fmt: skip
            limit = 2 * o.settle + o.replicas * (o.grace + o.startup_timeout) + 10
            load_task = start(self.load.run(stop, limit), name="lameduck.rollout.load")
            if self.progress is not None:
                ticker = start(self.tick(self.load, self.progress, stop), name="lameduck.rollout.progress")
            await asyncio.sleep(o.settle)
            for old in first:
                new = self.new_replica()
                await _all(self.terminate(old), self.bring_up(new))
            await asyncio.sleep(o.settle)
        except (LameduckError, TimeoutError, OSError) as exc:  # a replica or HAProxy failed: reported, not raised
            self.errors.append(str(exc))
        finally:
            stop.set()
            try:
                await self._stop_load(load_task, ticker)
            finally:
                ended = time.perf_counter()
                try:
                    await self._record_lb_errors()
                    await _all(*(self.retire(r) for r in self.replicas))
                finally:
                    await self.haproxy.stop()
                    shutil.rmtree(self.workdir, ignore_errors=True)
        return RolloutReport(
            options=o,
            started=started,
            origin=self.origin,
            ended=ended,
            samples=list(self.load.samples) if self.load else [],
            replicas=self.replicas,
            errors=self.errors,
            lb_connect_errors=self.lb_connect_errors,
        )

    async def _stop_load(self, load: asyncio.Task[None] | None, ticker: asyncio.Task[None] | None) -> None:
        """Let requests already sent finish (bounded), then make sure no load task is left."""
        for task in (ticker, load):
            if task is None:
                continue
            if task is load:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait({task}, timeout=2 * self.options.request_timeout + 5)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _record_lb_errors(self) -> None:
        """HAProxy's count of failed connects to replicas: with kube-proxy these would be refused connects."""
        with contextlib.suppress(LameduckError, OSError, TimeoutError):
            stats = await self.haproxy.stats()
            self.lb_connect_errors = sum(stat.connect_errors for stat in stats.values())

    async def tick(self, load: Load, progress: Progress, stop: asyncio.Event) -> None:
        failed = 0
        seen = 0
        while not stop.is_set():
            samples = load.samples
            failed += sum(1 for s in samples[seen:] if not s.ok)
            seen = len(samples)
            progress(time.perf_counter() - self.origin, seen, failed)
            await asyncio.sleep(0.5)

    async def retire(self, replica: Replica) -> None:
        """After the measurement: SIGTERM what still runs, SIGKILL what is left after a bounded wait."""
        target = replica.target
        if target.proc is not None and target.proc.returncode is None:
            target.send(signal.SIGTERM)
            await target.wait_exit(min(self.options.grace, 10.0))
        await target.stop()
        target.discard()

    def new_replica(self) -> Replica:
        replica = Replica(f"r{len(self.replicas) + 1}", Target(self.options.command, env=self.options.env))
        self.replicas.append(replica)
        return replica

    async def bring_up(self, replica: Replica) -> None:
        """Start the replica and wait until HAProxy routes to it (its readiness check passed)."""
        await replica.target.start()
        self.mark(replica, "started")
        await self.haproxy.add_server(replica.name, replica.port)
        try:
            await self.haproxy.wait_up(replica.name, self.options.startup_timeout)
        except TimeoutError as exc:
            raise TargetError(f"{exc}{replica.target.tail()}") from None
        self.mark(replica, "up")

    async def terminate(self, replica: Replica) -> None:
        """Endpoint removal after the propagation delay, in parallel with preStop → SIGTERM → grace → SIGKILL."""
        o = self.options
        began = time.perf_counter()
        delay = self.rng.uniform(*o.propagation)

        async def removal() -> None:
            await asyncio.sleep(delay)
            await self.haproxy.remove(replica.name)
            self.mark(replica, "removed")

        async def kill_path() -> None:
            if o.prestop is not None:
                self.mark(replica, "prestop")
                # The kubelet stops waiting for preStop at the grace period, sends SIGTERM, and then allows a
                # one-time 2 s extension before SIGKILL.
                await asyncio.sleep(min(o.prestop, o.grace))
            sigterm_at = time.perf_counter()
            replica.target.send(signal.SIGTERM)
            self.mark(replica, "sigterm", sigterm_at)
            kill_at = max(began + o.grace, sigterm_at + PRESTOP_EXTENSION if o.prestop is not None else 0.0)
            watcher = start(self.watch_listener(replica), name=f"lameduck.rollout.watch.{replica.name}")
            try:
                code = await replica.target.wait_exit(kill_at - time.perf_counter())
                if code is None:
                    self.mark(replica, "kill")
                    await replica.target.stop()
            finally:
                watcher.cancel()
            self.mark(replica, "exit", replica.target.exited_at)

        await _all(removal(), kill_path())

    async def watch_listener(self, replica: Replica) -> None:
        """The moment connects to the replica stop succeeding: refused, or dropped (a SYN filter) is closed."""
        while replica.target.proc is not None and replica.target.proc.returncode is None:
            try:
                async with asyncio.timeout(0.25):
                    _, writer = await asyncio.open_connection(HOST, replica.port)
                writer.close()
            except (OSError, TimeoutError):
                self.mark(replica, "listener-closed")
                return
            await asyncio.sleep(LISTENER_POLL)


async def _all(*coros: Coroutine[Any, Any, Any]) -> None:
    await together(*coros, name="lameduck.rollout.step")


async def rollout(
    options: RolloutOptions, notify: Notify | None = None, progress: Progress | None = None
) -> RolloutReport:
    """Run one rolling deploy; HAProxy missing raises ``HAProxyMissingError`` before anything starts."""
    return await Rollout(options, notify, progress).run()
