"""The contract suite's postgres case: the ``test`` database on 127.0.0.1:5432, the default table.

Tests use unique queue names, so they share the table with each other (and with anything else using it);
cleanup deletes only their rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import psycopg

from lameduck.workers.broker import Broker
from lameduck.workers.postgres import PostgresBroker
from tests.contract.base import Backend

URL = "postgresql://postgres@127.0.0.1:5432/test"


def _make(_tmp: Path) -> Broker:
    return PostgresBroker(URL)


async def _cleanup(broker: Broker, queues: Sequence[str]) -> None:
    assert isinstance(broker, PostgresBroker)
    async with await psycopg.AsyncConnection.connect(URL, autocommit=True) as conn:
        await conn.execute(f"DELETE FROM {broker.table} WHERE queue = ANY(%s)", [list(queues)])


BACKENDS: list[Backend] = [Backend("postgres", make=_make, cleanup=_cleanup, lease=0.5)]
