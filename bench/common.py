"""Shared pieces: start a server (lameduck or bare uvicorn) on a free port, idle connections, timing, results.

Every process started here is killed by PID in a ``finally`` block (``running``), every wait is bounded, and all
traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
APP = "bench.apps:app"

LAMEDUCK = "lameduck"
BARE = "bare"
KINDS = (LAMEDUCK, BARE)
LABELS = {LAMEDUCK: "lameduck", BARE: "bare uvicorn"}

#: Both servers close keep-alive connections idle this long (uvicorn's default, and lameduck's).
KEEP_ALIVE_TIMEOUT = 5.0
#: Longest wait for a freshly started server to answer ``GET /``.
READY_TIMEOUT = 20.0
#: Longest wait for a killed server to be reaped.
REAP_TIMEOUT = 5.0
#: CPU the servers are pinned to (when taskset exists and there are at least two CPUs); the load generator
#: gets ``CLIENT_CPU``.
SERVER_CPU = 0
CLIENT_CPU = 1
#: Other processes using more than this many CPUs on average during a benchmark make its figures suspect.
NOISY_FOREIGN_CPUS = 0.15


class BenchError(RuntimeError):
    """A benchmark could not produce a valid measurement (not the same as missing a target)."""


# -- environment ------------------------------------------------------------------------------------------------


def pinning_available() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def pin(cpu: int | None) -> list[str]:
    """A ``taskset`` prefix pinning a command to ``cpu`` (empty when pinning is unavailable or not asked)."""
    if cpu is None or not pinning_available():
        return []
    return ["taskset", "-c", str(cpu)]


def raise_nofile_limit() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit (children inherit it); return the new limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    for candidate in (target, 65536, 16384):
        if candidate <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (candidate, hard))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def free_port() -> int:
    """A port that was free a moment ago (both servers are given an explicit port the same way)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def child_env() -> dict[str, str]:
    """The environment for servers: ours minus ``LAMEDUCK_*``, so only the flags shown configure lameduck."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMEDUCK_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def lameduck_executable() -> list[str]:
    script = Path(sys.executable).parent / "lameduck"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lameduck"]


def server_command(kind: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    """The command line for ``kind``: the same app and the same logging for both servers."""
    if kind == BARE:
        base = [sys.executable, "-m", "uvicorn", APP, "--host", HOST, "--port", str(port)]
        return [*base, "--no-access-log", "--log-level", "warning", *extra]
    if kind == LAMEDUCK:
        base = [*lameduck_executable(), "serve", APP, "--host", HOST, "--port", str(port)]
        return [*base, "--log-level", "warning", *extra]
    raise ValueError(f"unknown server kind {kind!r}")


def shown_command(kind: str, extra: Sequence[str] = ()) -> str:
    """The command as a person would type it, for BENCHMARKS.md."""
    if kind == BARE:
        cmd = f"python -m uvicorn {APP} --host {HOST} --port P --no-access-log --log-level warning"
    else:
        cmd = f"lameduck serve {APP} --host {HOST} --port P --log-level warning"
    return " ".join([cmd, *extra])


def shown_commands(lameduck_flags: Sequence[str] = ()) -> dict[str, str]:
    """Both servers' commands for a Result, lameduck with ``lameduck_flags``."""
    return {LAMEDUCK: shown_command(LAMEDUCK, lameduck_flags), BARE: shown_command(BARE)}


# -- servers ----------------------------------------------------------------------------------------------------


@dataclass
class Server:
    kind: str
    port: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    command: list[str]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, limit: int = 2000) -> str:
        with contextlib.suppress(OSError, ValueError):
            self.log.flush()
            self.log.seek(0)
            return self.log.read().decode(errors="replace")[-limit:]
        return ""

    def rss_kib(self) -> int:
        """VmRSS of the server process, in KiB (from /proc/PID/status)."""
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise BenchError(f"no VmRSS for pid {self.pid}")


def start_server(kind: str, *, extra: Sequence[str] = (), cpu: int | None = SERVER_CPU) -> Server:
    """Start ``kind`` on a free port and return once it answers ``GET /`` with 200 (bounded wait)."""
    last_error: Exception | None = None
    for _attempt in range(3):  # a free port can be taken between free_port() and the bind: retry a few times
        port = free_port()
        command = [*pin(cpu), *server_command(kind, port, extra)]
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop_server
        proc = subprocess.Popen(command, cwd=REPO, env=child_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        server = Server(kind, port, proc, log, command)
        try:
            wait_ready(server)
        except BenchError as exc:
            last_error = exc
            stop_server(server)
            continue
        return server
    raise BenchError(f"could not start {kind}: {last_error}")


def wait_ready(server: Server, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(
                f"{server.kind} exited with {server.proc.returncode} before answering: {server.log_tail()}"
            )
        try:
            status, _ = http_get(server.port, "/", timeout=1.0)
        except OSError:
            time.sleep(0.02)
            continue
        if status == 200:
            return
        time.sleep(0.02)
    raise BenchError(f"{server.kind} did not answer GET / within {timeout:g} s: {server.log_tail()}")


def stop_server(server: Server) -> None:
    """SIGKILL ``server`` by PID if it is still running, reap it, close its log."""
    try:
        if server.proc.poll() is None:
            server.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(timeout=REAP_TIMEOUT)
    finally:
        server.log.close()


@contextlib.contextmanager
def running(kind: str, *, extra: Sequence[str] = (), cpu: int | None = SERVER_CPU) -> Iterator[Server]:
    server = start_server(kind, extra=extra, cpu=cpu)
    try:
        yield server
    finally:
        stop_server(server)


class ExitWatch:
    """Blocks in ``waitpid`` on a thread, so the exit instant is taken the moment the kernel reports it."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.exited_at: float | None = None
        self.returncode: int | None = None
        self._thread = threading.Thread(target=self._wait, name=f"exit-watch-{proc.pid}", daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        returncode = self.proc.wait()  # no timeout: a blocking waitpid, no polling interval
        self.exited_at = time.perf_counter()
        self.returncode = returncode

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return self.exited_at is not None


def sigterm(server: Server) -> float:
    """Send SIGTERM; return the ``perf_counter`` instant it was sent."""
    sent = time.perf_counter()
    os.kill(server.pid, signal.SIGTERM)
    return sent


# -- HTTP clients -----------------------------------------------------------------------------------------------


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def request_bytes(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: lameduck-bench\r\n\r\n".encode()


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status and lower-cased headers of a response head (without the final blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read exactly one response with a Content-Length body from a blocking socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise BenchError("connection closed before the response head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            raise BenchError("connection closed inside the response body")
        body += chunk
    return status, headers, body


def open_idle_connections(port: int, count: int, *, timeout: float = 10.0) -> list[socket.socket]:
    """Open ``count`` keep-alive connections, each after one complete ``GET /`` (so each is idle).

    Raises ``BenchError`` if any request fails or the whole thing takes longer than ``timeout``.
    """
    socks: list[socket.socket] = []
    deadline = time.monotonic() + timeout
    request = request_bytes("/")
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                raise BenchError(f"opening {count} connections took longer than {timeout:g} s")
            sock = socket.create_connection((HOST, port), timeout=5.0)
            socks.append(sock)
            sock.sendall(request)
            status, headers, _ = read_response(sock)
            if status != 200 or headers.get("connection", "").lower() == "close":
                raise BenchError(f"idle connection setup: status {status}, headers {headers}")
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks: Sequence[socket.socket]) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()


# -- statistics and results -------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def p90(values: Sequence[float]) -> float:
    """90th percentile, linear interpolation between order statistics (``quantiles(method='inclusive')``)."""
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=10, method="inclusive")[8])


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or not math.isfinite(a) or not math.isfinite(b):
        return None
    return a / b


@dataclass
class Result:
    """One benchmark's outcome: the headline figure per server, the ratio and the raw samples."""

    name: str
    title: str
    target: str
    unit: str
    lameduck: float | None = None
    bare: float | None = None
    ratio: float | None = None
    passed: bool | None = None  # None: no verdict (the benchmark failed to run)
    lameduck_cell: str = ""
    bare_cell: str = ""
    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    commands: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    #: Average CPUs used by other processes, and stolen by the hypervisor, while this benchmark ran.
    foreign_cpus: float | None = None
    steal_cpus: float | None = None
    #: Benchmark-specific data a report section renders (e.g. the rollout matrix); empty for most benchmarks.
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.error is not None:
            return "ERROR"
        if self.passed is None:
            return "n/a"
        return "pass" if self.passed else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "lameduck": self.lameduck,
            "bare": self.bare,
            "ratio": self.ratio,
            "verdict": self.verdict,
            "samples": self.samples,
        }


def fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


# -- other load on the machine ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuSnapshot:
    """Machine-wide CPU seconds (user+nice+system, and steal) and this process's own plus its reaped children's."""

    at: float
    busy: float
    steal: float
    own: float

    @classmethod
    def take(cls) -> CpuSnapshot:
        busy = steal = 0.0
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open("/proc/stat", encoding="ascii") as stat:
                fields = [int(x) for x in stat.readline().split()[1:]]
            hz = os.sysconf("SC_CLK_TCK")
            busy = (fields[0] + fields[1] + fields[2]) / hz
            steal = fields[7] / hz if len(fields) > 7 else 0.0
        own = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            own += usage.ru_utime + usage.ru_stime
        return cls(time.perf_counter(), busy, steal, own)

    def since(self, earlier: CpuSnapshot) -> tuple[float, float]:
        """(average CPUs used by other processes, average CPUs stolen by the hypervisor) between the two."""
        elapsed = max(self.at - earlier.at, 1e-9)
        foreign = max(0.0, (self.busy - earlier.busy) - (self.own - earlier.own)) / elapsed
        return foreign, max(0.0, self.steal - earlier.steal) / elapsed
