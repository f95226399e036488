"""The service under test: any command line with ``{port}`` in it, started, probed, signalled and ended by PID.

The service runs in a session (process group) of its own so that, whatever happens, the cleanup can end the
service *and* any children it forked (gunicorn's workers, a shell's child) without touching anything else.
Signals during a measurement go to the main PID only, as the kubelet's container runtime sends them to PID 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lameduck.errors import LameduckError
from lameduck.verify.client import RequestFailedError, get

HOST = "127.0.0.1"
PORT_PLACEHOLDER = "{port}"


class TargetError(LameduckError):
    """The service could not be started or did not become ready; the message carries its output's tail."""


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL it if verify/rollout dies, even by SIGKILL (PR_SET_PDEATHSIG).

    The service runs in a session of its own, so a Ctrl-C at the terminal does not reach it; this makes sure
    no service outlives the tool that started it, whatever ends the tool.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def free_port(host: str = HOST) -> int:
    """A port nothing listens on right now (the service binds it a moment later; a clash fails loudly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_command(command: Sequence[str]) -> None:
    """Refuse a command the tools cannot drive (raised before anything starts)."""
    if not command:
        raise ValueError("COMMAND is missing: put the service's command line after `--`")
    if not any(PORT_PLACEHOLDER in part for part in command):
        raise ValueError(f"COMMAND must contain {PORT_PLACEHOLDER} where the port goes (got: {' '.join(command)})")


@dataclass
class Target:
    """One run of the service. ``t0`` is the ``perf_counter`` origin shared with the load client."""

    command: Sequence[str]
    port: int = field(default_factory=free_port)
    env: dict[str, str] | None = None
    proc: asyncio.subprocess.Process | None = None
    log_path: Path | None = None
    signalled_at: list[tuple[int, float]] = field(default_factory=list)
    exited_at: float | None = None
    exit_code: int | None = None
    killed: bool = False

    @property
    def argv(self) -> list[str]:
        return [part.replace(PORT_PLACEHOLDER, str(self.port)) for part in self.command]

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the service was not started"
        return self.proc.pid

    async def start(self) -> None:
        fd, name = tempfile.mkstemp(prefix="lameduck-target-", suffix=".log")
        self.log_path = Path(name)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except OSError as exc:
            raise TargetError(f"cannot start {self.argv[0]!r}: {exc}") from None
        finally:
            os.close(fd)

    async def wait_ready(self, path: str, timeout: float) -> float:
        """Poll ``path`` until it answers 2xx; returns the seconds it took. Fails early if the service dies."""
        assert self.proc is not None
        began = time.perf_counter()
        deadline = began + timeout
        last = "no answer yet"
        while time.perf_counter() < deadline:
            if self.proc.returncode is not None:
                raise TargetError(
                    f"the service exited with code {self.proc.returncode} before it was ready{self.tail()}"
                )
            try:
                response = await get(HOST, self.port, path, timeout=max(0.1, min(2.0, deadline - time.perf_counter())))
                if 200 <= response.status < 300:
                    return time.perf_counter() - began
                last = f"HTTP {response.status}"
            except RequestFailedError as exc:
                last = str(exc.failure)
            await asyncio.sleep(0.02)
        raise TargetError(f"{path} did not answer 2xx within {timeout:g} s (last: {last}){self.tail()}")

    def send(self, sig: int) -> float:
        """Send ``sig`` to the service's main PID; returns ``perf_counter()`` at the moment it was sent."""
        at = time.perf_counter()
        if self.proc is not None and self.proc.returncode is None:
            os.kill(self.pid, sig)
        self.signalled_at.append((sig, at))
        return at

    async def wait_exit(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` for the service to exit on its own; ``None`` when it did not."""
        assert self.proc is not None
        if self.exit_code is None:
            try:
                async with asyncio.timeout(max(0.0, timeout)):
                    code = await self.proc.wait()
            except TimeoutError:
                return None
            self.exited_at = time.perf_counter()
            self.exit_code = code
        return self.exit_code

    async def stop(self) -> None:
        """End the service and everything in its session (SIGKILL), whatever state it is in. Idempotent."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self.proc.wait()
        if self.exit_code is None and self.proc.returncode is not None:
            self.exited_at = self.exited_at or time.perf_counter()
            self.exit_code = self.proc.returncode

    def output(self, limit: int = 4000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-limit:]

    def tail(self, lines: int = 15) -> str:
        text = self.output().rstrip()
        if not text:
            return ""
        return "; its output ends with:\n    " + "\n    ".join(text.splitlines()[-lines:])

    def discard(self) -> None:
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
