"""The RabbitMQ backend (aio-pika, AMQP 0-9-1): the broker pushes deliveries, lameduck acknowledges them by hand.

Queues: each lameduck queue is three durable quorum queues, declared idempotently by the first enqueue,
subscribe or ``declare``:

    QUEUE         due jobs; consumed with manual acks, ``prefetch`` unacknowledged deliveries per consumer
    QUEUE.delay   jobs not yet due; each carries a per-message ``expiration`` and dead-letters into QUEUE
    QUEUE.dead    buried jobs (dead letters), kept until an operator purges them

A message's body is the payload as JSON; its ``message_id`` is the job id (stable across releases and retries);
headers carry ``x-lameduck-attempts`` (attempts that ended before this copy was published), ``x-lameduck-key``
and ``x-lameduck-error`` (the last failure).

Why these choices:

- The connection is the lease. When a worker's connection drops, RabbitMQ requeues its unacknowledged deliveries
  at once, so there is nothing to extend: ``extend`` only reports the deliveries whose channel is gone (they can
  no longer be acknowledged; the broker already gave them to someone else). Settling such a delivery is a no-op,
  as settling a lost lease is in the other backends.
- Attempts travel in a header because ``redelivered`` cannot tell a crash from a release (both are a requeue).
  ``retry`` republishes a copy with the count incremented and acks the original once the copy is confirmed. A
  crash is not counted (``counts_crashes=False`` in the contract suite): the quorum queue's ``x-delivery-limit``
  (``DELIVERY_LIMIT``) is the backstop that moves a job which keeps killing its workers to QUEUE.dead. RabbitMQ
  counts releases toward that limit too, so a job released by that many drains in a row is dead-lettered.
- Quorum queues: replicated, and the only queue type that counts deliveries. They refuse a channel-wide
  (global) prefetch, so ``prefetch`` bounds each queue's consumer: subscribed to N queues, a worker may hold up to
  N * prefetch deliveries. The runner never starts more than its concurrency; the surplus waits in the local
  buffer and goes back at ``stop_claiming``.
- Delays use per-message TTL, and RabbitMQ expires only the message at the head of a queue: a job scheduled far
  out holds up shorter delays published after it (head-of-line blocking): a retry may wait as long as the
  longest backoff ahead of it (the runner caps backoffs at 300 s by default). Backoffs of similar size are fine;
  long schedules mixed with short ones are not what this backend is for.
- No deduplication: AMQP cannot look a message up by key, so ``enqueue(key=...)`` always adds a job. The key is
  carried to the handler (``job.key``, its ``idempotency_key``), which is where exactly-once effects belong.
- ``status`` sees what a passive declare returns: the ready messages of each queue. Unacknowledged ("running")
  counts are not visible over AMQP 0-9-1 and "done" does not exist (an acked message is gone), so neither is
  reported. AMQP cannot list queues either: ``status()`` without names covers the queues this broker has used.
- ``release`` first stops this worker's intake: a requeued message goes straight back to a consumer with room,
  our own included, so releasing while still consuming would bounce the job back into our own buffer instead of
  giving it to another worker. The runner releases only once intake stops, so nothing is lost by it.
- Publishes wait for the broker's confirm; an ack is a frame without a reply in AMQP, so ``ack`` follows its
  acks with a ``basic.qos`` round trip on the same channel: a connection that died under it fails the call
  instead of passing for an acknowledgement.
- Plain ``aio_pika.connect``, not the robust connection: that one re-consumes on its own after a reconnect, which
  in the middle of a drain would take new jobs. A lost connection is reported by the next call as
  ``BrokerError``; the call after reconnects (and consumes again if intake had not stopped).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
    DeliveryMode,
)
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError, ChannelNotFoundEntity
from pamqp.exceptions import PAMQPException

from lameduck.errors import BrokerError
from lameduck.workers.job import Job

KIND = "rabbitmq"
ATTEMPTS = "x-lameduck-attempts"
KEY = "x-lameduck-key"
ERROR = "x-lameduck-error"
#: Returns of a message to its queue (crashes and releases alike) after which the quorum queue dead-letters it
#: instead of delivering it again: the first delivery plus this many.
DELIVERY_LIMIT = 20
#: Longest a broker call may take before it fails as BrokerError (the runner retries it).
CALL_TIMEOUT = 10.0
#: Closing a connection that is being thrown away must not hold up the caller for long.
DISCARD_TIMEOUT = 1.0
#: Errors stored in headers are cut to this many characters (headers share the frame size limit).
ERROR_MAX = 2000

#: What aio-pika/aiormq raise when the broker is unreachable, the connection or a channel is gone, or an
#: operation was refused. ``ChannelInvalidStateError`` is a RuntimeError, so other RuntimeErrors stay bugs.
_FAILURES: tuple[type[BaseException], ...] = (AMQPError, OSError, ChannelInvalidStateError, PAMQPException)


@dataclass(frozen=True, slots=True)
class _Subscription:
    queues: tuple[str, ...]
    prefetch: int


def _delay_queue(queue: str) -> str:
    return f"{queue}.delay"


def _dead_queue(queue: str) -> str:
    return f"{queue}.dead"


def _quorum(**more: Any) -> dict[str, Any]:
    """Quorum queue arguments. Dead-lettering at-least-once (which needs ``reject-publish``) so that a job moving
    from .delay to the queue, or to .dead at the delivery limit, is never dropped on the way."""
    if "x-dead-letter-exchange" in more:
        more |= {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
    return {"x-queue-type": "quorum", **more}


def _queue_arguments(queue: str) -> list[tuple[str, dict[str, Any]]]:
    """The three queues in the order they may be declared: each one's dead-letter target exists before it."""
    into_dead = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": _dead_queue(queue)}
    into_queue = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue}
    return [
        (_dead_queue(queue), _quorum()),
        (queue, _quorum(**into_dead, **{"x-delivery-limit": DELIVERY_LIMIT})),
        (_delay_queue(queue), _quorum(**into_queue)),
    ]


def _cause(exc: BaseException) -> str:
    """One line: aiormq's messages can span lines (a whole message repr)."""
    lines = str(exc).strip().splitlines()
    text = lines[0].strip()[:300] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _encode(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _decode(body: bytes) -> Any:
    """A message not published by lameduck may not be JSON: its handler gets the raw bytes and decides."""
    try:
        return json.loads(body)
    except ValueError:
        return body


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else None


def _message(
    job_id: str, body: bytes, *, attempts: int, key: str | None, error: str | None = None, delay: float = 0.0
) -> aio_pika.Message:
    headers: dict[str, Any] = {ATTEMPTS: attempts}
    if key is not None:
        headers[KEY] = key
    if error is not None:
        headers[ERROR] = error[:ERROR_MAX]
    return aio_pika.Message(
        body,
        headers=headers,
        content_type="application/json",
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=job_id,
        expiration=delay if delay > 0 else None,
    )


def _job(queue: str, message: AbstractIncomingMessage) -> Job:
    headers = message.headers or {}
    attempts = headers.get(ATTEMPTS)
    # A foreign message without an id still needs one that survives redelivery: the body's digest.
    job_id = message.message_id or hashlib.sha256(message.body).hexdigest()[:32]
    return Job(
        job_id,
        queue,
        _decode(message.body),
        (attempts if isinstance(attempts, int) else 0) + 1,
        _text(headers.get(KEY)),
        receipt=message,
    )


class RabbitMQBroker:
    """``Broker`` over one AMQP connection: a confirming channel for declares and publishes, and one channel
    holding this worker's consumers and their deliveries (closing it is what gives them back)."""

    kind = KIND

    def __init__(self, url: str) -> None:
        self._url = url
        parts = urlsplit(url)
        port = parts.port or (5671 if parts.scheme.lower() == "amqps" else 5672)
        self._where = f"{parts.hostname or 'localhost'}:{port}"
        self._lock = asyncio.Lock()
        self._connection: AbstractConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._consumer: AbstractChannel | None = None
        #: The aiormq channel deliveries arrive on; a receipt is live only while it is still this one.
        self._deliveries_on: aiormq.abc.AbstractChannel | None = None
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._subscription: _Subscription | None = None
        self._intake = False
        #: The consumers were cancelled: a delivery still arriving goes straight back (it cannot return to us).
        self._cancelled = False
        self._buffer: deque[Job] = deque()
        self._arrived = asyncio.Event()
        #: Why the connection or the consumer channel closed under us; the next call reports it.
        self._lost: BaseException | None = None
        self._declared: set[str] = set()
        self._known: dict[str, None] = {}

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def connect(self) -> None:
        await self._ready("connect")

    async def close(self) -> None:
        async with self._lock:
            self._intake = False
            self._subscription = None
            connection = self._forget()
            self._lost = None
            if connection is None or connection.is_closed:
                return
            try:
                async with asyncio.timeout(CALL_TIMEOUT):
                    await connection.close()
            except _FAILURES as exc:
                raise self._error("close", exc) from exc

    async def declare(self, queues: Sequence[str]) -> None:
        channel = await self._ready("declare")
        async with self._guard("declare"):
            for queue in queues:
                await self._declare(channel, queue)

    # -- producing -------------------------------------------------------------------------------------------

    async def enqueue(self, queue: str, payload: Any, *, key: str | None = None, delay: float = 0.0) -> str:
        job_id = uuid.uuid4().hex
        message = _message(job_id, _encode(payload), attempts=0, key=key, delay=delay)
        await self._publish("enqueue", queue, message)
        return job_id

    async def _publish(
        self, operation: str, queue: str, message: aio_pika.Message, *, target: str | None = None
    ) -> None:
        """Publish to ``target`` (default: the queue, or its .delay queue for a message with an expiration) and
        wait for the broker's confirm; ``mandatory`` makes a missing queue an error instead of a silent drop."""
        if target is None:
            target = queue if message.expiration is None else _delay_queue(queue)
        channel = await self._ready(operation)
        async with self._guard(operation):
            await self._declare(channel, queue)
            await channel.default_exchange.publish(message, routing_key=target, mandatory=True)

    async def _declare(self, channel: AbstractChannel, queue: str) -> None:
        if queue in self._declared:
            return
        for name, arguments in _queue_arguments(queue):
            await channel.declare_queue(name, durable=True, arguments=arguments)
        self._declared.add(queue)
        self._known[queue] = None

    # -- consuming -------------------------------------------------------------------------------------------

    async def subscribe(self, queues: Sequence[str], *, worker_id: str, lease: float, prefetch: int) -> None:
        async with self._lock:
            channel = self._consumer
            self._forget_consumer()
            if channel is not None and not channel.is_closed:  # a second subscribe: the first's deliveries go back
                with suppress(*_FAILURES):
                    await channel.close()
        self._subscription = _Subscription(tuple(queues), max(1, prefetch))
        self._intake = True
        for queue in queues:
            self._known[queue] = None
        await self._ready("subscribe")

    async def _consume(self, connection: AbstractConnection, publisher: AbstractChannel) -> None:
        subscription = self._subscription
        if subscription is None:
            return
        channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=subscription.prefetch)
        raw = await channel.get_underlay_channel()
        channel.close_callbacks.add(self._on_consumer_closed)
        raw.on_consumer_cancel_callbacks.add(self._on_cancelled_by_broker)
        self._consumer, self._deliveries_on, self._cancelled = channel, raw, False
        for name in subscription.queues:
            await self._declare(publisher, name)
            queue = await channel.get_queue(name, ensure=False)
            tag = await queue.consume(self._receiver(name, raw))
            self._consumers.append((queue, tag))

    def _receiver(
        self, queue: str, raw: aiormq.abc.AbstractChannel
    ) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        async def receive(message: AbstractIncomingMessage) -> None:
            if raw is not self._deliveries_on:
                return  # its channel is gone, and with it the delivery (the broker requeued it)
            if not self._cancelled:
                self._buffer.append(_job(queue, message))
                self._arrived.set()
                return
            # aio-pika runs this callback in a task of its own, so it can run after basic.cancel returned: the
            # consumer is gone, so the message goes back to the queue (and to other workers), never dropped.
            with suppress(*_FAILURES):
                await message.nack(requeue=True)

        return receive

    async def claim(self, limit: int) -> list[Job]:
        if not self._intake:
            return []
        await self._ready("claim")
        jobs: list[Job] = []
        while self._buffer and len(jobs) < limit:
            job = self._buffer.popleft()
            if self._live(job) is not None:
                jobs.append(job)
        return jobs

    async def wait(self, timeout: float) -> None:
        # A loss wakes the caller too: its next claim reports it, the one after consumes again.
        if (self._intake and self._buffer) or self._lost is not None:
            return
        self._arrived.clear()
        with suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._arrived.wait()

    async def stop_claiming(self) -> list[Job]:
        self._intake = False
        await self._cancel_consumers("stop_claiming")
        leftovers = [job for job in self._buffer if self._live(job) is not None]
        self._buffer.clear()
        return leftovers

    async def _cancel_consumers(self, operation: str) -> None:
        """basic.cancel each consumer. Without a live channel there is nothing to cancel: its deliveries
        already went back with it."""
        consumers, self._consumers = self._consumers, []
        if self._consumer is None or self._consumer.is_closed:
            return
        async with self._guard(operation):
            for queue, tag in consumers:
                await queue.cancel(tag)
        self._cancelled = True

    # -- settling --------------------------------------------------------------------------------------------

    def _live(self, job: Job) -> AbstractIncomingMessage | None:
        """The delivery behind ``job`` if it can still be settled: not yet settled, on the current channel."""
        message = job.receipt
        if not isinstance(message, AbstractIncomingMessage) or message.processed:
            return None
        try:
            channel = message.channel
        except ChannelInvalidStateError:
            return None
        return message if channel is self._deliveries_on else None

    async def extend(self, jobs: Sequence[Job]) -> set[str]:
        return {job.id for job in jobs if self._live(job) is None}

    async def ack(self, jobs: Sequence[Job]) -> None:
        await self._ready("ack")
        messages = [m for m in map(self._live, jobs) if m is not None]
        if not messages:
            return
        async with self._guard("ack"):
            for message in messages:
                await message.ack()
            await self._round_trip()

    async def _round_trip(self) -> None:
        """A reply on the consumer channel, which the broker sends only after the acks sent before it."""
        if self._consumer is not None and self._subscription is not None:
            await self._consumer.set_qos(prefetch_count=self._subscription.prefetch)

    async def retry(self, job: Job, delay: float, error: str) -> None:
        await self._replace(job, "retry", attempts=job.attempt, error=error, delay=max(delay, 0.0))

    async def bury(self, job: Job, error: str) -> None:
        await self._replace(job, "bury", attempts=job.attempt, error=error, to=_dead_queue(job.queue))

    async def _replace(
        self, job: Job, operation: str, *, attempts: int, error: str, delay: float = 0.0, to: str | None = None
    ) -> None:
        """Publish the job's next copy (confirmed), then ack the delivery: a failure in between leaves the
        original to run again, never neither."""
        await self._ready(operation)
        message = self._live(job)
        if message is None:
            return
        copy = _message(job.id, message.body, attempts=attempts, key=job.key, error=error, delay=delay)
        await self._publish(operation, job.queue, copy, target=to)
        async with self._guard(operation):
            await message.ack()
            await self._round_trip()

    async def release(self, jobs: Sequence[Job]) -> None:
        if self._intake:  # see the module docstring: otherwise the job bounces back to us
            self._intake = False
            await self._cancel_consumers("release")
        await self._ready("release")
        messages = [m for m in map(self._live, jobs) if m is not None]
        async with self._guard("release"):
            for message in messages:
                await message.nack(requeue=True)

    # -- status ----------------------------------------------------------------------------------------------

    async def status(self, queues: Sequence[str] | None = None) -> Mapping[str, Mapping[str, int]]:
        await self._ready("status")
        names = list(queues) if queues is not None else list(self._known)
        counts: dict[str, dict[str, int]] = {}
        async with self._guard("status"):
            for queue in names:
                per = await self._counts(queue)
                if per:
                    counts[queue] = per
        return counts

    async def _counts(self, queue: str) -> dict[str, int]:
        per: dict[str, int] = {}
        for state, name in (("queued", queue), ("scheduled", _delay_queue(queue)), ("dead", _dead_queue(queue))):
            ready = await self._ready_messages(name)
            if ready is not None:
                per[state] = ready
        return per

    async def _ready_messages(self, name: str) -> int | None:
        """Ready messages in ``name`` (None: no such queue). A passive declare of a missing queue closes its
        channel, so each runs on a channel of its own."""
        if self._connection is None:
            raise BrokerError(f"{KIND} {self._where}: status failed: the connection closed meanwhile")
        channel = await self._connection.channel(publisher_confirms=False)
        try:
            queue = await channel.declare_queue(name, passive=True)
        except ChannelNotFoundEntity:
            return None
        finally:
            if not channel.is_closed:
                await channel.close()
        return queue.declaration_result.message_count or 0

    # -- the connection --------------------------------------------------------------------------------------

    async def _ready(self, operation: str) -> AbstractChannel:
        """The publishing channel, after reporting a loss noticed since the last call, (re)connecting, and
        consuming again if intake is on and the consumer channel is gone."""
        async with self._lock:
            if self._lost is not None:
                lost, self._lost = self._lost, None
                await self._discard()
                raise BrokerError(
                    f"{KIND} {self._where}: {operation} failed: connection lost: {_cause(lost)}"
                ) from lost
            async with self._guard(operation):
                connection = self._connection
                if connection is None or connection.is_closed:
                    await self._discard()
                    connection = await self._open()
                if self._publisher is None or self._publisher.is_closed:
                    self._publisher = await connection.channel(on_return_raises=True)
                if self._consumer is not None and self._consumer.is_closed:
                    self._forget_consumer()
                if self._intake and self._subscription is not None and self._consumer is None:
                    await self._consume(connection, self._publisher)
                return self._publisher

    async def _open(self) -> AbstractConnection:
        connection = await aio_pika.connect(self._url, timeout=CALL_TIMEOUT)
        connection.close_callbacks.add(self._on_connection_closed)
        self._connection = connection
        return connection

    def _on_connection_closed(self, sender: AbstractConnection | None, exc: BaseException | None) -> None:
        if sender is not None and sender is self._connection:
            self._lose(exc or ConnectionError("connection closed"))

    def _on_consumer_closed(self, sender: AbstractChannel | None, exc: BaseException | None) -> None:
        if sender is not None and sender is self._consumer:
            self._lose(exc or ConnectionError("consumer channel closed"))

    def _on_cancelled_by_broker(self, frame: Any) -> None:
        """The broker cancels a consumer when its queue is deleted; consuming again re-declares it."""
        if self._consumer is not None and self._intake:
            self._lose(ConnectionError(f"consumer {getattr(frame, 'consumer_tag', '?')} cancelled by the broker"))

    def _lose(self, cause: BaseException) -> None:
        """The deliveries on the consumer channel are void (the broker requeued them): drop them, wake waiters."""
        if self._lost is None:
            self._lost = cause
        self._buffer.clear()
        self._arrived.set()

    def _forget_consumer(self) -> None:
        self._consumer = self._deliveries_on = None
        self._consumers = []
        self._buffer.clear()

    def _forget(self) -> AbstractConnection | None:
        """Drop every reference to the current connection first, so its close callbacks no longer count."""
        connection, self._connection = self._connection, None
        self._publisher = self._consumer = None
        self._deliveries_on = None
        self._consumers = []
        self._buffer.clear()
        self._declared.clear()
        return connection

    async def _discard(self) -> None:
        connection = self._forget()
        if connection is not None and not connection.is_closed:
            with suppress(Exception):
                async with asyncio.timeout(DISCARD_TIMEOUT):
                    await connection.close()

    @asynccontextmanager
    async def _guard(self, operation: str) -> AsyncIterator[None]:
        """Bound a broker call in time and turn its failure into one ``BrokerError``. A connection that failed
        (or may be half-dead after a timeout) is dropped so that the next call starts over."""
        connection = self._connection
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                yield
        except BrokerError:
            raise
        except _FAILURES as exc:
            if connection is self._connection:  # not if another call has reconnected meanwhile
                self._lost = None  # reported by this call
                # OSError: refused or reset, or a TimeoutError after which the connection may be half-dead.
                if connection is None or connection.is_closed or isinstance(exc, OSError):
                    await self._discard()
                elif self._consumer is not None and self._consumer.is_closed:
                    self._forget_consumer()
            raise self._error(operation, exc) from exc

    def _error(self, operation: str, exc: BaseException) -> BrokerError:
        return BrokerError(f"{KIND} {self._where}: {operation} failed: {_cause(exc)}")
