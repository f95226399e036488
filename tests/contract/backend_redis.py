"""The contract suite's redis case: ``RedisStreamsBroker`` on the Redis at ``LAMEDUCK_TEST_REDIS_URL``.

Tests use their own key prefix, so they cannot touch a real deployment's ``lameduck:`` keys on the same server.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import redis.asyncio as aioredis

from lameduck.workers.broker import Broker
from lameduck.workers.redis_streams import RedisStreamsBroker
from tests.contract.base import Backend

SERVER = os.environ.get("LAMEDUCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = "lameduck-test"
URL = f"{SERVER}{'&' if '?' in SERVER else '?'}prefix={PREFIX}"


def make(_tmp: Path) -> Broker:
    return RedisStreamsBroker(URL)


async def delete_queues(queues: Sequence[str], *, prefix: str = PREFIX) -> int:
    """Delete every key of ``queues`` (stream, delayed, leases, dead, idempotency keys); returns how many."""
    client = aioredis.from_url(SERVER)
    try:
        names = [name for queue in queues async for name in client.scan_iter(match=f"{prefix}:{{{queue}}}*")]
        return int(await client.delete(*names)) if names else 0
    finally:
        await client.aclose()


async def cleanup(_broker: Broker, queues: Sequence[str]) -> None:
    await delete_queues(queues)


BACKENDS: list[Backend] = [Backend("redis", make=make, cleanup=cleanup, lease=0.5)]
