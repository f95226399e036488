"""A real load balancer for ``lameduck rollout``: HAProxy as a child process, driven through its runtime API.

A rolling deploy on one machine is modelled on Kubernetes. The replicas sit behind HAProxy in one of two modes:

- ``tcp`` is kube-proxy. Kubernetes Services balance *connections*: conntrack pins an established connection to
  the endpoint it was first sent to, so a client's keep-alive connection keeps reaching the same pod even after
  the pod left the Endpoints. Only new connections go to the remaining endpoints. HAProxy in TCP mode does the
  same: it picks a server per connection and splices bytes until either side closes.
- ``http`` is an ingress controller (nginx, HAProxy ingress, Envoy). It balances *requests*: keep-alive on both
  sides, each request on a client connection may go to a different server, and connections to the servers are
  pooled and reused (``http-reuse safe``).

What the orchestrator relies on (pinned by tests/integration/test_haproxy.py, against HAProxy 2.6):

- A replica is added with :meth:`HAProxy.add_server` and gets traffic only once its first readiness check has
  passed, like a pod that enters the Endpoints when it becomes Ready. (A dynamic server that simply leaves
  maintenance is UP at once, before any check, so ``add_server`` takes it through *drain* and forces it DOWN
  first: see there.)
- :meth:`HAProxy.remove` is endpoint removal: the server goes to maintenance. No new connection (tcp) or request
  (http) is sent to it, and nothing already open is cut: in tcp mode an open client connection keeps working,
  as it does through conntrack. HAProxy only cuts sessions when asked to (``shutdown sessions``,
  ``on-marked-down shutdown-sessions``), and this module never asks.
- The readiness check (HTTP GET on ``check_path``, any 2xx passes) keeps running, so a replica that fails its
  readiness is taken out after ``fall`` failed checks, without the orchestrator.
- ``retries`` and ``option redispatch`` are HAProxy's usual production settings: a connect that is refused (the
  replica closed its listener but is still marked UP) is retried on another server, at once (HAProxy 2.6
  redispatches the first retry when no persistence ties the client to the server, and skips the turn-around
  pause that a retry on the same server takes). The client never sees the refusal; ``ServerStat.redispatches``
  counts it. kube-proxy has no such retry (the client gets the RST or, here, a close; an ingress answers 503):
  set ``retries=0`` to model that strictly.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import shutil
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from lameduck.errors import ConfigError, LameduckError

Mode = Literal["tcp", "http"]

#: The one backend every replica is added to, and the frontend clients connect to.
BACKEND = "be"
FRONTEND = "fe"

#: Names the haproxy executable to use instead of searching for one.
HAPROXY_ENV = "LAMEDUCK_HAPROXY"
_CANDIDATES = ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")
_MISSING = (
    "haproxy not found on PATH; install it: apt-get install -y haproxy (Debian/Ubuntu), dnf install haproxy, "
    "or brew install haproxy"
)
#: sockaddr_un.sun_path is 108 bytes on Linux (104 on macOS); HAProxy refuses longer paths.
_MAX_SOCKET_PATH = 100
#: The bytes of haproxy's stderr quoted in an error message.
_STDERR_TAIL = 2000


class HAProxyError(LameduckError):
    """HAProxy could not be started, or its runtime API refused a command; the message quotes HAProxy."""


class HAProxyMissingError(HAProxyError):
    """No haproxy executable was found; the message says how to install one."""

    def __init__(self) -> None:
        super().__init__(_MISSING)


def find_haproxy(environ: Mapping[str, str] = os.environ) -> str:
    """The haproxy executable: ``LAMEDUCK_HAPROXY`` if set (a build of one's own), else PATH, then the sbin
    directories that are often not on a user's PATH."""
    chosen = environ.get(HAPROXY_ENV)
    if chosen:
        if os.path.isfile(chosen) and os.access(chosen, os.X_OK):
            return chosen
        raise HAProxyMissingError
    found = shutil.which("haproxy")
    if found:
        return found
    for candidate in _CANDIDATES:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise HAProxyMissingError


def _count(row: dict[str, str], column: str) -> int:
    value = row.get(column) or "0"
    return int(value) if value.isdigit() else 0


def _ms(seconds: float) -> str:
    """HAProxy time syntax; milliseconds keep sub-second intervals exact."""
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass
class HAProxyConfig:
    """One frontend on 127.0.0.1:``port`` and one backend ``be`` to which replicas are added at run time."""

    mode: Mode
    port: int
    check_path: str = "/health/ready"
    #: Kubernetes probes every 10 s by default (periodSeconds); 1 s keeps the same shape at simulation speed.
    #: It is also the check's timeout (HAProxy uses ``inter`` when ``timeout check`` is unset).
    check_interval: float = 1.0
    #: The interval while a server is DOWN, including a just-added one. The kubelet runs a container's first
    #: readiness probe right away (initialDelaySeconds 0), so a new replica should join as soon as it is ready,
    #: not one ``check_interval`` later (HAProxy's first check of a dynamic server waits one interval).
    down_interval: float = 0.1
    #: Kubernetes' defaults: successThreshold 1 (Ready at the first passing probe), failureThreshold 3.
    rise: int = 1
    fall: int = 3
    #: Replicas are local: a connect either succeeds or is refused at once; 1 s only bounds the unexpected.
    connect_timeout: float = 1.0
    #: A common production value; far longer than any request a scenario sends.
    client_timeout: float = 30.0
    server_timeout: float = 30.0
    maxconn: int = 4096
    #: HAProxy's usual production settings (3 is also its built-in default): retry a failed connect, on another
    #: server (``option redispatch``). 0 models kube-proxy, which never retries.
    retries: int = 3
    redispatch: bool = True
    #: ``safe`` is HAProxy's default: a client's first request gets its own server connection, later ones may
    #: reuse idle pooled connections. http mode only.
    http_reuse: Literal["never", "safe", "aggressive", "always"] = "safe"

    def __post_init__(self) -> None:
        if self.mode not in ("tcp", "http"):
            raise ConfigError("--lb", f"must be tcp or http, not {self.mode!r}")
        if not 0 < self.port < 65536:
            raise ConfigError("HAProxyConfig.port", f"must be a TCP port (1-65535), not {self.port}")
        if not self.check_path.startswith("/") or any(c.isspace() for c in self.check_path):
            raise ConfigError(
                "HAProxyConfig.check_path", f"must be an absolute path without spaces: {self.check_path!r}"
            )
        if min(self.check_interval, self.down_interval, self.connect_timeout) <= 0:
            raise ConfigError("HAProxyConfig", "check_interval, down_interval and connect_timeout must be positive")
        if self.rise < 1 or self.fall < 1 or self.retries < 0 or self.maxconn < 1:
            raise ConfigError("HAProxyConfig", "rise, fall and maxconn must be at least 1; retries at least 0")

    def server_options(self, check_port: int | None = None) -> str:
        """The keywords of every ``add server``: dynamic servers inherit nothing from ``default-server`` (2.6)."""
        options = (
            f"check inter {_ms(self.check_interval)} downinter {_ms(min(self.check_interval, self.down_interval))} "
            f"rise {self.rise} fall {self.fall}"
        )
        return options if check_port is None else f"{options} port {check_port}"

    def render(self, admin_socket: str | os.PathLike[str]) -> str:
        """The haproxy.cfg text. The backend starts empty: every replica is a dynamic server."""
        http = self.mode == "http"
        lines = [
            "# Written by lameduck (verify/haproxy.py) for one rollout; HAProxy runs in the foreground (-db).",
            "global",
            # No ``log`` line: in the foreground HAProxy already prints alerts and server state changes to stderr,
            # which start() sends to a file in the workdir; per-request logs would only cost time.
            f"    stats socket {os.fspath(admin_socket)} mode 600 level admin",
            "    stats timeout 10s",
            f"    maxconn {self.maxconn}",
            "",
            "defaults",
            f"    mode {self.mode}",
            f"    maxconn {self.maxconn}",
            f"    timeout connect {_ms(self.connect_timeout)}",
            f"    timeout client {_ms(self.client_timeout)}",
            f"    timeout server {_ms(self.server_timeout)}",
            f"    retries {self.retries}",
            "    option redispatch" if self.redispatch else "    no option redispatch",
        ]
        if http:
            lines += [
                "    option http-keep-alive",
                f"    http-reuse {self.http_reuse}",
                # The default, written out: retry only connects that failed before the request was sent.
                "    retry-on conn-failure",
            ]
        lines += [
            "",
            f"frontend {FRONTEND}",
            f"    bind 127.0.0.1:{self.port}",
            f"    default_backend {BACKEND}",
            "",
            f"backend {BACKEND}",
            # A dynamic load-balancing algorithm: ``add server`` refuses backends whose algorithm is static.
            "    balance roundrobin",
            # The readiness probe, in both modes: an HTTP/1.1 GET where any 2xx passes (as a kubelet httpGet probe
            # accepts 200-399; replicas answer 200 or 503).
            "    option httpchk",
            f"    http-check send meth GET uri {self.check_path} ver HTTP/1.1 hdr Host localhost",
            "    http-check expect status 200-299",
            "",
        ]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ServerStat:
    """One server's row of ``show stat``: the fields that explain a state."""

    name: str
    #: HAProxy's own words: ``UP``, ``DOWN``, ``MAINT``, ``DRAIN``, ``NOLB``, or a transition such as ``UP 1/3``
    #: (up, one failed check towards ``fall``) or ``DOWN 1/2`` (down, passing checks towards ``rise``).
    status: str
    check_status: str  # L7OK, L7STS (wrong status), L4CON (refused), L4TOUT, INI (not checked yet), ...
    check_code: str  # the HTTP status of the last check, when there was one
    sessions: int  # scur: sessions open to this server now
    #: wredis: connects to this server that failed and were sent to another server instead (the client saw
    #: nothing). A replica that closed its listener while still UP shows here.
    redispatches: int = 0
    retries: int = 0  # wretr: connects retried on this same server
    connect_errors: int = 0  # econ: connects that failed for good (the client got an error)

    @property
    def state(self) -> str:
        """The routing state: a server in transition still routes as the state it is in (``UP 1/3`` is UP)."""
        return self.status.split(" ", 1)[0] if self.status else "UNKNOWN"


class HAProxy:
    """One HAProxy process for one rollout, in ``workdir`` (config, admin socket, stderr log).

    Every method is bounded in time; the process is ended by its own PID only.
    """

    def __init__(
        self,
        config: HAProxyConfig,
        workdir: str | os.PathLike[str],
        *,
        executable: str | None = None,
        command_timeout: float = 5.0,
        start_timeout: float = 10.0,
    ) -> None:
        self.config = config
        self.workdir = Path(workdir)
        self.executable = executable
        self.command_timeout = command_timeout
        self.start_timeout = start_timeout
        self.config_path = self.workdir / "haproxy.cfg"
        self.socket_path = self.workdir / "admin.sock"
        self.stderr_path = self.workdir / "haproxy.stderr"
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- process -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Write and validate the config, start HAProxy, and return once clients and the runtime API are served.

        Validation first (``haproxy -c``) so a bad config is reported with HAProxy's own message, not as a
        process that died during the readiness wait.
        """
        if self._proc is not None:
            raise HAProxyError("this HAProxy was already started")
        executable = self.executable or find_haproxy()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if len(os.fsencode(self.socket_path)) > _MAX_SOCKET_PATH:
            raise HAProxyError(f"workdir path too long for a unix socket ({self.socket_path}); use a shorter one")
        self.config_path.write_text(self.config.render(self.socket_path), encoding="utf-8")
        await self.validate(executable)

        with self.stderr_path.open("wb") as stderr:
            self._proc = await asyncio.create_subprocess_exec(
                executable,
                "-db",  # foreground, no daemon, no master: the PID we hold is the proxy itself
                "-f",
                str(self.config_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
            )
        try:
            await self._wait_serving()
        except BaseException:
            await self.stop()
            raise

    async def validate(self, executable: str | None = None) -> None:
        """``haproxy -c`` on the written config; raises with HAProxy's diagnostics when it is refused."""
        proc = await asyncio.create_subprocess_exec(
            executable or self.executable or find_haproxy(),
            "-c",
            "-f",
            str(self.config_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(self.start_timeout):
                out, _ = await proc.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise HAProxyError(f"haproxy -c -f {self.config_path} did not finish in {self.start_timeout:g}s") from None
        if proc.returncode != 0:
            text = out.decode(errors="replace").strip()
            raise HAProxyError(f"haproxy refused {self.config_path} (exit {proc.returncode}):\n{text}")

    async def _wait_serving(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = ""
        while True:
            if self._proc is None or self._proc.returncode is not None:
                code = None if self._proc is None else self._proc.returncode
                raise HAProxyError(f"haproxy exited during startup (exit {code}):\n{self.stderr_tail()}")
            try:
                async with asyncio.timeout(max(0.05, deadline - time.monotonic())):
                    _, writer = await asyncio.open_connection("127.0.0.1", self.config.port)
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
                    info = await self._exchange("show info")
                if "Name: HAProxy" in info:
                    return
                last = f"unexpected answer to 'show info': {info[:200]!r}"
            except (OSError, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise HAProxyError(
                    f"haproxy did not serve 127.0.0.1:{self.config.port} and {self.socket_path} within "
                    f"{self.start_timeout:g}s ({last}); its stderr:\n{self.stderr_tail()}"
                )
            await asyncio.sleep(0.02)

    def stderr_tail(self) -> str:
        """The end of HAProxy's stderr: alerts, warnings, and server state changes."""
        try:
            data = self.stderr_path.read_bytes()
        except OSError:
            return "(no stderr captured)"
        return data[-_STDERR_TAIL:].decode(errors="replace").strip() or "(empty)"

    async def stop(self, timeout: float = 5.0) -> int | None:
        """End HAProxy: SIGTERM (a hard stop: it closes every connection at once), SIGKILL if it lingers.

        A soft stop (SIGUSR1) would wait for tcp sessions up to the 30 s timeouts; the rollout is over when this
        is called, so nothing is left to drain. Returns the exit status (None if it was never started).
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        return proc.returncode

    # -- runtime API -----------------------------------------------------------------------------------------

    async def command(self, cmd: str) -> str:
        """Send one runtime API command and return HAProxy's whole answer.

        One command per connection: in non-interactive mode HAProxy answers and closes, so EOF ends the answer
        and no prompt parsing is needed.
        """
        if not self.running:
            raise HAProxyError(f"haproxy is not running; cannot send {cmd!r}")
        try:
            async with asyncio.timeout(self.command_timeout):
                return await self._exchange(cmd)
        except TimeoutError:
            raise HAProxyError(
                f"haproxy's runtime API did not answer {cmd!r} within {self.command_timeout:g}s"
            ) from None
        except OSError as exc:
            raise HAProxyError(f"haproxy's runtime API at {self.socket_path} failed on {cmd!r}: {exc}") from exc

    async def _exchange(self, cmd: str) -> str:
        reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
        try:
            writer.write(cmd.encode() + b"\n")
            await writer.drain()
            return (await reader.read()).decode(errors="replace")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _expect(self, cmd: str, *ok: str) -> None:
        """Run ``cmd``; anything but an empty answer or one of ``ok`` is HAProxy refusing it."""
        answer = (await self.command(cmd)).strip()
        if answer and answer not in ok:
            raise HAProxyError(f"haproxy refused {cmd!r}: {answer}")

    async def add_server(self, name: str, port: int, *, check_port: int | None = None) -> None:
        """Add a replica at 127.0.0.1:``port``; it gets traffic once its first readiness check passes.

        A dynamic server is created in maintenance with its checks off. Leaving maintenance sets it UP at once,
        before any check (a readiness-less Endpoint), and ``set server health down`` is ignored while in
        maintenance. So it goes maint -> drain (out of the balancing, checks allowed) -> forced DOWN -> ready:
        from there only a passing check makes it UP. ``check_port`` probes readiness on another port (a probe
        listener) than the one that serves traffic.
        """
        if not name or any(c.isspace() or c == "/" for c in name):
            raise HAProxyError(f"server name must be a non-empty word without '/', not {name!r}")
        server = f"{BACKEND}/{name}"
        await self._expect(
            f"add server {server} 127.0.0.1:{port} {self.config.server_options(check_port)}", "New server registered."
        )
        await self._expect(f"set server {server} state drain")
        await self._expect(f"set server {server} health down")
        await self._expect(f"enable health {server}")
        await self._expect(f"set server {server} state ready")

    async def remove(self, name: str) -> None:
        """Endpoint removal: maintenance, so no new connection or request goes there; open sessions go on."""
        await self._expect(f"set server {BACKEND}/{name} state maint")

    async def delete_server(self, name: str) -> bool:
        """Forget a replica that has exited; False (and it stays in maintenance, harmless) if HAProxy refuses.

        ``del server`` needs maintenance and no connection at all: an idle pooled connection (http mode) or a
        tcp session not yet closed makes HAProxy refuse. A server in maintenance gets no traffic, so leaving it
        there only costs a line in ``states()``.
        """
        await self.remove(name)
        answer = (await self.command(f"del server {BACKEND}/{name}")).strip()
        return answer == "Server deleted."

    async def stats(self) -> dict[str, ServerStat]:
        """Every server of the backend, from ``show stat`` CSV (columns found by their header names)."""
        answer = await self.command(f"show stat {BACKEND} 4 -1")
        lines = [line for line in answer.splitlines() if line.strip()]
        if not lines or not lines[0].startswith("# "):
            raise HAProxyError(f"unexpected 'show stat' answer: {answer[:200]!r}")
        rows = csv.DictReader([lines[0][2:], *lines[1:]])
        result: dict[str, ServerStat] = {}
        for row in rows:
            if row.get("pxname") != BACKEND or row.get("svname") in (None, "BACKEND", "FRONTEND"):
                continue
            name = row["svname"]
            result[name] = ServerStat(
                name=name,
                status=row.get("status") or "",
                check_status=row.get("check_status") or "",
                check_code=row.get("check_code") or "",
                sessions=_count(row, "scur"),
                redispatches=_count(row, "wredis"),
                retries=_count(row, "wretr"),
                connect_errors=_count(row, "econ"),
            )
        return result

    async def states(self) -> dict[str, str]:
        """Server name -> routing state: UP (gets traffic), DOWN (failed readiness), MAINT (removed), DRAIN...

        From ``show stat``'s status column, transitions folded into the state they are in (``UP 1/3`` -> UP).
        """
        return {name: stat.state for name, stat in (await self.stats()).items()}

    async def wait_up(self, name: str, timeout: float) -> float:
        """Wait until HAProxy routes to ``name``; returns the seconds it took. TimeoutError says why not."""
        started = time.monotonic()
        deadline = started + timeout
        stat: ServerStat | None = None
        while True:
            stat = (await self.stats()).get(name)
            now = time.monotonic()
            if stat is not None and stat.state == "UP":
                return now - started
            if now >= deadline:
                break
            await asyncio.sleep(min(0.02, max(0.0, deadline - now)))
        if stat is None:
            raise TimeoutError(f"haproxy has no server {name!r} after {timeout:g}s")
        check = f"{stat.check_status} {stat.check_code}".strip() or "none yet"
        raise TimeoutError(
            f"haproxy did not mark {name} UP within {timeout:g}s: status {stat.status!r}, last check {check} "
            f"(readiness GET {self.config.check_path} must answer 2xx)"
        )
