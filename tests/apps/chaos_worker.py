"""The worker tests/acceptance/test_chaos.py SIGKILLs at random moments: it records every execution it finishes.

Environment (set by the test): CHAOS_QUEUE (queue name), CHAOS_DIR (directory of the record files), CHAOS_NAME
(this process's record file is CHAOS_DIR/exec-CHAOS_NAME.txt; its pid if unset), CHAOS_SEED (seeds its sleeps),
CHAOS_SLEEP_MIN / CHAOS_SLEEP_MAX (the seconds a job sleeps, drawn uniformly).

Each execution is one ``os.write`` of ``"<payload>\\n"`` to the process's own file, opened with O_APPEND, after the
job's sleep and before the handler returns: what ``write()`` handed to the kernel survives a SIGKILL of the
process, so the lines across all files are exactly the executions that ran to the end. A job killed during its
sleep leaves no line (it did not execute); one killed between its line and its acknowledgement leaves a line and
runs again: that is a duplicate.
"""

from __future__ import annotations

import asyncio
import os
import random

import lameduck

QUEUE = os.environ.get("CHAOS_QUEUE", "chaos")
SLEEP_MIN = float(os.environ.get("CHAOS_SLEEP_MIN", "0.002"))
SLEEP_MAX = float(os.environ.get("CHAOS_SLEEP_MAX", "0.01"))
_dir = os.environ.get("CHAOS_DIR")
_name = os.environ.get("CHAOS_NAME") or str(os.getpid())
_path = os.path.join(_dir, f"exec-{_name}.txt") if _dir else os.devnull
_fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
_rand = random.Random(os.environ.get("CHAOS_SEED", "0"))

worker = lameduck.Worker(name="chaos")


# A crash counts as an attempt on the backends that can tell (SQL, Redis): 50 attempts keep a job that happens to
# be in flight at several kills from being buried.
@worker.handler(QUEUE, max_attempts=50, backoff=0.05)
async def execute(job: lameduck.Job) -> None:
    await asyncio.sleep(_rand.uniform(SLEEP_MIN, SLEEP_MAX))
    os.write(_fd, f"{job.payload}\n".encode())
