"""Pins for the HAProxy behaviours ``lameduck rollout`` relies on, against a real HAProxy and real backends.

The backends are tiny HTTP/1.1 keep-alive responders in this process: GET /health/ready answers 200 or 503 as the
test decides, GET / answers with the backend's name, so every response says which replica served it. If an
HAProxy upgrade changes one of these behaviours, this file fails and names it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from lameduck.verify.haproxy import HAProxy, HAProxyConfig, HAProxyError, HAProxyMissingError, Mode, find_haproxy

HOST = "127.0.0.1"
MODES: list[Mode] = ["tcp", "http"]

try:
    HAPROXY: str | None = find_haproxy()
except HAProxyMissingError:
    HAPROXY = None

# In CI a skip fails the session (tests/conftest.py), so a CI image without haproxy fails here, as it should.
pytestmark = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (apt-get install -y haproxy)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Backend:
    """A replica stand-in: counts the requests it served (not the health checks) and can stop listening."""

    def __init__(self, name: str, *, ready: bool = True) -> None:
        self.name = name
        self.ready = ready
        self.hits = 0
        self.checks = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def close_listener(self) -> None:
        """Stop accepting (new connects are refused); open connections keep being served."""
        assert self._server is not None
        self._server.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                if path.startswith("/health"):
                    self.checks += 1
                    status, body = (200, b"ready") if self.ready else (503, b"not ready")
                else:
                    self.hits += 1
                    status, body = 200, self.name.encode()
                reason = b"OK" if status == 200 else b"Service Unavailable"
                writer.write(
                    b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n%s"
                    % (status, reason, len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


class Client:
    """One client keep-alive connection through the load balancer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def get(self, path: str = "/") -> tuple[int, str]:
        async with asyncio.timeout(10):
            self.writer.write(f"GET {path} HTTP/1.1\r\nHost: lb\r\n\r\n".encode())
            await self.writer.drain()
            head = (await self.reader.readuntil(b"\r\n\r\n")).decode()
            status = int(head.split(" ", 2)[1])
            length = 0
            for line in head.split("\r\n")[1:]:
                key, _, value = line.partition(":")
                if key.strip().lower() == "content-length":
                    length = int(value)
            body = await self.reader.readexactly(length)
            return status, body.decode()

    async def close(self) -> None:
        self.writer.close()
        with suppress(OSError):
            await self.writer.wait_closed()


async def one_request(port: int) -> tuple[int, str]:
    """A request on a new connection: the load balancer picks a server for it."""
    client = await Client.connect(port)
    try:
        return await client.get()
    finally:
        await client.close()


@asynccontextmanager
async def running(tmp_path: Path, mode: Mode, **settings: Any) -> AsyncIterator[HAProxy]:
    # Fast checks keep the tests quick; the defaults (1 s, fall 3) are pinned in tests/unit/test_haproxy_config.py.
    options: dict[str, Any] = {"check_interval": 0.1, **settings}
    config = HAProxyConfig(mode=mode, port=free_port(), **options)
    async with HAProxy(config, tmp_path) as lb:
        yield lb


@asynccontextmanager
async def backends(*specs: tuple[str, bool]) -> AsyncIterator[list[Backend]]:
    started = [Backend(name, ready=ready) for name, ready in specs]
    try:
        for backend in started:
            await backend.start()
        yield started
    finally:
        for backend in started:
            await backend.close()


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float) -> float:
    started = time.monotonic()
    while not await predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


# -- configuration -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_haproxy_accepts_the_rendered_config(tmp_path: Path, mode: Mode) -> None:
    lb = HAProxy(HAProxyConfig(mode=mode, port=free_port()), tmp_path)
    lb.config_path.write_text(lb.config.render(lb.socket_path))
    run(lb.validate)


def test_a_refused_config_is_reported_with_haproxys_words(tmp_path: Path) -> None:
    lb = HAProxy(HAProxyConfig(mode="tcp", port=free_port()), tmp_path)
    lb.config_path.write_text("frontend fe\n    bind 127.0.0.1:1\n    no-such-keyword\n")
    with pytest.raises(HAProxyError, match="no-such-keyword"):
        run(lb.validate)


def test_a_port_in_use_fails_start_with_haproxys_stderr(tmp_path: Path) -> None:
    async def scenario() -> None:
        with socket.socket() as taken:
            taken.bind((HOST, 0))
            taken.listen()
            lb = HAProxy(HAProxyConfig(mode="tcp", port=taken.getsockname()[1]), tmp_path, start_timeout=5)
            with pytest.raises(HAProxyError, match=r"(?i)bind"):
                await lb.start()
            assert not lb.running

    run(scenario)


# -- adding replicas -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_added_server_gets_traffic_only_once_ready(tmp_path: Path, mode: Mode) -> None:
    async def scenario() -> None:
        # The default check interval (1 s): a new server is still checked every down_interval (0.1 s) until UP.
        async with backends(("a", True), ("b", False)) as (a, b), running(tmp_path, mode, check_interval=1.0) as lb:
            await lb.add_server("a", a.port)
            took = await lb.wait_up("a", timeout=3)
            assert took < 0.5  # rise 1: UP at the first passing check, which comes within one down_interval
            await lb.add_server("b", b.port)
            # Not ready: never routed, not even before its first check (add_server's drain -> DOWN -> ready).
            await until(lambda: lb_checked(lb, "b"), timeout=3)
            assert (await lb.states())["b"] == "DOWN"
            for _ in range(10):
                assert await one_request(lb.config.port) == (200, "a")
            assert b.hits == 0
            with pytest.raises(TimeoutError, match=r"did not mark b UP.*L7STS 503"):
                await lb.wait_up("b", timeout=0.3)

            b.ready = True
            assert await lb.wait_up("b", timeout=3) < 0.5
            served = [(await one_request(lb.config.port))[1] for _ in range(10)]
            assert sorted(set(served)) == ["a", "b"]  # round robin over both

    run(scenario)


async def lb_checked(lb: HAProxy, name: str) -> bool:
    return (await lb.stats())[name].check_status not in ("", "INI")


def test_add_server_rejects_a_duplicate_name_with_haproxys_reason(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with backends(("a", True)) as (a,), running(tmp_path, "tcp") as lb:
            await lb.add_server("a", a.port)
            with pytest.raises(HAProxyError, match="add server be/a"):
                await lb.add_server("a", a.port)
            with pytest.raises(TimeoutError, match="no server 'ghost'"):
                await lb.wait_up("ghost", timeout=0.1)

    run(scenario)


def test_readiness_on_a_separate_check_port(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with backends(("traffic", True), ("probe", False)) as (traffic, probe), running(tmp_path, "http") as lb:
            await lb.add_server("r", traffic.port, check_port=probe.port)
            await until(lambda: lb_checked(lb, "r"), timeout=3)
            assert (await lb.states())["r"] == "DOWN"  # the probe port decides, not the traffic port
            probe.ready = True
            await lb.wait_up("r", timeout=3)
            assert await one_request(lb.config.port) == (200, "traffic")
            assert traffic.checks == 0

    run(scenario)


# -- endpoint removal ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_removed_server_gets_no_new_connections_or_requests(tmp_path: Path, mode: Mode) -> None:
    async def scenario() -> None:
        async with backends(("a", True), ("b", True)) as (a, b), running(tmp_path, mode) as lb:
            for backend in (a, b):
                await lb.add_server(backend.name, backend.port)
                await lb.wait_up(backend.name, timeout=3)
            pinned = await Client.connect(lb.config.port)
            _, first = await pinned.get()
            gone, other = (a, b) if first == "a" else (b, a)

            await lb.remove(gone.name)
            assert (await lb.states())[gone.name] == "MAINT"
            hits_before = gone.hits
            for _ in range(10):
                assert await one_request(lb.config.port) == (200, other.name)

            served = [(await pinned.get())[1] for _ in range(5)]
            if mode == "tcp":
                # kube-proxy/conntrack: the open connection stays with the removed replica, which still answers.
                assert served == [gone.name] * 5
                assert gone.hits == hits_before + 5
                assert (await lb.stats())[gone.name].sessions == 1
            else:
                # Ingress: each request is balanced on its own; none goes to the removed server.
                assert served == [other.name] * 5
                assert gone.hits == hits_before
            await pinned.close()

    run(scenario)


def test_delete_server_needs_the_sessions_gone(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with backends(("a", True), ("b", True)) as (a, b), running(tmp_path, "tcp") as lb:
            for backend in (a, b):
                await lb.add_server(backend.name, backend.port)
                await lb.wait_up(backend.name, timeout=3)
            pinned = await Client.connect(lb.config.port)
            _, name = await pinned.get()
            assert await lb.delete_server(name) is False  # a tcp session is still open: left in maintenance
            assert (await lb.states())[name] == "MAINT"
            await pinned.close()
            await until(lambda: lb.delete_server(name), timeout=3)  # once HAProxy has closed its side
            assert name not in await lb.states()

    run(scenario)


# -- readiness failure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_failing_readiness_takes_the_server_down_within_fall_checks(tmp_path: Path, mode: Mode) -> None:
    inter, fall = 0.2, 3

    async def scenario() -> None:
        async with (
            backends(("a", True), ("b", True)) as (a, b),
            running(tmp_path, mode, check_interval=inter, fall=fall) as lb,
        ):
            for backend in (a, b):
                await lb.add_server(backend.name, backend.port)
                await lb.wait_up(backend.name, timeout=3)
            a.ready = False

            async def down() -> bool:
                return (await lb.states())["a"] == "DOWN"

            took = await until(down, timeout=10)
            assert took <= fall * inter + 0.5
            assert (await lb.stats())["a"].check_code == "503"
            hits = a.hits
            for _ in range(6):
                assert await one_request(lb.config.port) == (200, "b")
            assert a.hits == hits

    run(scenario)


# -- a replica that stopped listening while still marked UP ------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_refused_connect_is_redispatched_to_another_server(tmp_path: Path, mode: Mode) -> None:
    async def scenario() -> None:
        # fall 1000: "a" stays UP (failing checks count down from 1000) although it refuses connects.
        async with (
            backends(("a", True), ("b", True)) as (a, b),
            running(tmp_path, mode, fall=1000) as lb,
        ):
            for backend in (a, b):
                await lb.add_server(backend.name, backend.port)
                await lb.wait_up(backend.name, timeout=3)
            a.close_listener()
            for _ in range(6):
                started = time.monotonic()
                assert await one_request(lb.config.port) == (200, "b")  # the client never sees the refusal
                # No turn-around pause (min(timeout connect, 1 s)) is taken: the retry is not on the same server.
                assert time.monotonic() - started < 0.5
            stats = await lb.stats()
            assert stats["a"].state == "UP"  # no check noticed: the rescue was retries + redispatch
            # HAProxy 2.6 redispatches the very first retry of a refused connect (no retry on "a" itself). The
            # redispatch advances round robin past "b", so with two servers every new connection tries "a" first.
            assert (stats["a"].redispatches, stats["a"].retries, stats["a"].connect_errors) == (6, 0, 0)
            assert stats["b"].redispatches == 0

    run(scenario)


@pytest.mark.parametrize("mode", MODES)
def test_without_retries_a_refused_connect_reaches_the_client(tmp_path: Path, mode: Mode) -> None:
    """retries=0 models kube-proxy: no retry, the client gets the failure (503 in http mode, a close in tcp)."""

    async def scenario() -> None:
        async with (
            backends(
                ("a", True),
            ) as (a,),
            running(tmp_path, mode, fall=1000, retries=0) as lb,
        ):
            await lb.add_server("a", a.port)
            await lb.wait_up("a", timeout=3)
            a.close_listener()
            if mode == "http":
                status, _ = await one_request(lb.config.port)
                assert status == 503
            else:
                with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
                    await one_request(lb.config.port)

    run(scenario)


# -- stop ----------------------------------------------------------------------------------------------------


def test_stop_leaves_no_haproxy_process(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with backends(("a", True)) as (a,):
            lb = HAProxy(HAProxyConfig(mode="tcp", port=free_port()), tmp_path)
            await lb.start()
            pid = lb.pid
            assert pid is not None
            await lb.add_server("a", a.port)
            await lb.wait_up("a", timeout=3)
            open_client = await Client.connect(lb.config.port)  # an open session does not delay the stop
            assert (await open_client.get())[1] == "a"
            started = time.monotonic()
            code = await lb.stop()
            assert time.monotonic() - started < 2
            assert code is not None
            assert not lb.running
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
            with pytest.raises(ConnectionRefusedError):
                await one_request(lb.config.port)
            await open_client.close()
            with pytest.raises(HAProxyError, match="not running"):
                await lb.states()
            assert await lb.stop() == code  # idempotent

    run(scenario)
