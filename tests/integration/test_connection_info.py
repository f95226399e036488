"""Pins the two kernel facts lameduck reads from an idle keep-alive connection before closing it.

``unread_bytes`` (FIONREAD) says a request is already waiting in the socket buffer; ``sent_within``
(TCP_INFO's tcpi_last_data_sent) says the connection answered a moment ago, so its client is probably between
two requests. Both decide whether closing an "idle" connection would race a request (servers/uvicorn.py).
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from lameduck.servers import listener

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="TCP_INFO and SIOCINQ are read the Linux way")


class _Keep(asyncio.Protocol):
    """Accepts and never reads on its own: the test pauses reading so bytes stay in the kernel buffer."""

    def __init__(self, into: list[asyncio.Transport], made: asyncio.Event) -> None:
        self.into = into
        self.made = made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()
        self.into.append(transport)
        self.made.set()


async def _pair() -> tuple[asyncio.Server, asyncio.Transport, asyncio.StreamReader, asyncio.StreamWriter]:
    accepted: list[asyncio.Transport] = []
    made = asyncio.Event()
    server = await asyncio.get_running_loop().create_server(lambda: _Keep(accepted, made), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    async with asyncio.timeout(5):
        await made.wait()
    return server, accepted[0], reader, writer


async def _unread_bytes_counts_what_the_client_sent() -> None:
    server, transport, _, writer = await _pair()
    try:
        assert listener.unread_bytes(transport) == 0
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(5):
            # Nothing signals "bytes reached the peer's kernel buffer": a bounded poll.
            while listener.unread_bytes(transport) == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
        assert listener.unread_bytes(transport) == 27
    finally:
        writer.close()
        transport.close()
        server.close()


async def _sent_within_tells_a_warm_connection_from_an_idle_one() -> None:
    server, transport, reader, writer = await _pair()
    try:
        await asyncio.sleep(0.15)
        assert not listener.sent_within(transport, 0.05)  # has sent nothing for 150 ms
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        assert listener.sent_within(transport, 0.05)  # answered just now
        await asyncio.sleep(0.15)
        assert not listener.sent_within(transport, 0.05)
        assert listener.sent_within(transport, 10)
    finally:
        writer.close()
        transport.close()
        server.close()


def test_unread_bytes_counts_what_the_client_sent() -> None:
    asyncio.run(_unread_bytes_counts_what_the_client_sent())


def test_sent_within_tells_a_warm_connection_from_an_idle_one() -> None:
    asyncio.run(_sent_within_tells_a_warm_connection_from_an_idle_one())


def test_refusing_new_connections_drops_syns_but_keeps_established_ones() -> None:
    """The listener filter: a new connect gets no answer (its SYN is dropped, so it cannot be reset later),
    a connection already accepted keeps working, and once the listener is closed connects are refused."""
    import socket

    sock = listener.bind("127.0.0.1", 0, 16)
    port = sock.getsockname()[1]
    sock.setblocking(True)
    before = socket.create_connection(("127.0.0.1", port), timeout=2)
    served, _ = sock.accept()
    try:
        assert listener.refuse_new_connections(sock)
        with pytest.raises(TimeoutError):
            socket.create_connection(("127.0.0.1", port), timeout=0.3)
        before.sendall(b"ping")
        assert served.recv(4) == b"ping"  # established connections are not the listener's: untouched
        assert listener.accept_queue_length(sock) == 0
        sock.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
    finally:
        before.close()
        served.close()
        sock.close()
