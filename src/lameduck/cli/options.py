"""argparse value types for the verify/rollout flags: each rejects bad input in one line naming the range.

argparse turns ``ArgumentTypeError`` into ``lameduck: error: argument --flag: <message>`` and exit code 2,
before anything is started, the same contract as ``serve``'s settings table.
"""

from __future__ import annotations

import argparse
import math
import signal
from collections.abc import Callable
from pathlib import Path


def seconds(lo: float, hi: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be seconds in {lo:g}..{hi:g} (got {raw!r})")
        return value + 0.0  # -0.0 becomes 0.0

    return parse


def number(lo: float, hi: float, unit: str) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be {unit} in {lo:g}..{hi:g} (got {raw!r})")
        return value + 0.0

    return parse


def integer(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            value = lo - 1
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be a whole number in {lo}..{hi} (got {raw!r})")
        return value

    return parse


def url_path(raw: str) -> str:
    if not raw.startswith("/") or any(c.isspace() for c in raw):
        raise argparse.ArgumentTypeError(f"must be a URL path starting with / and without spaces (got {raw!r})")
    return raw


def optional_url_path(raw: str) -> str | None:
    """A path, or an empty string / ``none`` to switch the check off."""
    return None if raw.strip().lower() in ("", "none") else url_path(raw)


def signal_name(raw: str) -> signal.Signals:
    name = raw.strip().upper().removeprefix("SIG")
    if name not in ("TERM", "INT"):
        raise argparse.ArgumentTypeError(f"must be TERM or INT (got {raw!r})")
    return signal.Signals[f"SIG{name}"]


def output_file(raw: str) -> Path:
    """A file to write at the end; its folder must exist now, so a typo does not cost a whole run."""
    path = Path(raw)
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"folder {str(path.parent)!r} does not exist (for {raw!r})")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{raw!r} is a folder; give a file name")
    return path


def add_common(parser: argparse.ArgumentParser, *, startup_help: str) -> None:
    """The flags verify and rollout share: how long the service may take to start, and the report files."""
    parser.add_argument(
        "--startup-timeout", type=seconds(1, 600), default=30.0, metavar="S", help=f"{startup_help} (default 30)"
    )
    parser.add_argument("--json", type=output_file, metavar="FILE", help="write the full results as JSON")
    parser.add_argument(
        "--html", type=output_file, metavar="FILE", help="write a self-contained HTML report with the timelines"
    )


def raise_open_files_limit() -> None:
    """Hundreds of test connections need file descriptors: raise the soft limit to the hard one (best effort)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return
