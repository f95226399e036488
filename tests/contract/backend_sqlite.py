"""The contract suite's sqlite case: one database file per test in its scratch directory, as processes share it."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from lameduck.workers.broker import Broker
from lameduck.workers.sqlite import SQLiteBroker
from tests.contract.base import Backend


def _make(tmp: Path) -> Broker:
    return SQLiteBroker(f"sqlite:///{tmp / 'jobs.sqlite3'}")


async def _cleanup(broker: Broker, queues: Sequence[str]) -> None:
    assert isinstance(broker, SQLiteBroker)
    conn = sqlite3.connect(broker.path, timeout=5)
    try:
        with conn:
            conn.executemany(f"DELETE FROM {broker.table} WHERE queue = ?", [(q,) for q in queues])
    finally:
        conn.close()


# wait() polls the file (no cross-process notification), so only its timeout is part of the contract.
BACKENDS: list[Backend] = [Backend("sqlite", make=_make, cleanup=_cleanup, lease=0.5, notifies=False)]
