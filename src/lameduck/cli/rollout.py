"""``lameduck rollout [options] -- COMMAND …``: a rolling deploy behind HAProxy, every failed request counted.

Exit codes: 0 no request failed; 1 at least one failed (or a replacement never became ready); 2 invalid usage
or HAProxy missing (nothing was started); 3 the service did not start.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from lameduck.cli import options as opt
from lameduck.core.outcome import ExitCode

DESCRIPTION = """Start REPLICAS copies of COMMAND (it must contain {port}) behind HAProxy, run a seeded load
through it, and replace the replicas one at a time as Kubernetes would: endpoint removal after a random
propagation delay, in parallel with preStop, then SIGTERM, then SIGKILL at --grace. Every client-visible failure
is counted by kind; exit 0 only when none failed. Needs haproxy on PATH."""


def _range(raw: str) -> tuple[float, float]:
    lo_raw, sep, hi_raw = raw.partition("..")
    parse = opt.seconds(0, 60)
    try:
        lo, hi = (parse(lo_raw), parse(hi_raw)) if sep else (parse(raw), parse(raw))
    except argparse.ArgumentTypeError:
        lo, hi = -1.0, -1.0
    if lo < 0 or hi < lo:
        raise argparse.ArgumentTypeError(f"must be MIN..MAX seconds with 0 ≤ MIN ≤ MAX ≤ 60 (got {raw!r})")
    return lo, hi


def _prestop(raw: str) -> float | None:
    value = raw.strip().lower()
    if value == "none":
        return None
    if value.startswith("sleep:"):
        try:
            return opt.seconds(0, 600)(value.removeprefix("sleep:"))
        except argparse.ArgumentTypeError:
            pass
    raise argparse.ArgumentTypeError(f"must be none or sleep:S with 0 ≤ S ≤ 600 (got {raw!r})")


def _mix(raw: str) -> tuple[float, float, float]:
    parts = raw.split("/")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or any(not 0 <= v <= 1000 for v in values) or sum(values) <= 0:
        raise argparse.ArgumentTypeError(f"must be FAST/SLOW/POST weights, each 0..1000, e.g. 80/15/5 (got {raw!r})")
    return values[0], values[1], values[2]


def _lb(raw: str) -> str:
    if raw not in ("tcp", "http"):
        raise argparse.ArgumentTypeError(f"must be tcp (kube-proxy) or http (ingress) (got {raw!r})")
    return raw


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--replicas", type=opt.integer(1, 20), default=3, metavar="N", help="replicas (default 3)")
    add(
        "--lb",
        type=_lb,
        default="tcp",
        metavar="tcp|http",
        help="tcp: kube-proxy (a keep-alive connection stays pinned to its replica); http: an ingress (default tcp)",
    )
    add(
        "--propagation",
        type=_range,
        default="0.5..2.0",
        metavar="MIN..MAX",
        help="endpoint removal reaches the LB this long after termination starts, uniform (default 0.5..2.0)",
    )
    add("--prestop", type=_prestop, default="none", metavar="none|sleep:S", help="the preStop model (default none)")
    add(
        "--grace",
        type=opt.seconds(1, 3600),
        default=30.0,
        metavar="S",
        help="terminationGracePeriodSeconds: SIGKILL this long after termination starts (default 30)",
    )
    add(
        "--seed",
        type=opt.integer(0, 2**31 - 1),
        default=1,
        metavar="N",
        help="seeds the propagation delays and the request mix (default 1)",
    )
    add(
        "--rate",
        type=opt.number(1, 20000, "requests per second"),
        default=300.0,
        metavar="R",
        help="requests per second (default 300)",
    )
    add(
        "--connections",
        type=opt.integer(1, 2000),
        default=32,
        metavar="N",
        help="persistent client connections (default 32)",
    )
    add(
        "--mix",
        type=_mix,
        default="80/15/5",
        metavar="F/S/P",
        help="weights of fast GET / slow GET / POST; kinds without a path are left out (default 80/15/5)",
    )
    add("--path", type=opt.url_path, default="/", metavar="PATH", help="fast GET path (default /)")
    add("--slow-path", type=opt.url_path, metavar="PATH", help="slow GET path, e.g. /sleep?ms=300")
    add("--post-path", type=opt.url_path, metavar="PATH", help="path for non-idempotent POSTs with a body")
    add("--post-bytes", type=opt.integer(0, 1 << 20), default=512, metavar="N", help="POST body size (default 512)")
    add(
        "--ready-path",
        type=opt.url_path,
        default="/health/ready",
        metavar="PATH",
        help="HAProxy's readiness check (default /health/ready; / for a service without probes)",
    )
    add(
        "--check-interval",
        type=opt.seconds(0.1, 10),
        default=1.0,
        metavar="S",
        help="HAProxy readiness check interval (default 1; failureThreshold 3, successThreshold 1)",
    )
    add(
        "--settle",
        type=opt.seconds(0, 60),
        default=2.0,
        metavar="S",
        help="load before the first and after the last replacement (default 2)",
    )
    opt.add_common(parser, startup_help="each replica must pass its readiness check within this long")


def run(args: argparse.Namespace, command: Sequence[str], fail: Any) -> int:
    from rich.console import Console

    from lameduck.cli.terminal import INTERRUPTED, finish
    from lameduck.verify.haproxy import HAProxyMissingError, find_haproxy
    from lameduck.verify.rollout import LABELS, RolloutOptions, rollout
    from lameduck.verify.target import check_command

    try:
        check_command(command)
    except ValueError as exc:
        fail(str(exc))
    try:
        find_haproxy()
    except HAProxyMissingError as exc:
        fail(str(exc))
    options = RolloutOptions(
        command=tuple(command),
        replicas=args.replicas,
        lb=args.lb,
        propagation=args.propagation,
        prestop=args.prestop,
        grace=args.grace,
        seed=args.seed,
        rate=args.rate,
        connections=args.connections,
        mix=args.mix,
        path=args.path,
        slow_path=args.slow_path,
        post_path=args.post_path,
        post_bytes=args.post_bytes,
        ready_path=args.ready_path,
        settle=args.settle,
        startup_timeout=args.startup_timeout,
        check_interval=args.check_interval,
    )
    if not options.kinds:
        fail(
            f"--mix: {args.mix[0]:g}/{args.mix[1]:g}/{args.mix[2]:g} leaves no request to send "
            "(slow and POST requests need --slow-path and --post-path; the fast GET needs a weight above 0)"
        )
    console = Console(highlight=False)
    status = console.status("starting HAProxy and the first replicas …")

    last = [""]

    def notify(replica: str, kind: str, t: float) -> None:
        last[0] = f"{replica} {LABELS.get(kind, kind)}"
        console.print(f"[dim]t+{t:6.2f} s[/] {replica}: {LABELS.get(kind, kind)}", soft_wrap=True)

    def progress(t: float, requests: int, failed: int) -> None:
        colour = "red" if failed else "green"
        status.update(f"t+{t:5.1f} s  {requests:,} requests, [{colour}]{failed:,} failed[/]  last: {last[0]}")

    opt.raise_open_files_limit()
    try:
        with status:
            report = asyncio.run(rollout(options, notify, progress))
    except KeyboardInterrupt:
        sys.stderr.write("lameduck rollout: interrupted; the replicas and HAProxy were stopped\n")
        return INTERRUPTED
    if not report.samples and report.errors:
        sys.stderr.write(f"lameduck rollout: error: {'; '.join(report.errors)}\n")
        return int(ExitCode.STARTUP_FAILED)
    finish(console, report.to_view(), report.to_json(), json_path=args.json, html_path=args.html)
    return 0 if report.passed else int(ExitCode.ABORTED)
