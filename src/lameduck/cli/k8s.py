"""``lameduck k8s check|render|rules``: the Kubernetes configuration around a lameduck service.

Exit codes of ``check``: 0 no error-level finding; 1 at least one; 2 unusable input or flags (one line, never a
traceback). ``render`` exits 2 when the settings cannot fit, with the budget's arithmetic.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import NoReturn

DESCRIPTION = """check: find the configuration that makes shutdowns lose requests (grace period vs the drain, preStop
vs the lame-duck window, probes, shell-form commands, rollout strategy) in manifests, helm output (use -) and
Dockerfiles. render: a Deployment, Service and PodDisruptionBudget consistent with your lameduck settings.
rules: list the rules."""

#: Service names are DNS-1035 labels (start with a letter); namespaces DNS-1123 labels.
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {lo}..{hi} (got {raw!r})") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be {lo}..{hi} (got {raw!r})")
        return value

    return parse


def _seconds(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds (got {raw!r})") from None


def _dns_label(raw: str) -> str:
    if not _DNS_1035.match(raw):
        raise argparse.ArgumentTypeError(
            f"must be a DNS label: a lowercase letter, then lowercase letters, digits and '-', at most 63 (got {raw!r})"
        )
    return raw


def _namespace(raw: str) -> str:
    if not _DNS_1123.match(raw):
        raise argparse.ArgumentTypeError(f"must be lowercase letters, digits and '-', at most 63 (got {raw!r})")
    return raw


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="k8s_command", metavar="{check,render,rules}", required=True)
    check = sub.add_parser(
        "check",
        help="report shutdown-related problems in manifests and Dockerfiles",
        description="Check Kubernetes manifests (multi-document YAML or JSON; - reads stdin, e.g. helm template . | "
        "lameduck k8s check -) and Dockerfiles. Exit 1 when an error-level finding exists, 2 for unreadable input.",
    )
    check.add_argument("paths", nargs="+", metavar="PATH", help="files, directories, or - for stdin")
    check.add_argument("--format", choices=("text", "json", "sarif"), default="text", help="report format")
    check.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="RULE",
        help="skip a rule (repeatable, or comma-separated); per object: annotation lameduck/ignore: RULE,RULE",
    )
    check.add_argument("--output", metavar="FILE", default=None, help="write the report here instead of stdout")
    render = sub.add_parser(
        "render",
        help="print a Deployment + Service + PodDisruptionBudget consistent with lameduck's settings",
        description="Print manifests whose grace period, probes and preStop choice match the given settings; they "
        "pass `lameduck k8s check`.",
    )
    target = render.add_mutually_exclusive_group(required=True)
    target.add_argument("--app", metavar="MODULE:ATTR", help="the ASGI app (lameduck serve)")
    target.add_argument("--worker", metavar="MODULE:ATTR", help="a lameduck.Worker (lameduck work; no Service)")
    render.add_argument("--image", required=True, help="the container image")
    render.add_argument("--name", type=_dns_label, default="app", help="object and container name (default app)")
    render.add_argument(
        "--namespace", type=_namespace, default=None, help="metadata.namespace (default: none, kubectl's)"
    )
    render.add_argument("--replicas", type=_int_range(1, 10000), default=2, help="default 2")
    render.add_argument("--port", type=_int_range(1, 65535), default=None, help="app port (default 8000)")
    render.add_argument("--probe-port", type=_int_range(1, 65535), default=9000, help="probe port (default 9000)")
    render.add_argument("--grace", type=_seconds, default=None, help="lameduck's grace (default 30)")
    render.add_argument("--lame-duck", type=_seconds, default=None, help="default auto (5 in-cluster)")
    render.add_argument("--drain-timeout", type=_seconds, default=None, help="default: derived")
    render.add_argument("--cleanup-timeout", type=_seconds, default=None, help="default 3")
    render.add_argument(
        "--prestop-sleep",
        type=_int_range(0, 3600),
        default=0,
        help="seconds of native preStop sleep (Kubernetes 1.30+) instead of lameduck's lame-duck window (default 0)",
    )
    sub.add_parser("rules", help="list the rules check applies", description="List every rule: id, severity, why.")


def run(args: argparse.Namespace, fail: Callable[[str], NoReturn]) -> int:
    for stream in (sys.stdout, sys.stderr):  # reports use ≥ and →: never a traceback on an ASCII terminal
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    if args.k8s_command == "rules":
        return _rules()
    if args.k8s_command == "render":
        return _render(args, fail)
    return _check(args, fail)


def _rules() -> int:
    from lameduck.k8s.findings import RULES

    for rule in RULES.values():
        sys.stdout.write(f"{rule.id:<28} {rule.severity.value:<8} {rule.title}\n{'':<38}{rule.why}\n")
    return 0


def _check(args: argparse.Namespace, fail: Callable[[str], NoReturn]) -> int:
    from lameduck.errors import ManifestError
    from lameduck.k8s.check import check_paths
    from lameduck.k8s.findings import RULES
    from lameduck.k8s.report import FORMATS, summary

    ignore = [part.strip() for value in args.ignore for part in value.split(",") if part.strip()]
    unknown = [r for r in ignore if r not in RULES]
    if unknown:
        fail(f"--ignore: unknown rule {unknown[0]!r} (`lameduck k8s rules` lists them)")
    try:
        report = check_paths(args.paths, ignore=ignore, stdin=sys.stdin)
    except ManifestError as exc:
        fail(str(exc))
    output = FORMATS[args.format](report)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(output)
        except OSError as exc:
            fail(f"--output: {args.output}: {exc.strerror or exc}")
        sys.stderr.write(summary(report) + "\n")
    else:
        sys.stdout.write(output)
    return report.exit_code


def _render(args: argparse.Namespace, fail: Callable[[str], NoReturn]) -> int:
    from lameduck.config import BY_NAME
    from lameduck.errors import ConfigError
    from lameduck.k8s.render import RenderOptions, render

    target = args.app or args.worker
    try:
        BY_NAME["worker"].parse(target)
    except ValueError:
        fail(f"{'--app' if args.app else '--worker'}: must be MODULE:ATTR (got {target!r})")
    if args.worker is not None and args.port is not None:
        fail("--port: a worker has no app port (lameduck work serves only probes, on --probe-port)")
    port = 8000 if args.port is None else args.port  # equal to --probe-port: the settings' own check says so
    options = RenderOptions(
        name=args.name,
        image=args.image,
        target=target,
        worker=args.worker is not None,
        replicas=args.replicas,
        namespace=args.namespace,
        port=port,
        probe_port=args.probe_port,
        grace=args.grace,
        lame_duck=args.lame_duck,
        drain_timeout=args.drain_timeout,
        cleanup_timeout=args.cleanup_timeout,
        prestop_sleep=args.prestop_sleep,
    )
    try:
        sys.stdout.write(render(options))
    except ConfigError as exc:
        fail(str(exc))
    return 0
