"""``lameduck budget``: the shutdown timeline for a set of settings, the arithmetic the runtime follows.

It prints ``Budget.explain()`` (the runtime logs the same ``arithmetic`` line at startup, event ``budget``), the
reason for the lame-duck window, and the ``terminationGracePeriodSeconds`` a pod needs for it, preStop included.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from lameduck.config import Settings

DESCRIPTION = """Print how the grace period is split after SIGTERM, and the terminationGracePeriodSeconds a pod needs
for it; exit 2 if it cannot fit. "auto" settings resolve as they would in a pod with --kubernetes, locally with
--no-kubernetes (default: as in this shell, which has KUBERNETES_SERVICE_HOST or not)."""

#: Settings rows ``budget`` offers (the rest do not change the timeline).
SETTINGS = ("grace", "lame_duck", "drain_timeout", "cleanup_timeout")


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 0 ≤ s ≤ 3600 (got {raw!r})") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be 0 ≤ s ≤ 3600 (got {raw!r})")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubernetes",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="resolve auto settings as in a pod (lame-duck 5 s) or not (0 s)",
    )
    parser.add_argument("--work", action="store_true", help="for lameduck work (no listener: lame-duck auto is 0)")
    parser.add_argument(
        "--prestop-sleep",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="a preStop sleep before SIGTERM: counted in the pod's terminationGracePeriodSeconds",
    )
    parser.add_argument("--json", action="store_true", help="the timeline as JSON")


def run(
    args: argparse.Namespace, values: Mapping[str, Any], env: Mapping[str, str], fail: Callable[[str], NoReturn]
) -> int:
    """Raises ``ConfigError`` (the caller prints it, exit 2) when the settings cannot fit."""
    environ = dict(env)
    if args.kubernetes is True:
        environ["KUBERNETES_SERVICE_HOST"] = environ.get("KUBERNETES_SERVICE_HOST") or "in-cluster"
    elif args.kubernetes is False:
        environ.pop("KUBERNETES_SERVICE_HOST", None)
    settings = Settings.load({k: v for k, v in values.items() if k in SETTINGS}, environ, work_only=args.work)
    budget = settings.budget()
    prestop = float(args.prestop_sleep)
    pod_grace = math.ceil(prestop + settings.grace)
    double = prestop > 0 and budget.lame_duck > 0
    if args.json:
        payload = {
            "grace": budget.grace,
            "lame_duck": budget.lame_duck,
            "lame_duck_reason": settings.lame_duck_reason(),
            "drain": budget.drain,
            "drain_derived": budget.drain_derived,
            "cleanup": budget.cleanup,
            "margin": budget.margin,
            "total": budget.total,
            "prestop_sleep": prestop,
            "termination_grace_period_seconds": pod_grace,
            "timeline": [{"at": at, "what": what} for at, what in budget.timeline()],
            "arithmetic": budget.arithmetic(),
        }
        sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return 0
    out = [f"lame-duck: {settings.lame_duck_reason()}", budget.explain()]
    if prestop:
        out.append(
            f"Kubernetes: terminationGracePeriodSeconds: {pod_grace} (preStop sleep {prestop:g} + grace "
            f"{settings.grace:g}: the countdown starts before the preStop hook)"
        )
    else:
        out.append(f"Kubernetes: terminationGracePeriodSeconds: {pod_grace} (= --grace)")
    if double:
        out.append(
            f"note: the preStop sleep and the lame-duck window ({budget.lame_duck:g} s) both wait for endpoint "
            "removal; drop the preStop hook or pass --lame-duck 0"
        )
    sys.stdout.write("\n".join(out) + "\n")
    return 0
