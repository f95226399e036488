"""An HTTP/1.1 client that classifies every failure exactly: asyncio streams + h11.

Load tools report "error" for anything that went wrong; judging a shutdown needs to know *what* went wrong.
A refused connect is safe (nothing was sent); a reset or EOF after the request was sent is a lost request,
the failure graceful shutdown exists to prevent. Each request reports which one happened.
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass, field

import h11


class Failure(enum.StrEnum):
    REFUSED = "refused"  # connect() refused: the listener is closed; nothing was sent (safe to retry)
    CONNECT_RESET = "connect-reset"  # reset before the request was sent (safe to retry)
    RESET = "reset"  # reset after the request was sent: a lost request
    EOF = "eof"  # closed without a (complete) response after the request was sent: a lost request
    CONNECT_TIMEOUT = "connect-timeout"  # connect() never completed: nothing was sent
    TIMEOUT = "timeout"  # no response in time after the request was sent
    PROTOCOL = "protocol"  # the server sent something that is not HTTP/1.1

    @property
    def lost(self) -> bool:
        """True when the request may have reached the server and no answer came back."""
        return self in (Failure.RESET, Failure.EOF, Failure.TIMEOUT, Failure.PROTOCOL)


class RequestFailedError(Exception):
    def __init__(self, failure: Failure, detail: str = "") -> None:
        super().__init__(f"{failure}: {detail}" if detail else str(failure))
        self.failure = failure


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    sent_at: float  # perf_counter when the request was fully written
    done_at: float  # perf_counter when the response was fully read

    @property
    def closes(self) -> bool:
        """The server announced it will close the connection (``Connection: close``)."""
        return "close" in self.headers.get("connection", "").lower()


@dataclass(slots=True)
class Connection:
    """One keep-alive connection; reuse it until the server says ``Connection: close``."""

    host: str
    port: int
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    conn: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))
    peer_closed: bool = False

    @property
    def open(self) -> bool:
        return self.writer is not None

    async def connect(self, timeout: float = 5.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        except ConnectionRefusedError as exc:
            raise RequestFailedError(Failure.REFUSED, str(exc)) from None
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise RequestFailedError(Failure.CONNECT_RESET, str(exc)) from None
        except TimeoutError:
            raise RequestFailedError(Failure.CONNECT_TIMEOUT, "connect") from None
        self.conn = h11.Connection(h11.CLIENT)
        self.peer_closed = False

    async def request(
        self,
        method: str = "GET",
        target: str = "/",
        *,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        timeout: float = 30.0,
    ) -> Response:
        """Send one request (connecting first if needed) and read its response."""
        if not self.open:
            await self.connect(timeout)
        assert self.reader is not None
        assert self.writer is not None
        hdrs = [("host", f"{self.host}:{self.port}"), *(headers or [])]
        if body or method in ("POST", "PUT", "PATCH"):
            hdrs.append(("content-length", str(len(body))))
        data = self.conn.send(h11.Request(method=method, target=target, headers=hdrs))
        if body:
            data += self.conn.send(h11.Data(data=body))
        data += self.conn.send(h11.EndOfMessage())
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionResetError, BrokenPipeError) as exc:
            # The bytes may have reached the server before the reset: count it as lost, not as safe.
            self.close()
            raise RequestFailedError(Failure.RESET, f"while sending: {exc}") from None
        sent_at = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                return await self._read_response(sent_at)
        except TimeoutError:
            self.close()
            raise RequestFailedError(Failure.TIMEOUT, "waiting for the response") from None
        except (ConnectionResetError, BrokenPipeError) as exc:
            self.close()
            raise RequestFailedError(Failure.RESET, str(exc)) from None
        except h11.RemoteProtocolError as exc:
            self.close()
            if self.peer_closed:  # the response was cut short by the close: lost, not malformed
                raise RequestFailedError(Failure.EOF, f"connection closed mid-response: {exc}") from None
            raise RequestFailedError(Failure.PROTOCOL, str(exc)) from None

    async def _read_response(self, sent_at: float) -> Response:
        assert self.reader is not None
        status = 0
        headers: dict[str, str] = {}
        chunks: list[bytes] = []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                data = await self.reader.read(65536)
                if not data and self.conn.their_state is h11.SEND_RESPONSE:
                    self.close()
                    raise RequestFailedError(Failure.EOF, "connection closed before a response")
                # An empty read tells h11 the peer closed: a body delimited by the close ends there (a complete
                # response); a body cut short becomes a RemoteProtocolError (a lost request, see below).
                self.peer_closed = not data
                self.conn.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                response = Response(status, headers, b"".join(chunks), sent_at, time.perf_counter())
                if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE:
                    self.close()
                else:
                    self.conn.start_next_cycle()
                return response
            elif isinstance(event, h11.ConnectionClosed):
                self.close()
                raise RequestFailedError(Failure.EOF, "connection closed before a response")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def get(host: str, port: int, target: str = "/", *, timeout: float = 30.0) -> Response:
    """One request on a fresh connection."""
    conn = Connection(host, port)
    try:
        return await conn.request("GET", target, timeout=timeout)
    finally:
        conn.close()
