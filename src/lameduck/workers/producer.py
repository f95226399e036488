"""Putting jobs on a queue from application code: ``lameduck.enqueue`` and ``Producer``.

A broker connection belongs to the event loop that opened it, so ``enqueue`` keeps one connected broker per
(URL, loop) and reuses it; ``Producer`` is the explicit form for code that wants to own the connection.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from types import TracebackType
from typing import Any

from lameduck.workers.broker import DEFAULT_URL, Broker, open_broker

_cache: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Broker]] = weakref.WeakKeyDictionary()


def default_url() -> str:
    """``LAMEDUCK_BROKER`` if set (the same variable ``lameduck work`` reads), else the embedded SQLite file."""
    return os.environ.get("LAMEDUCK_BROKER") or DEFAULT_URL


class Producer:
    """A connection for enqueueing: ``async with Producer(url) as jobs: await jobs.enqueue("emails", {...})``."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        self.broker = open_broker(self.url)
        self._connected = False

    async def __aenter__(self) -> Producer:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        if not self._connected:
            await self.broker.connect()
            self._connected = True

    async def close(self) -> None:
        if self._connected:
            self._connected = False
            await self.broker.close()

    async def enqueue(self, queue: str, payload: Any, *, key: str | None = None, delay: float = 0.0) -> str:
        """Add a job and return its id; ``key`` makes a repeated enqueue a no-op (SQL and Redis backends)."""
        await self.connect()
        return await self.broker.enqueue(queue, payload, key=key, delay=delay)


async def enqueue(
    queue: str, payload: Any, *, key: str | None = None, delay: float = 0.0, broker: str | None = None
) -> str:
    """Add a job to ``queue`` on ``broker`` (default: ``LAMEDUCK_BROKER``, else the embedded SQLite file).

    ``payload`` must be JSON-serialisable. ``key`` is an idempotency key: enqueueing the same key on the same
    queue again returns the first job's id instead of adding a second job. ``delay`` postpones the first run.
    """
    url = broker or default_url()
    loop = asyncio.get_running_loop()
    brokers = _cache.setdefault(loop, {})
    producer = brokers.get(url)
    if producer is None:
        fresh = open_broker(url)
        await fresh.connect()
        producer = brokers.setdefault(url, fresh)
        if producer is not fresh:  # another task connected first while we awaited
            await fresh.close()
    return await producer.enqueue(queue, payload, key=key, delay=delay)
