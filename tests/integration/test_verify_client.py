"""The verify client's failure classification against real sockets: each way a response can end."""

from __future__ import annotations

import asyncio

import pytest

from lameduck.verify.client import Connection, Failure, RequestFailedError


async def _one(answer: bytes) -> tuple[int, bytes, bool] | Failure:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = Connection("127.0.0.1", port)
    try:
        response = await conn.request("GET", "/", timeout=5)
    except RequestFailedError as exc:
        return exc.failure
    finally:
        conn.close()
        server.close()
        await server.wait_closed()
    return response.status, response.body, response.closes


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # A body delimited by the close is a complete response, not a lost request.
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello", (200, b"hello", True)),
        (
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
            (503, b"busy", True),
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", Failure.EOF),  # cut short by the close
        (b"", Failure.EOF),  # closed without a word
        (b"HTTP/1.1 200 OK\r\nContent-", Failure.EOF),  # closed inside the head
        (b"garbage\r\n\r\n", Failure.PROTOCOL),
    ],
)
def test_how_a_response_ended(answer: bytes, expected: object) -> None:
    assert asyncio.run(_one(answer)) == expected


def test_a_refused_connect_is_not_a_lost_request() -> None:
    async def go() -> Failure:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        try:
            await Connection("127.0.0.1", port).request("GET", "/", timeout=2)
        except RequestFailedError as exc:
            return exc.failure
        raise AssertionError("the connect should have been refused")

    failure = asyncio.run(go())
    assert failure is Failure.REFUSED
    assert not failure.lost
