"""``lameduck jobs init`` and ``lameduck jobs status``: the job queue's schema and its counts by state.

Both take the broker from ``--broker`` / ``LAMEDUCK_BROKER`` (default: the embedded SQLite file), like
``lameduck work``. Exit codes: 0 done; 2 invalid usage; 1 the backend could not be reached (one line, no
traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from lameduck.config import BY_NAME
from lameduck.errors import BrokerError, ConfigError

DESCRIPTION = """init: create the job table (SQL), streams and groups (Redis) or queues (RabbitMQ), idempotently; safe
to run from every deploy. status: jobs per queue and state (queued, scheduled, running, done, dead)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("init", "status"), help="what to do")
    parser.add_argument(
        "--broker",
        default=None,
        metavar="URL",
        help=f"{BY_NAME['broker'].help} [env LAMEDUCK_BROKER]",
    )
    parser.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="NAME",
        help="a queue to create or report (repeatable); Redis and RabbitMQ need the names, SQL backends list all",
    )
    parser.add_argument("--json", action="store_true", help="status as JSON on stdout")


def run(args: argparse.Namespace, env: Mapping[str, str], fail: Callable[[str], NoReturn]) -> int:
    from lameduck.workers.broker import DEFAULT_URL, open_broker

    raw = args.broker if args.broker is not None else env.get("LAMEDUCK_BROKER")
    try:
        url = BY_NAME["broker"].parse(raw) or DEFAULT_URL
    except ValueError:
        fail(f"--broker: must be {BY_NAME['broker'].allowed} (got {raw!r})")
    try:
        broker = open_broker(url)
    except ConfigError as exc:
        fail(str(exc))
    try:
        counts = asyncio.run(_act(broker, args.action, args.queue))
    except BrokerError as exc:
        sys.stderr.write(f"lameduck: error: {exc}\n")
        return 1
    if args.action == "init":
        sys.stdout.write(f"lameduck: {broker.kind} job queue ready ({_redact(url)})\n")
    elif args.json:
        sys.stdout.write(json.dumps(counts, indent=2, sort_keys=True) + "\n")
    else:
        _print_status(counts, broker.kind)
    return 0


async def _act(broker: Any, action: str, queues: list[str]) -> dict[str, dict[str, int]]:
    await broker.connect()
    try:
        if queues:
            await broker.declare(queues)
        if action == "init":
            return {}
        status = await broker.status(queues or None)
        return {q: dict(c) for q, c in sorted(status.items())}
    finally:
        await broker.close()


def _print_status(counts: dict[str, dict[str, int]], kind: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from lameduck.workers.broker import STATES

    table = Table(title=f"jobs ({kind})", title_justify="left")
    table.add_column("queue")
    for state in STATES:
        table.add_column(state, justify="right")
    for queue, per in counts.items():
        table.add_row(queue, *(str(per.get(s, 0)) if s in per or s != "done" else "-" for s in STATES))
    if not counts:
        table.add_row("(no jobs)", *("" for _ in STATES))
    Console().print(table)


def _redact(url: str) -> str:
    """The URL without its password, for printing."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
