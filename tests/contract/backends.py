"""The backends the contract suite runs against: one ``Backend`` (base.py) per implementation of ``Broker``.

Each test gets fresh queue names (a unique prefix), so backends share one database/server and tests stay
independent; ``cleanup`` removes what the test created. A backend whose service is down fails the test (CI must
never skip them: tests/conftest.py turns skips into failures under CI=true). Each backend's case lives in its
own module here.
"""

from __future__ import annotations

from collections.abc import Sequence

from lameduck.workers.broker import Broker
from lameduck.workers.memory import MemoryBroker
from tests.contract import backend_postgres, backend_rabbitmq, backend_redis, backend_sqlite
from tests.contract.base import Backend


async def _memory_cleanup(broker: Broker, queues: Sequence[str]) -> None:
    return None


_MEMORY = MemoryBroker.named("contract")
MEMORY = Backend("memory", make=lambda _tmp: MemoryBroker(_MEMORY._store), cleanup=_memory_cleanup, lease=0.3)

BACKENDS: list[Backend] = [
    MEMORY,
    *backend_sqlite.BACKENDS,
    *backend_postgres.BACKENDS,
    *backend_redis.BACKENDS,
    *backend_rabbitmq.BACKENDS,
]
