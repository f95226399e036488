"""``lameduck serve`` imports nothing it does not use: every module loaded costs RSS and interpreter teardown
time, both benchmarked (BENCHMARKS.md). verify/rollout and rich load only for those commands."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from lameduck.cli.main import build_parser
build_parser("serve").parse_args(["serve", "examples.hello:app"])
import lameduck.serve
heavy = sorted(m for m in sys.modules if m.split(".")[0] == "rich" or m.startswith("lameduck.verify"))
print(",".join(heavy))
"""


def test_serve_loads_neither_rich_nor_the_verify_machinery() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "", f"loaded by serve: {done.stdout.strip()}"
