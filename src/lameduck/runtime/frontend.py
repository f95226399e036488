"""The narrow Protocol a server engine adapter implements (``lameduck.servers.uvicorn`` is the first)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class Frontend(Protocol):
    """One listener and its connections, as the driver needs to see them."""

    name: str

    async def start(self) -> None:
        """Begin accepting on the already-bound listener."""

    def addresses(self) -> list[str]:
        """``host:port`` of every listening socket, for the ``listening`` event."""

    def begin_lame_duck(self) -> None:
        """The window begins: remember which connections exist, so that at its end the idle ones among them
        close at once while connections opened since get a moment to send their first request."""

    async def close_listener(self, deadline: float) -> None:
        """Stop accepting so that new connections are refused, never reset; serve what was already queued.

        ``deadline`` (loop time) bounds the wait for the kernel's accept queue to empty.
        """

    def close_idle(self) -> int:
        """Close connections with no request in flight; the others close after their response. Returns the
        number closed now."""

    def pending(self) -> set[asyncio.Task[Any]]:
        """Everything of the engine's that the drain must wait for: one task per request being served (the
        deadline cancels through these) and any grace the frontend itself is still giving connections."""

    async def stop(self) -> None:
        """Close the listener (if still open) and every connection; the last step before exit."""
