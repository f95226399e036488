"""The contract suite's rabbitmq case: ``RabbitMQBroker`` on the RabbitMQ at ``LAMEDUCK_TEST_AMQP_URL``.

Tests use unique queue names; cleanup deletes each one's three AMQP queues (QUEUE, QUEUE.delay, QUEUE.dead).
RabbitMQ requeues a dead consumer's deliveries when its connection drops, so the case has no leases
(``leases=False``), cannot tell a crash from a release (``counts_crashes=False``) and cannot deduplicate on
enqueue (``dedup=False``): see lameduck/workers/rabbitmq.py.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aio_pika

from lameduck.workers.broker import Broker
from lameduck.workers.rabbitmq import RabbitMQBroker
from tests.contract.base import Backend

URL = os.environ.get("LAMEDUCK_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def make(_tmp: Path) -> Broker:
    return RabbitMQBroker(URL)


async def delete_queues(queues: Sequence[str]) -> None:
    """Delete ``queues`` and their .delay and .dead companions (deleting a missing queue is not an error)."""
    connection = await aio_pika.connect(URL, timeout=10)
    try:
        channel = await connection.channel()
        for queue in queues:
            for name in (queue, f"{queue}.delay", f"{queue}.dead"):
                await channel.queue_delete(name)
    finally:
        await connection.close()


async def cleanup(_broker: Broker, queues: Sequence[str]) -> None:
    await delete_queues(queues)


def socket_writer(broker: RabbitMQBroker) -> asyncio.StreamWriter:
    """The stream writer under ``broker``'s AMQP connection. aio-pika exposes no socket, so this reads it from
    the suspended frame of aiormq's writer task (a test-only reach into aiormq 7's internals)."""
    connection = broker._connection
    assert connection is not None, "the broker is not connected"
    assert connection.transport is not None, "the broker's connection is closed"
    task: asyncio.Task[Any] = getattr(connection.transport.connection, "_writer_task")  # noqa: B009
    frame = getattr(task.get_coro(), "cr_frame", None)
    assert frame is not None, "aiormq's writer task is not suspended: cannot find its socket"
    writer = frame.f_locals["writer"]
    assert isinstance(writer, asyncio.StreamWriter)
    return writer


async def kill(broker: Broker) -> None:
    """Die the way a crashed process does: the socket closes without AMQP's close handshake."""
    assert isinstance(broker, RabbitMQBroker)
    socket_writer(broker).transport.abort()
    await asyncio.sleep(0)


BACKENDS: list[Backend] = [
    Backend(
        "rabbitmq",
        make=make,
        cleanup=cleanup,
        lease=0.5,
        dedup=False,
        leases=False,
        counts_crashes=False,
        counts_running=False,
        kill=kill,
    )
]
