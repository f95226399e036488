"""The Redis backend: one stream per queue, read through one consumer group.

Keys (``PREFIX`` is ``lameduck`` unless the URL says ``?prefix=``). The braces are literal: a Redis Cluster hash
tag, so a queue's keys share one slot, as the scripts below (each touching one queue) require there:

    PREFIX:{QUEUE}            stream of due jobs; consumer group "lameduck", consumer name = worker id
    PREFIX:{QUEUE}:delayed    sorted set: jobs not yet due (score = due time, ms of Redis' clock)
    PREFIX:{QUEUE}:leases     sorted set: stream entry id -> lease deadline (ms of Redis' clock)
    PREFIX:{QUEUE}:dead       stream of buried jobs (dead letters, kept until an operator trims them)
    PREFIX:{QUEUE}:key:KEY    idempotency key -> job id (forever, or ``?key_ttl=SECONDS``)

An entry's fields: ``id`` (the job id: stable across releases and retries, which re-add the job as a new entry),
``payload`` (JSON text), ``attempts`` (attempts that ended before this entry was added), and optionally ``key``
and ``error`` (the last failure). The attempt a worker sees is ``attempts`` plus the entry's delivery count, so a
job reclaimed from a dead worker is attempt 2 without anyone having written that down.

Why a lease set instead of XAUTOCLAIM's idle time: each worker subscribes with its own lease, and XAUTOCLAIM's
min-idle-time is the *claimer's* number. A worker with a 30 s lease would leave a dead 0.5 s-lease worker's job
alone for 30 s. The lease set keeps each entry's deadline as its holder set it (claim and extend write it).

Every state change that checks ownership runs as one Lua script, so "is it still mine?" and "move it" cannot be
split by another worker. Times come from Redis' ``TIME``, so workers' clocks may disagree.

At-least-once, like every backend: a plain ``enqueue`` (no ``key``) retried after its reply was lost may add the
job twice (pass ``key`` for exactly-once enqueue), and a claim whose reply was lost leaves its jobs with this
worker until their lease runs out. Do not XTRIM the streams: undelivered jobs would go with the trimmed entries.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from lameduck.errors import BrokerError, ConfigError
from lameduck.runtime import tracking
from lameduck.workers.job import Job

GROUP = "lameduck"
#: Delayed jobs moved to the stream per claim and queue; the rest follow on the next claim.
PROMOTE_BATCH = 256
#: Shortest wait() block, so a bug that leaves a past deadline behind cannot turn wait() into a busy loop.
MIN_BLOCK = 0.01
#: Longest close() spends on each of its tidying steps (seconds): it must not eat a shutdown budget.
CLOSE_TIMEOUT = 1.0
#: redis-py's socket timeout unless the URL sets ``socket_timeout`` (redis-py's own default differs by version,
#: and wait() must know it: a block longer than the socket timeout would fail as a timeout).
SOCKET_TIMEOUT = 5.0

# ---- Lua ---------------------------------------------------------------------------------------------------

_LUA_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end
local function with_field(fields, name, value)
  local out, found = {}, false
  for i = 1, #fields, 2 do
    local v = fields[i + 1]
    if fields[i] == name then v = value; found = true end
    out[#out + 1] = fields[i]
    out[#out + 1] = v
  end
  if not found then
    out[#out + 1] = name
    out[#out + 1] = value
  end
  return out
end
-- the consumer holding a pending entry and its delivery count; nil when nobody holds it
local function holder(stream, group, id)
  local p = redis.call('XPENDING', stream, group, id, id, 1)
  if #p == 0 then return nil, 0 end
  return p[1][2], tonumber(p[1][4])
end
local function ensure_group(stream, group)
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
  end
end
-- the entry's fields with the attempts that ended so far (its own deliveries included, minus `uncounted`)
local function counted(stream, id, deliveries, uncounted)
  local entry = redis.call('XRANGE', stream, id, id)[1]
  if not entry then return nil end
  local attempts = tonumber(field(entry[2], 'attempts') or '0') + deliveries - uncounted
  return with_field(entry[2], 'attempts', tostring(attempts))
end
local function settle(stream, leases, group, id)
  redis.call('XACK', stream, group, id)
  redis.call('XDEL', stream, id)
  redis.call('ZREM', leases, id)
end
"""

# KEYS: stream, delayed[, dedup key]   ARGV: group, job id, delay ms, key ttl ms, field, value, ...
_ENQUEUE = """
if KEYS[3] then
  local set
  if tonumber(ARGV[4]) > 0 then
    set = redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[4])
  else
    set = redis.call('SET', KEYS[3], ARGV[2], 'NX')
  end
  if not set then return redis.call('GET', KEYS[3]) end
end
ensure_group(KEYS[1], ARGV[1])
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
local delay = tonumber(ARGV[3])
if delay > 0 then
  redis.call('ZADD', KEYS[2], now_ms() + delay, cjson.encode(fields))
else
  redis.call('XADD', KEYS[1], '*', unpack(fields))
end
return ARGV[2]
"""

# KEYS: stream, delayed, leases   ARGV: group, consumer, limit, lease ms, promote batch
# Returns {{entry id, fields, deliveries}, ...}: expired leases first (they are older), then new entries.
_CLAIM = """
local stream, delayed, leases = KEYS[1], KEYS[2], KEYS[3]
local group, me, limit, lease = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
ensure_group(stream, group)
for _, member in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))) do
  redis.call('XADD', stream, '*', unpack(cjson.decode(member)))
  redis.call('ZREM', delayed, member)
end
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, limit)) do
  local owner, deliveries = holder(stream, group, id)
  local entry = nil
  if owner then entry = redis.call('XCLAIM', stream, group, me, 0, id)[1] end
  if entry then
    redis.call('ZADD', leases, now + lease, id)
    out[#out + 1] = {entry[1], entry[2], deliveries + 1}
  else
    redis.call('ZREM', leases, id)
  end
end
if #out < limit then
  local got = redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', limit - #out, 'STREAMS', stream, '>')
  if got then
    for _, entry in ipairs(got[1][2]) do
      redis.call('ZADD', leases, now + lease, entry[1])
      out[#out + 1] = {entry[1], entry[2], 1}
    end
  end
end
return out
"""

# KEYS: stream, leases   ARGV: group, consumer, lease ms, entry id, ...   Returns the ids no longer held.
_EXTEND = """
local now, lost = now_ms(), {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if holder(KEYS[1], ARGV[1], id) == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), id)
  else
    lost[#lost + 1] = id
  end
end
return lost
"""

# KEYS: stream, leases   ARGV: group, consumer, entry id, ...   Returns how many were given back.
_RELEASE = """
local released = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local owner, deliveries = holder(KEYS[1], ARGV[1], id)
  if owner == ARGV[2] then
    local fields = counted(KEYS[1], id, deliveries, 1)
    if fields then redis.call('XADD', KEYS[1], '*', unpack(fields)) end
    settle(KEYS[1], KEYS[2], ARGV[1], id)
    released = released + 1
  end
end
return released
"""

# KEYS: stream, delayed, leases   ARGV: group, consumer, entry id, delay ms, error
_RETRY = """
local owner, deliveries = holder(KEYS[1], ARGV[1], ARGV[3])
if owner ~= ARGV[2] then return 0 end
local fields = counted(KEYS[1], ARGV[3], deliveries, 0)
if fields then
  fields = with_field(fields, 'error', ARGV[5])
  local delay = tonumber(ARGV[4])
  if delay > 0 then
    redis.call('ZADD', KEYS[2], now_ms() + delay, cjson.encode(fields))
  else
    redis.call('XADD', KEYS[1], '*', unpack(fields))
  end
end
settle(KEYS[1], KEYS[3], ARGV[1], ARGV[3])
return 1
"""

# KEYS: stream, dead, leases   ARGV: group, entry id, error
_BURY = """
local owner, deliveries = holder(KEYS[1], ARGV[1], ARGV[2])
if not owner then return 0 end
local fields = counted(KEYS[1], ARGV[2], deliveries, 0)
if fields then redis.call('XADD', KEYS[2], '*', unpack(with_field(fields, 'error', ARGV[3]))) end
settle(KEYS[1], KEYS[3], ARGV[1], ARGV[2])
return 1
"""

# KEYS: stream   ARGV: group, consumer
_FORGET = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
"""


# ---- the broker --------------------------------------------------------------------------------------------


class RedisStreamsBroker:
    """``redis://[user:pass@]host:port/db[?prefix=lameduck&key_ttl=SECONDS]`` (``rediss://`` for TLS).

    Other query parameters go to redis-py (``socket_timeout``, ``health_check_interval``, ...).
    """

    kind = "redis"

    def __init__(self, url: str) -> None:
        self._url, self.prefix, self._key_ttl_ms = _parse_url(url)
        parts = urlsplit(self._url)
        self._where = f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"
        #: How this broker's connections are named in CLIENT LIST (``-wait`` for the one wait() blocks on).
        self.client_name = f"lameduck-{uuid.uuid4().hex[:12]}"
        self._redis: aioredis.Redis | None = None
        self._waiter: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._queues: tuple[str, ...] = ()
        self._worker_id = ""
        self._lease_ms = 30_000
        self._turn = 0
        self._blocking: set[asyncio.Future[None]] = set()

    # -- keys ---------------------------------------------------------------------------------------------

    def stream(self, queue: str) -> str:
        return f"{self.prefix}:{{{queue}}}"

    def _key(self, queue: str, suffix: str) -> str:
        return f"{self.stream(queue)}:{suffix}"

    # -- plumbing -----------------------------------------------------------------------------------------

    @contextmanager
    def _failing(self, operation: str) -> Iterator[None]:
        """Turn redis-py's errors into the one error the runner handles, naming where and what failed."""
        try:
            yield
        except RedisError as exc:
            cause = " ".join(str(exc).split()) or "no details"
            raise BrokerError(f"redis {self._where}: {operation} failed: {type(exc).__name__}: {cause}") from exc

    def _client(self, operation: str) -> aioredis.Redis:
        if self._redis is None:
            raise BrokerError(f"redis {self._where}: {operation} before connect()")
        return self._redis

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        """Run a script by SHA; redis-py loads it again if the server lost its script cache (a restart)."""
        return await self._scripts[name](keys=list(keys), args=list(args))

    def _open(self, name: str) -> aioredis.Redis:
        # One retry, on connection errors only: it reconnects a connection the server closed while it sat in the
        # pool (restart, CLIENT KILL, idle timeout). Timeouts are not retried: a hung server would double the wait,
        # and the runner retries within its own budget.
        retry = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
        return aioredis.from_url(
            self._url,
            decode_responses=True,
            client_name=name,
            retry=retry,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
        )

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def connect(self) -> None:
        if self._redis is not None:
            return
        client = self._open(self.client_name)
        # wait() blocks on its own connection: cancelling it (the runner does at SIGTERM) drops that connection,
        # and must not drop the one the acks and releases of the drain are about to use.
        waiter = self._open(f"{self.client_name}-wait")
        try:
            with self._failing("connect"):
                await client.ping()
        except BrokerError:
            await client.aclose()
            await waiter.aclose()
            raise
        self._redis, self._waiter = client, waiter
        for name, body in _SCRIPTS.items():
            self._scripts[name] = client.register_script(_LUA_COMMON + body)

    async def close(self) -> None:
        client, waiter = self._redis, self._waiter
        self._redis = self._waiter = None
        if client is None or waiter is None:
            return
        try:
            await self._forget_consumer()
        finally:
            await self._stop_blocking()
            await waiter.aclose()
            await client.aclose()

    async def _stop_blocking(self) -> None:
        """End blocks left behind by cancelled waits before their connection goes (bounded, like all of close)."""
        for task in self._blocking:
            task.cancel()
        if self._blocking:
            await asyncio.wait(set(self._blocking), timeout=CLOSE_TIMEOUT)

    async def _forget_consumer(self) -> None:
        """Drop this worker from its groups if it holds nothing, so unique worker ids do not pile up in XINFO.

        Best effort and bounded: a consumer left behind is harmless, while a close that fails or hangs on an
        unreachable server would hide the error that made the caller close, or eat its shutdown budget.
        """
        if not self._worker_id:
            return
        with suppress(RedisError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                for queue in self._queues:
                    await self._run("forget", [self.stream(queue)], [GROUP, self._worker_id])

    # -- producing ----------------------------------------------------------------------------------------

    async def enqueue(self, queue: str, payload: Any, *, key: str | None = None, delay: float = 0.0) -> str:
        self._client("enqueue")
        job_id = uuid.uuid4().hex
        fields = ["id", job_id, "payload", json.dumps(payload, ensure_ascii=False), "attempts", "0"]
        keys = [self.stream(queue), self._key(queue, "delayed")]
        if key is not None:
            fields += ["key", key]
            keys.append(self._key(queue, f"key:{key}"))
        with self._failing("enqueue"):
            first = await self._run("enqueue", keys, [GROUP, job_id, _ms(delay), self._key_ttl_ms, *fields])
        return str(first)

    # -- consuming ----------------------------------------------------------------------------------------

    async def declare(self, queues: Sequence[str]) -> None:
        """Create the streams and their group up front; created with id 0, so jobs enqueued before any worker
        subscribed are still delivered."""
        client = self._client("declare")
        with self._failing("declare"):
            async with client.pipeline(transaction=False) as pipe:
                for queue in queues:
                    pipe.xgroup_create(self.stream(queue), GROUP, id="0", mkstream=True)
                results = await pipe.execute(raise_on_error=False)
            # BUSYGROUP: another process created the group first, which is what we wanted.
            failed = [r for r in results if isinstance(r, RedisError) and not str(r).startswith("BUSYGROUP")]
            if failed:
                raise failed[0]

    async def subscribe(self, queues: Sequence[str], *, worker_id: str, lease: float, prefetch: int) -> None:
        self._client("subscribe")
        self._queues, self._worker_id, self._lease_ms = tuple(queues), worker_id, max(_ms(lease), 1)
        await self.declare(self._queues)

    def _rotation(self) -> list[str]:
        """The subscribed queues, starting one further each claim: a busy queue cannot starve the others."""
        turn = self._turn % len(self._queues)
        self._turn += 1
        return [*self._queues[turn:], *self._queues[:turn]]

    async def claim(self, limit: int) -> list[Job]:
        self._client("claim")
        if limit <= 0 or not self._queues:
            return []
        jobs: list[Job] = []
        for queue in self._rotation():
            if len(jobs) >= limit:
                break
            try:
                jobs += await self._claim_from(queue, limit - len(jobs))
            except BrokerError:
                # Jobs already claimed from another queue are in our pending list: return them rather than
                # strand them until their lease runs out (and count an attempt). The error comes back next call.
                if not jobs:
                    raise
                break
        return jobs

    async def _claim_from(self, queue: str, limit: int) -> list[Job]:
        keys = [self.stream(queue), self._key(queue, "delayed"), self._key(queue, "leases")]
        with self._failing("claim"):
            rows = await self._run("claim", keys, [GROUP, self._worker_id, limit, self._lease_ms, PROMOTE_BATCH])
        return [_job(queue, row) for row in rows]

    async def wait(self, timeout: float) -> None:
        waiter = self._waiter
        if waiter is None:
            raise BrokerError(f"redis {self._where}: wait before connect()")
        if timeout <= 0:
            return
        if not self._queues:
            await asyncio.sleep(timeout)
            return
        # The blocking happens in a task of its own, awaited through a shield. redis-py sends every command under
        # asyncio.wait_for, which on Python 3.11 can swallow a cancellation (CPython gh-86296): the runner's cancel
        # at SIGTERM would then be lost for a whole block. Cancelling a shield never is; the orphaned task ends
        # with its block (it is cancelled too) or at close().
        blocking = tracking.start(self._block(waiter, timeout), name="lameduck:redis-wait")
        self._blocking.add(blocking)
        blocking.add_done_callback(self._reap)
        try:
            await asyncio.shield(blocking)
        except asyncio.CancelledError:
            blocking.cancel()
            raise

    def _reap(self, task: asyncio.Future[None]) -> None:
        """Forget a finished block; fetch its exception so an orphan's failure is not reported as unretrieved."""
        self._blocking.discard(task)
        if not task.cancelled():
            task.exception()

    async def _block(self, waiter: aioredis.Redis, timeout: float) -> None:
        with self._failing("wait"):
            since, block = await self._wait_plan(waiter, timeout)
            # A plain XREAD claims nothing: it only says "entries past what the group has delivered exist".
            await waiter.xread(since, count=1, block=max(1, round(block * 1000)))

    async def _wait_plan(self, waiter: aioredis.Redis, timeout: float) -> tuple[dict[Any, Any], float]:
        """Where each stream's undelivered entries begin, and how long to block.

        Blocking from the group's last-delivered id (not ``$``) means an entry added between the last claim and
        this call still wakes us. The block ends early when a delayed job falls due or a lease runs out, since
        neither adds a stream entry that XREAD would see.
        """
        async with waiter.pipeline(transaction=False) as pipe:
            pipe.time()
            for queue in self._queues:
                pipe.xinfo_groups(self.stream(queue))
                pipe.zrange(self._key(queue, "delayed"), 0, 0, withscores=True)
                pipe.zrange(self._key(queue, "leases"), 0, 0, withscores=True)
            results = await pipe.execute(raise_on_error=False)
        seconds, micros = results[0]
        now = seconds * 1000 + micros // 1000
        until = now + timeout * 1000
        since: dict[Any, Any] = {}
        for i, queue in enumerate(self._queues):
            groups, delayed, leases = results[1 + 3 * i : 4 + 3 * i]
            since[self.stream(queue)] = _last_delivered(groups)
            for first in (delayed, leases):
                if isinstance(first, list) and first:
                    until = min(until, float(first[0][1]))
        block = max((until - now) / 1000, MIN_BLOCK)
        socket_timeout = waiter.connection_pool.connection_kwargs.get("socket_timeout")
        if socket_timeout:
            block = min(block, max(float(socket_timeout) * 0.8, MIN_BLOCK))
        return since, block

    async def extend(self, jobs: Sequence[Job]) -> set[str]:
        self._client("extend")
        lost: set[str] = set()
        for queue, batch in _by_queue(jobs).items():
            by_receipt = {job.receipt: job.id for job in batch}
            with self._failing("extend"):
                gone = await self._run(
                    "extend",
                    [self.stream(queue), self._key(queue, "leases")],
                    [GROUP, self._worker_id, self._lease_ms, *by_receipt],
                )
            lost.update(by_receipt[entry] for entry in gone)
        return lost

    async def ack(self, jobs: Sequence[Job]) -> None:
        client = self._client("ack")
        if not jobs:
            return
        with self._failing("ack"):
            async with client.pipeline(transaction=True) as pipe:
                for queue, batch in _by_queue(jobs).items():
                    receipts = [job.receipt for job in batch]
                    pipe.xack(self.stream(queue), GROUP, *receipts)
                    pipe.xdel(self.stream(queue), *receipts)
                    pipe.zrem(self._key(queue, "leases"), *receipts)
                await pipe.execute()

    async def retry(self, job: Job, delay: float, error: str) -> None:
        self._client("retry")
        keys = [self.stream(job.queue), self._key(job.queue, "delayed"), self._key(job.queue, "leases")]
        with self._failing("retry"):
            await self._run("retry", keys, [GROUP, self._worker_id, job.receipt, _ms(delay), error])

    async def bury(self, job: Job, error: str) -> None:
        self._client("bury")
        keys = [self.stream(job.queue), self._key(job.queue, "dead"), self._key(job.queue, "leases")]
        with self._failing("bury"):
            await self._run("bury", keys, [GROUP, job.receipt, error])

    async def release(self, jobs: Sequence[Job]) -> None:
        self._client("release")
        for queue, batch in _by_queue(jobs).items():
            keys = [self.stream(queue), self._key(queue, "leases")]
            with self._failing("release"):
                await self._run("release", keys, [GROUP, self._worker_id, *(job.receipt for job in batch)])

    async def stop_claiming(self) -> list[Job]:
        return []

    # -- status -------------------------------------------------------------------------------------------

    async def status(self, queues: Sequence[str] | None = None) -> Mapping[str, Mapping[str, int]]:
        """Acked jobs are deleted, so there is no "done"; queued = stream length minus what is pending."""
        client = self._client("status")
        with self._failing("status"):
            if queues is None:
                queues = sorted(set(self._queues) | await self._known_queues(client))
            async with client.pipeline(transaction=True) as pipe:
                for queue in queues:
                    pipe.xlen(self.stream(queue))
                    pipe.xpending(self.stream(queue), GROUP)
                    pipe.zcard(self._key(queue, "delayed"))
                    pipe.xlen(self._key(queue, "dead"))
                results = await pipe.execute(raise_on_error=False)
        counts: dict[str, dict[str, int]] = {}
        for i, queue in enumerate(queues):
            length, pending, scheduled, dead = results[4 * i : 4 * i + 4]
            running = int(pending["pending"]) if isinstance(pending, dict) else 0
            counts[queue] = {
                "queued": max(_int(length) - running, 0),
                "running": running,
                "scheduled": _int(scheduled),
                "dead": _int(dead),
            }
        return counts

    async def _known_queues(self, client: aioredis.Redis) -> set[str]:
        """Queues that have a stream here (every enqueue creates one), found by SCAN: status is for operators."""
        start = f"{_glob_escape(self.prefix)}:{{"
        queues: set[str] = set()
        async for name in client.scan_iter(match=f"{start}*", count=1000, _type="stream"):
            rest = str(name)[len(self.prefix) + 2 :]
            if rest.endswith("}:dead"):
                queues.add(rest[: -len("}:dead")])
            elif rest.endswith("}"):
                queues.add(rest[:-1])
        return queues


_SCRIPTS = {
    "enqueue": _ENQUEUE,
    "claim": _CLAIM,
    "extend": _EXTEND,
    "release": _RELEASE,
    "retry": _RETRY,
    "bury": _BURY,
    "forget": _FORGET,
}


# ---- helpers -----------------------------------------------------------------------------------------------


def _parse_url(url: str) -> tuple[str, str, int]:
    """Split lameduck's own query parameters off; redis-py would reject them as unknown connection options."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = dict(pair for pair in query if pair[0] in ("prefix", "key_ttl"))
    rest = [pair for pair in query if pair[0] not in ours]
    prefix = ours.get("prefix", "lameduck")
    if not prefix:
        raise ConfigError("--broker", "redis ?prefix= must not be empty")
    try:
        key_ttl = float(ours.get("key_ttl", "0"))
    except ValueError:
        raise ConfigError("--broker", f"redis ?key_ttl= must be seconds (got {ours['key_ttl']!r})") from None
    if key_ttl < 0:
        raise ConfigError("--broker", f"redis ?key_ttl= must be ≥ 0 seconds (got {key_ttl})")
    return urlunsplit(parts._replace(query=urlencode(rest))), prefix, _ms(key_ttl)


def _ms(seconds: float) -> int:
    return max(round(seconds * 1000), 0)


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _last_delivered(groups: object) -> str:
    """The group's last-delivered id; "0-0" when the stream or group is gone (then everything is new)."""
    if isinstance(groups, list):
        for group in groups:
            if isinstance(group, dict) and group.get("name") == GROUP:
                return str(group.get("last-delivered-id") or "0-0")
    return "0-0"


def _by_queue(jobs: Sequence[Job]) -> dict[str, list[Job]]:
    out: dict[str, list[Job]] = {}
    for job in jobs:
        out.setdefault(job.queue, []).append(job)
    return out


def _job(queue: str, row: Sequence[Any]) -> Job:
    """A claimed entry as the runner sees it: the receipt is the entry id, which acks and releases name."""
    entry_id, flat, deliveries = row
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    attempt = int(fields.get("attempts", 0)) + int(deliveries)
    return Job(fields["id"], queue, json.loads(fields["payload"]), attempt, fields.get("key"), receipt=entry_id)
