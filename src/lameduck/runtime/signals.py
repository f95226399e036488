"""Termination signals become triggers; nothing else happens in a handler.

Handlers are installed with ``loop.add_signal_handler`` so they run as ordinary loop callbacks (never inside
an arbitrary frame) and only enqueue a trigger: they never block. Previous handlers are restored on exit,
which matters to tests and to embedders that run lameduck inside a larger program.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

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


def install_chained(
    loop: asyncio.AbstractEventLoop, on_signal: Callable[[str], None]
) -> tuple[Callable[[], None], dict[int, Any]]:
    """Like ``install``, but in front of a server that owns the signals with ``signal.signal`` (uvicorn).

    Returns the restore function and the server's handlers, which the caller invokes when it is time for the
    server to begin its own shutdown. Signals after the first also reach the server's handler at once, so its
    own "force" behaviour (uvicorn: second Ctrl-C) still works.
    """
    previous: dict[int, Any] = {int(sig): signal.getsignal(sig) for sig in STOP_SIGNALS}
    seen: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        seen.append(signum)
        loop.call_soon_threadsafe(on_signal, signal.Signals(signum).name)
        server_handler = previous.get(signum)
        if len(seen) > 1 and callable(server_handler):
            server_handler(signum, None)

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            if old is not None:
                signal.signal(sig, old)

    return restore, previous
