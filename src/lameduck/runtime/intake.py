"""The narrow Protocol a source of queued work implements (``lameduck.workers.runner.Runner`` is the one).

It mirrors ``Frontend`` for listeners: the driver calls these at the lifecycle's steps and never learns what a
broker is. Intake starts only once the service is ready, stops the instant the first signal arrives (a queue
does not need a lame-duck window: nothing routes to it), and what it accepted is drained like requests.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class Intake(Protocol):
    name: str

    async def open(self) -> None:
        """Connect and subscribe; part of startup (a failure here is a startup failure, exit 3)."""

    def begin(self) -> None:
        """The service is ready: start claiming."""

    def stop_intake(self) -> None:
        """Stop claiming now; never blocks. Jobs claimed by a call already under way are released."""

    def pending(self) -> set[asyncio.Task[Any]]:
        """Tasks the drain waits for: one per job being handled, plus the claim loop until it has stopped."""

    async def abandon(self) -> int:
        """After the deadline's cancellation: give back every job still held (its handler ignored the
        cancellation, or its release failed). Returns how many could not be given back."""

    async def close(self) -> None:
        """Stop heartbeats and close connections; the last step before exit."""

    def figures(self) -> dict[str, Any]:
        """Counts for the summary line (completed, failed, released, dead, ...)."""
