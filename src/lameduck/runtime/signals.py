"""Termination signals become triggers; nothing else happens in a handler.

The handler is a plain ``signal.signal`` handler: it records when the signal arrived (``time.monotonic()``) and
schedules the trigger on the loop with ``call_soon_threadsafe``. It never blocks. Python runs it between
bytecodes even while application code blocks the event loop, so the shutdown budget is measured from the moment
the signal arrived, not from when the loop got round to it (``loop.add_signal_handler`` would run it only then).
Previous handlers are restored on exit, which matters to tests and to embedders.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

#: SIGTERM: Kubernetes, Docker, systemd. SIGINT: Ctrl-C. Both start the same sequence; a second one forces.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

OnSignal = Callable[[str, float], None]


def install(
    loop: asyncio.AbstractEventLoop, on_signal: OnSignal, *, chain: bool = False
) -> tuple[Callable[[], None], dict[int, Any]]:
    """Route SIGTERM/SIGINT to ``on_signal(name, arrived_at)`` on ``loop``.

    Returns a function that restores the previous handlers, and those handlers. With ``chain`` (``lameduck.wrap``
    in front of a server that owns the signals, as uvicorn does) every signal after the first also reaches the
    previous handler at once, so the server's own "force" behaviour (uvicorn: a second Ctrl-C) still works.
    """
    previous: dict[int, Any] = {int(sig): signal.getsignal(sig) for sig in STOP_SIGNALS}
    seen: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        arrived = time.monotonic()
        seen.append(signum)
        loop.call_soon_threadsafe(on_signal, signal.Signals(signum).name, arrived)
        server_handler = previous.get(signum)
        if chain and len(seen) > 1 and callable(server_handler):
            server_handler(signum, None)

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            if old is not None:
                signal.signal(sig, old)

    return restore, previous
