"""Listening sockets that close without resetting anyone.

Closing a listening socket resets every connection the kernel completed but the server had not accepted yet,
and those clients may already have sent a request (SHUTDOWN.md §5 "The accept queue"). So before closing:
1. attach a classic-BPF program that drops every packet to the listener, so new SYNs go unanswered (the client
   retransmits and, once the socket is closed, is refused: a safe connect error, never a lost request);
2. let the event loop accept what is still queued (read from TCP_INFO, Linux), so it gets served;
3. only then close.
Where the kernel refuses either socket option (not Linux, or a sandbox), lameduck falls back to a plain close
and says so in the ``listener.closed`` event.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import socket
import struct
import sys
import termios

SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>; Python's socket module does not export it
#: ``struct tcp_info``: 8 one-byte fields, then u32 rto, ato, snd_mss, rcv_mss, unacked, ... On a LISTEN
#: socket Linux reports the accept queue length in tcpi_unacked (net/ipv4/tcp.c, tcp_get_info).
_TCP_INFO_UNACKED = struct.Struct("=I")
_TCP_INFO_UNACKED_OFFSET = 8 + 4 * 4
#: ``tcpi_last_data_sent``: milliseconds since this connection last sent data (the tenth u32).
_TCP_INFO_LAST_DATA_SENT_OFFSET = 8 + 9 * 4
#: How often the accept queue length is re-read while it drains. It has no readiness event, so this is a
#: bounded poll over a few milliseconds at most, once per process lifetime.
_QUEUE_POLL = 0.001


class _SockFilter(ctypes.Structure):
    _fields_ = (("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32))


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter)))


_BPF_RET_K = 0x06  # BPF_RET | BPF_K: "return k bytes of the packet"; k=0 drops it
_BPF_LDB_ABS = 0x30  # BPF_LD | BPF_B | BPF_ABS: load the byte at offset k
_BPF_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
_BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_TCP_FLAGS = 13  # a TCP socket filter sees the packet from the TCP header on; flags are its 14th byte
_SYN, _ACK = 0x02, 0x10
#: Drop a segment whose flags have SYN without ACK (a new connection); keep everything else.
_DROP_PURE_SYN = (
    (_BPF_LDB_ABS, 0, 0, _TCP_FLAGS),
    (_BPF_AND_K, 0, 0, _SYN | _ACK),
    (_BPF_JEQ_K, 0, 1, _SYN),  # pure SYN: fall through to "drop"; otherwise skip to "keep"
    (_BPF_RET_K, 0, 0, 0),
    (_BPF_RET_K, 0, 0, 0xFFFFFFFF),
)


def bind(host: str, port: int, backlog: int) -> socket.socket:
    """Create, bind and listen; raises ``OSError`` (port taken, bad address) before anything else starts."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def refuse_new_connections(sock: socket.socket) -> bool:
    """Drop new SYNs to ``sock`` from now on; False where the kernel does not support it.

    Only a *pure* SYN (SYN set, ACK clear) is dropped. The last ACK of a handshake already under way goes to
    the listener too, and dropping it would leave that client believing it is connected while the server
    never completes the connection: its request would meet a reset when the listener closes. Let through, the
    handshake completes, the connection joins the accept queue, and it is served.
    """
    if not sys.platform.startswith("linux"):
        return False
    program = (_SockFilter * len(_DROP_PURE_SYN))(*(_SockFilter(*op) for op in _DROP_PURE_SYN))
    fprog = _SockFprog(len(_DROP_PURE_SYN), ctypes.cast(program, ctypes.POINTER(_SockFilter)))
    try:
        sock.setsockopt(
            socket.SOL_SOCKET, SO_ATTACH_FILTER, ctypes.string_at(ctypes.addressof(fprog), ctypes.sizeof(fprog))
        )
    except OSError:
        return False
    return True


def accept_queue_length(sock: socket.socket) -> int | None:
    """Connections completed by the kernel but not yet accepted; None where TCP_INFO cannot tell."""
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, tcp_info, 104)
    except OSError:
        return None
    if len(raw) < _TCP_INFO_UNACKED_OFFSET + 4:
        return None
    (queued,) = _TCP_INFO_UNACKED.unpack_from(raw, _TCP_INFO_UNACKED_OFFSET)
    return int(queued)


async def quiesce(sock: socket.socket, deadline: float) -> str:
    """Stop new connections and wait (until loop-time ``deadline``) for queued ones to be accepted.

    Returns how it went, for the log: ``drained``, ``timeout`` or ``unsupported``.
    """
    if sock.fileno() < 0 or not refuse_new_connections(sock):
        return "unsupported"
    loop = asyncio.get_running_loop()
    # A kernel counter with no event to wait on: a bounded poll of a few milliseconds, once per process.
    while (queued := accept_queue_length(sock)) and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(_QUEUE_POLL)
    if queued is None:
        return "unsupported"
    return "drained" if queued == 0 else "timeout"


def sent_within(transport: asyncio.BaseTransport, seconds: float) -> bool:
    """True when the connection sent data (a response) less than ``seconds`` ago, per TCP_INFO (Linux).

    Such an idle keep-alive connection is *warm*: its client is probably between two requests, and its next
    one may be on the wire. Where TCP_INFO cannot tell, False: the connection is closed at once as before.
    """
    tcp_info = getattr(socket, "TCP_INFO", None)
    sock = transport.get_extra_info("socket")
    if tcp_info is None or sock is None:
        return False
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, tcp_info, 104)
    except (OSError, ValueError):
        return False
    if len(raw) < _TCP_INFO_LAST_DATA_SENT_OFFSET + 4:
        return False
    (millis,) = _TCP_INFO_UNACKED.unpack_from(raw, _TCP_INFO_LAST_DATA_SENT_OFFSET)
    return bool(millis < seconds * 1000)


def unread_bytes(transport: asyncio.BaseTransport) -> int:
    """Bytes the client sent that the server has not read yet (0 when unknown).

    An "idle" keep-alive connection with unread bytes is not idle: its client's next request is already in the
    kernel's buffer, waiting for the event loop's next read. Closing it would lose that request (EOF for the
    client), so it is treated like a fresh connection: its request is served, with ``Connection: close``.
    """
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")  # SIOCINQ on Linux TCP sockets
    except (OSError, ValueError):
        return 0
    return int(struct.unpack("i", raw)[0])
