"""The app the PID 1 acceptance tests serve in a PID namespace (``unshare --fork --pid --mount-proc``). Plain ASGI.

Routes: ``/pid`` this process's PID (in the namespace); ``/orphans?n=N`` starts N orphans (``sleep 0.1`` behind a
shell that exits at once, so they are re-parented to PID 1 and become zombies when they exit unless PID 1 reaps
them) and returns their PIDs; ``/states?pids=A,B`` each PID's state letter from ``/proc/PID/stat`` (``-`` once
reaped); ``/zombies`` how many zombies the namespace holds (with --mount-proc, /proc is the namespace's);
``/slow?s=N`` prints ``slow start`` and answers 200 after N s; ``/readline`` a line read from stdin (a terminal, in
the tests that give the namespace one), without its newline; ``/signal?n=N`` sends signal N to this process and
answers once it runs again (``sent``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from typing import Any
from urllib.parse import parse_qs


def _state(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return "-"
    return stat.rpartition(")")[2].split()[0]  # after "PID (comm)": comm may hold spaces and parentheses


def _zombies() -> int:
    return sum(1 for pid in os.listdir("/proc") if pid.isdigit() and _state(pid) == "Z")


def _orphans(n: int) -> str:
    # The shell is our child (reaped by subprocess.run); each `sleep` outlives it and is re-parented to PID 1.
    script = f"for i in $(seq {n}); do sleep 0.1 & echo $!; done; exit 0"
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, timeout=10)
    return ",".join(done.stdout.split())


async def _text(send: Any, status: int, body: str) -> None:
    data = body.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
    path = scope["path"]
    if path == "/pid":
        await _text(send, 200, str(os.getpid()))
    elif path == "/orphans":
        await _text(send, 200, await asyncio.to_thread(_orphans, int(query.get("n", "1"))))
    elif path == "/states":
        await _text(send, 200, ",".join(_state(pid) for pid in query.get("pids", "").split(",") if pid))
    elif path == "/zombies":
        await _text(send, 200, str(_zombies()))
    elif path == "/readline":
        line = await asyncio.to_thread(sys.stdin.readline)
        await _text(send, 200, line.rstrip("\n"))
    elif path == "/signal":
        os.kill(os.getpid(), signal.Signals(int(query["n"])))
        await _text(send, 200, "sent")
    elif path == "/slow":
        print("slow start", flush=True)
        await asyncio.sleep(float(query.get("s", "1")))
        await _text(send, 200, "slow done")
    else:
        await _text(send, 404, "not found")
