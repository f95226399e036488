"""A paced, seeded load on persistent connections: fast GETs, slow GETs and non-idempotent POSTs.

The load is open-loop in schedule (request ``n`` is due at ``start + n / rate``) and closed-loop in concurrency
(at most ``connections`` requests at once, each on its own keep-alive connection), so a slow replica shows up
as failures or latency, never as a silently lower rate. Which kind request ``n`` is comes from the seed alone,
so two runs with the same seed ask for the same things in the same order.

A connection is reused until the server says ``Connection: close`` or something fails, as a browser or an HTTP
client library would; a failed request is recorded, never retried (a retry would hide exactly what is
measured).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass, field

from lameduck.runtime.tracking import together
from lameduck.verify.client import Connection
from lameduck.verify.samples import Sample, timed


@dataclass(frozen=True)
class RequestKind:
    name: str  # "fast", "slow" or "post"
    method: str
    path: str
    weight: float

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Load:
    host: str
    port: int
    kinds: tuple[RequestKind, ...]
    connections: int = 32
    rate: float = 300.0
    seed: int = 1
    post_bytes: int = 512
    timeout: float = 10.0
    samples: list[Sample] = field(default_factory=list)
    started_at: float = 0.0

    def __post_init__(self) -> None:
        if not self.kinds:
            raise ValueError("the load needs at least one request kind")
        rng = random.Random(self.seed)
        self._pick = rng
        self._weights = [k.weight for k in self.kinds]
        # The body has its own generator, so the request order depends on the seed alone, not on the body size.
        self._body = random.Random(f"{self.seed}-body").randbytes(self.post_bytes)
        self._next = itertools.count()
        self._chosen: list[RequestKind] = []

    def kind_of(self, n: int) -> RequestKind:
        """The kind of request ``n``: drawn in order from the seeded generator, so it depends on the seed only."""
        while len(self._chosen) <= n:
            self._chosen.extend(self._pick.choices(self.kinds, weights=self._weights, k=1024))
        return self._chosen[n]

    async def run(self, stop: asyncio.Event, limit: float) -> None:
        """Send until ``stop`` is set or ``limit`` seconds have passed; requests already sent are awaited."""
        self.started_at = time.perf_counter()
        end = self.started_at + limit
        await together(*(self._worker(stop, end) for _ in range(self.connections)), name="lameduck.load")

    async def _worker(self, stop: asyncio.Event, end: float) -> None:
        conn = Connection(self.host, self.port)
        try:
            while not stop.is_set():
                n = next(self._next)
                due = self.started_at + n / self.rate
                now = time.perf_counter()
                if due >= end:
                    return
                if due > now and await _wait(stop, due - now):
                    return
                kind = self.kind_of(n)
                body = self._body if kind.method == "POST" else b""
                headers = [("idempotency-key", f"{self.seed}-{n}")] if kind.method == "POST" else None
                sample = await timed(
                    conn, kind.method, kind.path, label=kind.name, body=body, headers=headers, timeout=self.timeout
                )
                self.samples.append(sample)
        finally:
            conn.close()


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True when it was set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
