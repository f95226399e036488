"""Shared fixtures: start real ``lameduck serve`` processes on free ports and read their JSON events.

Every process started here is ended by PID in the fixture's teardown, whatever the test did.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def raise_fd_limit(wanted: int = 8192) -> None:
    """Thousands of test connections need file descriptors; children inherit the raised limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, max(soft, wanted)) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@dataclass
class Service:
    """A running ``lameduck serve`` subprocess and what it has logged so far."""

    proc: subprocess.Popen[bytes]
    events: list[dict[str, Any]] = field(default_factory=list)
    stdout: list[str] = field(default_factory=list)
    raw_stderr: list[str] = field(default_factory=list)
    port: int = 0
    probe_port: int | None = None
    _changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, sig: int) -> float:
        """Send ``sig``; returns ``perf_counter()`` at the moment it was sent."""
        at = time.perf_counter()
        os.kill(self.proc.pid, sig)
        return at

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        # Let the reader threads drain the pipes.
        deadline = time.monotonic() + 5
        while not self._eof_seen() and time.monotonic() < deadline:
            time.sleep(0.01)
        return code

    def _eof_seen(self) -> bool:
        with self._changed:
            return getattr(self, "_eof", 0) >= 2

    def named(self, name: str) -> list[dict[str, Any]]:
        with self._changed:
            return [e for e in self.events if e.get("event") == name]

    def wait_event(self, name: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for e in self.events:
                    if e.get("event") == name:
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and getattr(self, "_eof", 0) >= 2):
                    raise AssertionError(f"no {name} event within {timeout} s; stderr:\n" + self.log_text())
                self._changed.wait(min(left, 0.1))

    def summary(self) -> dict[str, Any]:
        found = self.named("lameduck.summary")
        assert len(found) == 1, f"expected exactly one summary line, got {len(found)}:\n{self.log_text()}"
        return found[0]

    def log_text(self) -> str:
        with self._changed:
            return "\n".join(self.raw_stderr[-200:])

    def _read(self, stream: Any, into_events: bool) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            with self._changed:
                if into_events:
                    self.raw_stderr.append(line)
                    with contextlib.suppress(ValueError):  # uvicorn or a traceback: kept in raw_stderr
                        self.events.append(json.loads(line))
                else:
                    self.stdout.append(line)
                self._changed.notify_all()
        with self._changed:
            self._eof = getattr(self, "_eof", 0) + 1
            self._changed.notify_all()


def start_service(
    app: str,
    *args: str,
    env: dict[str, str] | None = None,
    wait_ready: bool = True,
    timeout: float = 20.0,
    command: list[str] | None = None,
) -> Service:
    """Start ``lameduck serve APP --port 0 --log-format json ARGS`` from the repo root.

    ``command`` replaces that command line (configure it through ``env``: LAMEDUCK_PORT=0 ...).
    """
    cmd = command or [sys.executable, "-m", "lameduck", "serve", app, "--port", "0", "--log-format", "json", *args]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("LAMEDUCK_")}
    child_env.pop("KUBERNETES_SERVICE_HOST", None)
    child_env["PYTHONUNBUFFERED"] = "1"
    child_env.update(env or {})
    proc = subprocess.Popen(cmd, cwd=REPO, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    service = Service(proc)
    _RUNNING.append(service)
    threading.Thread(target=service._read, args=(proc.stderr, True), daemon=True).start()
    threading.Thread(target=service._read, args=(proc.stdout, False), daemon=True).start()
    listening = [service.wait_event("lameduck.listening", timeout)]
    if "--probe-port" in args:
        deadline = time.monotonic() + timeout
        while len(listening) < 2 and time.monotonic() < deadline:
            listening = service.named("lameduck.listening")
            time.sleep(0.01)
    for event in listening:
        port = int(event["addresses"][0].rsplit(":", 1)[1])
        if event["frontend"] == "app":
            service.port = port
        else:
            service.probe_port = port
    if wait_ready:
        service.wait_event("lameduck.phase.ready", timeout)
    return service


_RUNNING: list[Service] = []


@pytest.fixture
def serve() -> Iterator[Any]:
    """Factory fixture: ``serve("tests.apps.basic:app", "--lame-duck", "1")``; kills leftovers by PID."""
    raise_fd_limit()
    start = len(_RUNNING)
    try:
        yield start_service
    finally:
        for service in _RUNNING[start:]:
            if service.proc.poll() is None:
                service.proc.send_signal(signal.SIGKILL)
                service.proc.wait(timeout=10)
        del _RUNNING[start:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: tests needing a service must run (.ci/run starts the services)."""
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped and exitstatus == 0:
        reporter.write_line(f"CI=true: {skipped} test(s) were skipped; in CI every test must run", red=True)
        session.exitstatus = 1
