"""The rollout load: which request ``n`` is depends on the seed alone, weights hold, and ``Load.run`` paces,
stops and sends POSTs with a body and an idempotency key.

``Load.run`` is driven against a tiny keep-alive HTTP/1.1 server written here, on 127.0.0.1 port 0, that
answers every request ``200 ok`` and records what it received.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

from lameduck.verify.load import Load, RequestKind
from lameduck.verify.rollout import RolloutOptions

T = TypeVar("T")

FAST = RequestKind("fast", "GET", "/", 80.0)
SLOW = RequestKind("slow", "GET", "/slow", 15.0)
POST = RequestKind("post", "POST", "/orders", 5.0)
KINDS = (FAST, SLOW, POST)

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def names(load: Load, count: int) -> list[str]:
    return [load.kind_of(n).name for n in range(count)]


# -- which request comes next ------------------------------------------------------------------------------------


def test_a_load_needs_a_request_kind() -> None:
    with pytest.raises(ValueError, match="at least one request kind"):
        Load("127.0.0.1", 1, ())


def test_a_request_kind_is_labelled_by_method_and_path() -> None:
    assert POST.label == "POST /orders"
    assert FAST.label == "GET /"


def test_the_same_seed_gives_the_same_kinds_in_the_same_order() -> None:
    first = Load("127.0.0.1", 1, KINDS, seed=42)
    second = Load("127.0.0.1", 2, KINDS, seed=42, rate=5.0, connections=1)  # pacing does not change the choice
    assert names(first, 5000) == names(second, 5000)


def test_a_different_seed_gives_a_different_order() -> None:
    first = names(Load("127.0.0.1", 1, KINDS, seed=42), 5000)
    second = names(Load("127.0.0.1", 1, KINDS, seed=43), 5000)
    differing = sum(a != b for a, b in zip(first, second, strict=True))
    assert differing > 1000  # two independent 80/15/5 draws differ about a third of the time


def test_the_kind_of_a_request_does_not_depend_on_the_order_it_is_asked_in() -> None:
    forward = Load("127.0.0.1", 1, KINDS, seed=7)
    backward = Load("127.0.0.1", 1, KINDS, seed=7)
    expected = names(forward, 3000)
    assert [backward.kind_of(n).name for n in reversed(range(3000))] == expected[::-1]
    assert backward.kind_of(1500) is forward.kind_of(1500)  # asked again: the same answer


def test_weights_are_respected() -> None:
    load = Load("127.0.0.1", 1, KINDS, seed=1)
    draws = 20_000
    counts = Counter(names(load, draws))
    assert set(counts) == {"fast", "slow", "post"}
    for kind in KINDS:
        share = counts[kind.name] / draws
        assert share == pytest.approx(kind.weight / 100, abs=0.015), (kind.name, share)


def test_weights_need_not_sum_to_a_hundred() -> None:
    kinds = (RequestKind("fast", "GET", "/", 1.0), RequestKind("post", "POST", "/p", 3.0))
    counts = Counter(names(Load("127.0.0.1", 1, kinds, seed=3), 10_000))
    assert counts["post"] / 10_000 == pytest.approx(0.75, abs=0.02)


def test_a_kind_with_weight_zero_is_never_chosen() -> None:
    kinds = (RequestKind("fast", "GET", "/", 50.0), RequestKind("slow", "GET", "/s", 0.0), POST)
    counts = Counter(names(Load("127.0.0.1", 1, kinds, seed=5), 10_000))
    assert counts["slow"] == 0
    assert counts["fast"] > 0
    assert counts["post"] > 0


def test_the_rollout_mix_drops_weight_zero_kinds_and_they_are_never_chosen() -> None:
    options = RolloutOptions(command=("x", "{port}"), mix=(80.0, 0.0, 20.0), slow_path="/slow", post_path="/orders")
    assert [k.name for k in options.kinds] == ["fast", "post"]
    counts = Counter(names(Load("127.0.0.1", 1, options.kinds, seed=9), 5000))
    assert set(counts) == {"fast", "post"}
    assert counts["post"] / 5000 == pytest.approx(0.2, abs=0.02)


def test_a_single_kind_is_always_chosen() -> None:
    load = Load("127.0.0.1", 1, (FAST,), seed=11)
    assert set(names(load, 3000)) == {"fast"}


# -- Load.run against a local server ------------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int


@dataclass
class TinyServer:
    """Answers every request ``200 ok`` on keep-alive connections; records every request and connection."""

    requests: list[Received] = field(default_factory=list)
    connections: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self.writers.append(writer)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                request_line, *lines = head.split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Received(method, path, headers, body, number))
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def with_server(body: Callable[[TinyServer, int], Awaitable[T]]) -> T:
    tiny = TinyServer()
    server = await asyncio.start_server(tiny.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await body(tiny, port)
    finally:
        server.close()
        for writer in tiny.writers:
            writer.close()
        await server.wait_closed()
        await asyncio.sleep(0)  # let the closed transports finish closing


def test_run_paces_requests_to_the_asked_rate() -> None:
    async def body(tiny: TinyServer, port: int) -> tuple[Load, float]:
        load = Load("127.0.0.1", port, KINDS, connections=8, rate=200.0, seed=1, timeout=5.0)
        began = time.perf_counter()
        await load.run(asyncio.Event(), limit=1.0)
        return load, time.perf_counter() - began

    load, elapsed = asyncio.run(with_server(body))
    assert 150 <= len(load.samples) <= 230, len(load.samples)
    assert 0.8 <= elapsed <= 2.0, elapsed
    assert all(s.ok for s in load.samples), Counter(s.kind for s in load.samples)
    # Paced, not sent in a burst: about half of them began in the first half second.
    first_half = sum(1 for s in load.samples if s.began - load.started_at < 0.5)
    assert 60 <= first_half <= 140, first_half


def test_run_reuses_keep_alive_connections() -> None:
    async def body(tiny: TinyServer, port: int) -> tuple[Load, TinyServer]:
        load = Load("127.0.0.1", port, (FAST,), connections=4, rate=300.0, seed=1, timeout=5.0)
        await load.run(asyncio.Event(), limit=0.5)
        return load, tiny

    load, tiny = asyncio.run(with_server(body))
    assert len(tiny.requests) == len(load.samples) >= 100
    assert 1 <= tiny.connections <= 4  # one connection per worker, reused for every request


def test_run_stops_promptly_when_asked() -> None:
    async def body(tiny: TinyServer, port: int) -> tuple[Load, float]:
        load = Load("127.0.0.1", port, KINDS, connections=8, rate=100.0, seed=1, timeout=5.0)
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, stop.set)
        began = time.perf_counter()
        await load.run(stop, limit=10.0)
        return load, time.perf_counter() - began

    load, elapsed = asyncio.run(with_server(body))
    assert elapsed < 1.0, elapsed
    assert 10 <= len(load.samples) <= 60, len(load.samples)


def test_run_with_stop_already_set_sends_nothing() -> None:
    async def body(tiny: TinyServer, port: int) -> tuple[Load, TinyServer]:
        load = Load("127.0.0.1", port, KINDS, connections=4, rate=100.0, seed=1)
        stop = asyncio.Event()
        stop.set()
        await load.run(stop, limit=10.0)
        return load, tiny

    load, tiny = asyncio.run(with_server(body))
    assert load.samples == []
    assert tiny.requests == []


def test_run_sends_the_seeded_kinds_and_posts_carry_a_body_and_an_idempotency_key() -> None:
    async def body(tiny: TinyServer, port: int) -> tuple[Load, TinyServer]:
        kinds = (RequestKind("fast", "GET", "/", 50.0), RequestKind("post", "POST", "/orders", 50.0))
        load = Load("127.0.0.1", port, kinds, connections=4, rate=300.0, seed=17, post_bytes=300, timeout=5.0)
        await load.run(asyncio.Event(), limit=0.4)
        return load, tiny

    load, tiny = asyncio.run(with_server(body))
    assert len(tiny.requests) == len(load.samples) >= 60
    posts = [r for r in tiny.requests if r.method == "POST"]
    gets = [r for r in tiny.requests if r.method == "GET"]
    assert posts
    assert gets
    # Every POST: the same seeded body of post_bytes, and a key "<seed>-<n>" for a request n that is a POST.
    assert {r.body for r in posts} == {posts[0].body}
    assert len(posts[0].body) == 300
    assert all(r.path == "/orders" and r.headers["content-length"] == "300" for r in posts)
    keys = [r.headers["idempotency-key"] for r in posts]
    assert len(set(keys)) == len(keys)
    for key in keys:
        seed, _, n = key.partition("-")
        assert seed == "17"
        assert load.kind_of(int(n)).method == "POST", key
    # GETs carry neither a body nor a key.
    assert all(r.path == "/" and r.body == b"" and "idempotency-key" not in r.headers for r in gets)
    # What was sent is what the seed says: request n for every n that was sent.
    sent = sorted(int(k.partition("-")[2]) for k in keys)
    expected = [n for n in range(len(tiny.requests)) if load.kind_of(n).method == "POST"]
    assert sent == expected
    # Samples are labelled by kind name, and count the same requests the server saw.
    assert Counter(s.label for s in load.samples) == {"fast": len(gets), "post": len(posts)}


def test_the_post_body_depends_on_the_seed_only() -> None:
    async def one(seed: int) -> bytes:
        async def body(tiny: TinyServer, port: int) -> bytes:
            load = Load("127.0.0.1", port, (POST,), connections=1, rate=50.0, seed=seed, post_bytes=64)
            await load.run(asyncio.Event(), limit=0.05)
            return tiny.requests[0].body

        return await with_server(body)

    async def main() -> tuple[bytes, bytes, bytes]:
        return await one(3), await one(3), await one(4)

    first, again, other = asyncio.run(main())
    assert first == again
    assert len(first) == 64
    assert other != first


def test_a_post_with_no_body_still_says_content_length_zero() -> None:
    async def body(tiny: TinyServer, port: int) -> TinyServer:
        load = Load("127.0.0.1", port, (POST,), connections=1, rate=50.0, seed=2, post_bytes=0)
        await load.run(asyncio.Event(), limit=0.05)
        return tiny

    tiny = asyncio.run(with_server(body))
    assert len(tiny.requests) == 3  # n = 0, 1, 2 are due before 0.05 s at 50/s
    assert all(r.body == b"" and r.headers["content-length"] == "0" for r in tiny.requests)
    assert [r.headers["idempotency-key"] for r in tiny.requests] == ["2-0", "2-1", "2-2"]


def test_a_refused_connect_is_recorded_not_raised() -> None:
    async def main() -> Load:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        load = Load("127.0.0.1", port, (FAST,), connections=2, rate=100.0, seed=1, timeout=1.0)
        await load.run(asyncio.Event(), limit=0.1)
        return load

    load = asyncio.run(main())
    assert len(load.samples) == 10
    assert {s.kind for s in load.samples} == {"refused"}


def test_the_request_order_does_not_depend_on_the_body_size() -> None:
    """Regression: the POST body once came from the same generator as the mix, so --post-bytes changed it."""
    kinds = (
        RequestKind("fast", "GET", "/", 80),
        RequestKind("slow", "GET", "/slow", 15),
        RequestKind("post", "POST", "/orders", 5),
    )
    small = Load("127.0.0.1", 1, kinds, seed=7, post_bytes=0)
    large = Load("127.0.0.1", 1, kinds, seed=7, post_bytes=512)
    assert [small.kind_of(n) for n in range(5000)] == [large.kind_of(n) for n in range(5000)]
