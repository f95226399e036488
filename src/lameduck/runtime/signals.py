"""Termination signals become triggers; nothing else happens in a handler.

Handlers are installed with ``loop.add_signal_handler`` so they run as ordinary loop callbacks (never inside
an arbitrary frame) and only enqueue a trigger: they never block. Previous handlers are restored on exit,
which matters to tests and to embedders that run lameduck inside a larger program.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

#: SIGTERM: Kubernetes, Docker, systemd. SIGINT: Ctrl-C. Both start the same sequence; a second one forces.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install(loop: asyncio.AbstractEventLoop, on_signal: Callable[[str], None]) -> Callable[[], None]:
    """Route SIGTERM/SIGINT to ``on_signal(name)``; return a function that restores the previous handlers."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig.name)

    def restore() -> None:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            if handler is not None:
                signal.signal(sig, handler)

    return restore
