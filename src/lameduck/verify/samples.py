"""One record per request the load sent, and the per-slice counts a timeline is drawn from.

Every request ends as exactly one :class:`Sample`: an HTTP answer (any status) or one :class:`Failure`. Times
are ``perf_counter`` values; reports subtract the run's origin.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from lameduck.verify.client import Connection, Failure, RequestFailedError
from lameduck.verify.view import Bucket


@dataclass(frozen=True, slots=True)
class Sample:
    label: str  # what was asked, e.g. "GET /slow"
    began: float  # perf_counter before connecting/sending
    done: float  # perf_counter when the answer or the failure arrived
    status: int = 0  # HTTP status, 0 when the request failed
    failure: Failure | None = None
    closes: bool = False  # the answer carried ``Connection: close``

    @property
    def answered(self) -> bool:
        return self.failure is None

    @property
    def ok(self) -> bool:
        """Answered with a success (2xx) or a redirect (3xx): what a user counts as served."""
        return self.failure is None and 200 <= self.status < 400

    @property
    def lost(self) -> bool:
        """Sent, and no answer came back: the failure graceful shutdown exists to prevent."""
        return self.failure is not None and self.failure.lost

    @property
    def kind(self) -> str:
        """ "ok", an HTTP status ("http 502") or the client failure ("reset", "eof", "refused", ...)."""
        if self.failure is not None:
            return str(self.failure)
        return "ok" if self.ok else f"http {self.status}"

    @property
    def lb_kind(self) -> str:
        """The coarse kinds a load-balanced run reports: HTTP status, reset, EOF, connect failure, timeout."""
        if self.failure in (Failure.REFUSED, Failure.CONNECT_RESET, Failure.CONNECT_TIMEOUT):
            return "connect"
        return self.kind


async def timed(
    conn: Connection,
    method: str,
    target: str,
    *,
    label: str | None = None,
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    timeout: float = 10.0,
) -> Sample:
    """Send one request on ``conn`` (connecting if needed) and record how it ended; never raises for I/O."""
    began = time.perf_counter()
    name = label or f"{method} {target}"
    try:
        # One deadline over connect + send + response: a peer that stops reading cannot stall ``drain()``.
        async with asyncio.timeout(2 * timeout + 1):
            response = await conn.request(method, target, body=body, headers=headers, timeout=timeout)
    except TimeoutError:
        conn.close()
        return Sample(name, began, time.perf_counter(), failure=Failure.TIMEOUT)
    except RequestFailedError as exc:
        conn.close()
        return Sample(name, began, time.perf_counter(), failure=exc.failure)
    except OSError:
        conn.close()
        return Sample(name, began, time.perf_counter(), failure=Failure.RESET)
    return Sample(name, began, response.done_at, status=response.status, closes=response.closes)


def buckets(
    samples: Iterable[Sample], origin: float, width: float, end: float, *, coarse: bool = False
) -> list[Bucket]:
    """Counts per slice of ``width`` seconds, by when each request ended, from ``origin`` to ``end``."""
    count = max(1, int(end / width + 0.999999))
    ok = [0] * count
    failures: list[Counter[str]] = [Counter() for _ in range(count)]
    for sample in samples:
        # The epsilon keeps a time exactly on an edge in the slice it starts (0.3 / 0.1 is 2.9999999999999996).
        index = min(count - 1, max(0, int((sample.done - origin) / width + 1e-9)))
        if sample.ok:
            ok[index] += 1
        else:
            failures[index][sample.lb_kind if coarse else sample.kind] += 1
    return [Bucket(t=round(i * width, 3), ok=ok[i], failures=dict(sorted(failures[i].items()))) for i in range(count)]


def by_kind(samples: Iterable[Sample], *, coarse: bool = False) -> dict[str, int]:
    """Failure counts by kind (successes are left out), most frequent first."""
    counts = Counter(s.lb_kind if coarse else s.kind for s in samples if not s.ok)
    return dict(counts.most_common())
