"""``lameduck verify [options] -- COMMAND …``: prove one service's shutdown, scenario by scenario.

Exit codes: 0 every selected scenario passed; 1 at least one failed; 2 invalid usage (nothing was started);
3 the service did not start or never became ready.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lameduck.cli import options as opt
from lameduck.core.outcome import ExitCode

if TYPE_CHECKING:
    from lameduck.verify.scenarios import Options, Result

DESCRIPTION = """Start COMMAND (it must contain {port}), wait for its readiness path, then run each scenario on a
fresh instance: a bounded load, a signal at a known moment, PASS/FAIL with the figures. Exit 0 only when every
selected scenario that applies passed."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from lameduck.verify.scenarios import NAMES

    add = parser.add_argument
    add(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only this scenario (repeatable; default: all that apply): {', '.join(NAMES)}",
    )
    add(
        "--ready-path",
        type=opt.url_path,
        default="/health/ready",
        metavar="PATH",
        help="readiness path, awaited before each scenario; for a service without one use / (default %(default)s)",
    )
    add(
        "--live-path",
        type=opt.optional_url_path,
        default="/health/live",
        metavar="PATH",
        help="liveness path that must stay 2xx while draining; 'none' to skip (default %(default)s)",
    )
    add(
        "--no-probes",
        dest="probes",
        action="store_false",
        help="the service has no readiness probe: skip the readiness scenario",
    )
    add("--path", type=opt.url_path, default="/", metavar="PATH", help="a fast 2xx path for load (default /)")
    add(
        "--slow-path",
        type=opt.url_path,
        metavar="PATH",
        help="a path answering after ~1-5 s (enables in-flight and second-signal)",
    )
    add(
        "--hang-path",
        type=opt.url_path,
        metavar="PATH",
        help="a path that never answers (enables hung and second-signal)",
    )
    add(
        "--grace",
        type=opt.seconds(1, 3600),
        default=30.0,
        metavar="S",
        help="the service must exit within this many seconds of the signal (default 30, Kubernetes' default)",
    )
    add(
        "--lame-duck",
        type=opt.seconds(0, 600),
        default=0.0,
        metavar="S",
        help="the lame-duck window the service is configured with (default 0)",
    )
    add(
        "--deadline",
        type=opt.seconds(0, 3600),
        metavar="S",
        help="the service's drain deadline, seconds after the signal (lameduck: lame-duck + drain, as "
        "`lameduck budget` prints); hung must exit there (default: not checked)",
    )
    add("--signal", type=opt.signal_name, default="TERM", metavar="TERM|INT", help="signal to send (default TERM)")
    add(
        "--connections", type=opt.integer(1, 1000), default=16, metavar="N", help="busy keep-alive clients (default 16)"
    )
    add(
        "--idle-connections",
        type=opt.integer(1, 20000),
        default=200,
        metavar="N",
        help="idle keep-alive connections (default 200)",
    )
    add(
        "--readiness-limit",
        type=opt.seconds(0.01, 60),
        default=1.0,
        metavar="S",
        help="readiness must answer non-2xx within this long of the signal (default 1)",
    )
    add(
        "--idle-limit",
        type=opt.seconds(0.01, 60),
        default=1.0,
        metavar="S",
        help="with only idle connections, exit within lame-duck + this (default 1)",
    )
    add(
        "--force-limit",
        type=opt.seconds(0.01, 60),
        default=3.0,
        metavar="S",
        help="exit within this long of a second signal (default 3)",
    )
    opt.add_common(parser, startup_help="wait this long for the readiness path")


def options_from(args: argparse.Namespace, command: Sequence[str]) -> Options:
    from lameduck.verify.scenarios import Options

    return Options(
        command=tuple(command),
        ready_path=args.ready_path,
        live_path=args.live_path if args.probes else None,
        path=args.path,
        slow_path=args.slow_path,
        hang_path=args.hang_path,
        probes=args.probes,
        grace=args.grace,
        lame_duck=args.lame_duck,
        deadline=args.deadline,
        signal=args.signal if not isinstance(args.signal, str) else opt.signal_name(args.signal),
        readiness_limit=args.readiness_limit,
        idle_limit=args.idle_limit,
        force_limit=args.force_limit,
        connections=args.connections,
        idle_connections=args.idle_connections,
        startup_timeout=args.startup_timeout,
    )


def run(args: argparse.Namespace, command: Sequence[str], fail: Any) -> int:
    from rich.console import Console

    from lameduck.cli.terminal import INTERRUPTED, STYLE, finish
    from lameduck.verify.runner import inapplicable, select, verify
    from lameduck.verify.target import TargetError, check_command

    try:
        check_command(command)
        names = select(args.scenario)
    except ValueError as exc:
        fail(str(exc))
    options = options_from(args, command)
    if options.lame_duck >= options.grace:
        fail(f"--lame-duck: must be below --grace {options.grace:g} (got {options.lame_duck:g})")
    if options.deadline is not None and not options.lame_duck <= options.deadline <= options.grace:
        fail(
            f"--deadline: must be between --lame-duck {options.lame_duck:g} and --grace {options.grace:g} "
            f"(got {options.deadline:g})"
        )
    if args.scenario and (why := inapplicable(options, names)):
        fail("--scenario: " + "; ".join(why))
    console = Console(stderr=False, highlight=False)

    def on_result(result: Result) -> None:
        style = STYLE[result.verdict]
        console.print(f"[{style}]{result.verdict:4}[/] {result.name}: {result.title}", soft_wrap=True)
        for check in result.checks:
            mark = "[green]✓[/]" if check.passed else "[red]✗[/]"
            console.print(f"      {mark} {check.name}: {check.detail}", soft_wrap=True)
        if result.verdict == "N/A" and result.reason:
            console.print(f"      [dim]{result.reason}[/]", soft_wrap=True)

    status = console.status("")

    def on_start(name: str, title: str) -> None:
        status.update(f"{name}: {title} …")

    opt.raise_open_files_limit()
    try:
        with status:
            report = asyncio.run(verify(options, names, on_start=on_start, on_result=on_result))
    except KeyboardInterrupt:
        sys.stderr.write("lameduck verify: interrupted; the service was stopped\n")
        return INTERRUPTED
    except TargetError as exc:
        sys.stderr.write(f"lameduck verify: error: the service did not start: {exc}\n")
        return int(ExitCode.STARTUP_FAILED)
    finish(console, report.to_view(), report.to_json(), json_path=args.json, html_path=args.html)
    return 0 if report.passed else int(ExitCode.ABORTED)
