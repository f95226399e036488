"""Acceptance: second signal, signals during startup, startup failures and invalid settings (issue #2, item 6)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from lameduck.verify.client import get
from tests.conftest import REPO

pytestmark = pytest.mark.acceptance
HOST = "127.0.0.1"


@pytest.mark.parametrize(("first", "second"), [(signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, signal.SIGTERM)])
def test_second_signal_forces_the_deadline(serve: Any, first: int, second: int) -> None:
    svc = serve("tests.apps.basic:app", "--lame-duck", "2")

    async def scenario() -> tuple[int, float]:
        hung = asyncio.create_task(get(HOST, svc.port, "/hang", timeout=20))
        await asyncio.sleep(0.3)
        svc.send(first)
        await asyncio.sleep(0.5)
        forced = svc.send(second)
        response = await hung
        await asyncio.to_thread(svc.proc.wait, 10)
        return response.status, time.perf_counter() - forced

    status, elapsed = asyncio.run(scenario())
    assert svc.wait(5) == 1
    assert status == 503
    assert elapsed < 2.5, f"a forced stop took {elapsed:.2f} s (drain default is 23 s)"
    summary = svc.summary()
    assert summary["signal"] == signal.Signals(first).name
    assert summary["forced"] is True
    assert summary["aborted"] == {"request": 1}
    assert "hook ok done" in svc.stdout, "cleanup hooks run on the forced path too"


def test_sigterm_during_startup_aborts_it(serve: Any) -> None:
    svc = serve("tests.apps.basic:app", env={"APP_STARTUP_DELAY": "60"}, wait_ready=False)

    async def probe() -> tuple[int, int, bytes]:
        ready = await get(HOST, svc.port, "/health/ready")
        startup = await get(HOST, svc.port, "/health/startup")
        app = await get(HOST, svc.port, "/")
        return ready.status, startup.status, app.body

    deadline = time.monotonic() + 10
    while "lifespan startup" not in svc.stdout and time.monotonic() < deadline:
        time.sleep(0.02)
    assert asyncio.run(probe()) == (503, 503, b"starting\n")
    sent = svc.send(signal.SIGTERM)
    code = svc.wait(10)
    elapsed = time.perf_counter() - sent
    assert code == 0
    assert elapsed < 3.0
    assert "startup cancelled" in svc.stdout
    assert "hook ok done" in svc.stdout
    assert "lifespan shutdown" not in svc.stdout, "no lifespan shutdown for a startup that never completed"
    summary = svc.summary()
    assert summary["startup_aborted"] is True
    assert summary["outcome"] == "clean"


def test_lifespan_startup_failure_exits_3(serve: Any) -> None:
    svc = serve("tests.apps.basic:app", env={"APP_STARTUP_FAIL": "1"}, wait_ready=False)
    assert svc.wait(10) == 3
    summary = svc.summary()
    assert summary["outcome"] == "startup-failed"
    assert "database unreachable" in summary["startup_error"]
    assert "hook ok done" in svc.stdout


def test_failing_and_slow_hooks_make_exit_1_but_all_run(serve: Any) -> None:
    svc = serve("tests.apps.basic:app", env={"APP_HOOKS": "ok,slow,fail,last"})
    started = svc.send(signal.SIGTERM)
    assert svc.wait(10) == 1
    assert time.perf_counter() - started < 3.0, "the slow hook has a 0.5 s timeout"
    order = [line for line in svc.stdout if line.startswith("hook")]
    assert order == [
        "hook last start",
        "hook last done",
        "hook fail start",
        "hook slow start",
        "hook ok start",
        "hook ok done",
    ]
    summary = svc.summary()
    assert summary["failed_hooks"] == ["hook_fail", "hook_slow"]
    assert summary["aborted"] == {}
    assert svc.named("lameduck.hook.timeout")


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("LAMEDUCK_")}
    child_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "lameduck", *args],
        cwd=REPO,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


INVALID = [
    (["--port", "abc"], "--port", "0..65535"),
    (["--grace", "0"], "--grace", "0.001 ≤ s ≤ 3600"),
    (["--lame-duck", "-1"], "--lame-duck", "auto or 0 ≤ s ≤ grace"),
    (["--lame-duck", "40"], "--lame-duck", "≤ grace 30"),
    (["--drain-timeout", "40"], "--drain-timeout", "lame-duck 0 + drain 40 + cleanup 3 + margin 2 = 45 > grace 30"),
    (["--grace", "4"], "--grace", "raise --grace to ≥ 6"),
    (["--cleanup-timeout", "9999"], "--cleanup-timeout", "0 ≤ s ≤ 600"),
    (["--log-format", "xml"], "--log-format", "text|json"),
    (["--log-level", "loud"], "--log-level", "debug|info|warning|error"),
    (["--probe-port", "70000"], "--probe-port", "0..65535"),
    (["--ready-path", "health"], "--ready-path", "a path"),
    (["--watchdog", "-3"], "--watchdog", "0 ≤ s ≤ 600"),
    (["--keep-alive-timeout", "0"], "--keep-alive-timeout", "1..3600"),
    (["--http", "h3"], "--http", "auto|h11|httptools"),
    (["--no-such-flag"], "unrecognized arguments", ""),
]


@pytest.mark.parametrize(("args", "setting", "allowed"), INVALID, ids=[" ".join(a[0]) for a in INVALID])
def test_invalid_setting_exits_2_before_binding(args: list[str], setting: str, allowed: str) -> None:
    # Hold the port: if lameduck bound before validating it would fail with exit 3 ("cannot listen") instead.
    with socket.socket() as held:
        held.bind((HOST, 0))
        held.listen()
        port = held.getsockname()[1]
        result = _run_cli("serve", "tests.apps.basic:app", "--port", str(port), *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"one line expected, got: {result.stderr}"
    assert lines[0].startswith("lameduck: error: ")
    assert setting in lines[0]
    assert allowed in lines[0]


def test_invalid_environment_variable_is_named() -> None:
    result = _run_cli("serve", "tests.apps.basic:app", env={"LAMEDUCK_GRACE": "soon"})
    assert result.returncode == 2
    assert result.stderr.strip() == "lameduck: error: --grace (LAMEDUCK_GRACE): must be 0.001 ≤ s ≤ 3600 (got 'soon')"


def test_probe_port_equal_to_port_is_rejected() -> None:
    result = _run_cli("serve", "tests.apps.basic:app", "--port", "8123", "--probe-port", "8123")
    assert result.returncode == 2
    assert "--probe-port: must differ from --port" in result.stderr


def test_bad_app_path_is_a_usage_error() -> None:
    result = _run_cli("serve", "tests.apps.nope:app")
    assert result.returncode == 2
    assert result.stderr.startswith("lameduck: error: APP:")
    missing = _run_cli("serve")
    assert missing.returncode == 2
    assert "APP" in missing.stderr


def test_port_in_use_exits_3() -> None:
    with socket.socket() as held:
        held.bind((HOST, 0))
        held.listen()
        result = _run_cli("serve", "tests.apps.basic:app", "--port", str(held.getsockname()[1]))
    assert result.returncode == 3
    assert "cannot listen" in result.stderr


def test_version_and_help_show_env_vars_and_defaults() -> None:
    version = _run_cli("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("lameduck ")
    help_text = _run_cli("serve", "--help").stdout
    for needle in ("LAMEDUCK_DRAIN_TIMEOUT", "LAMEDUCK_PROBE_PORT", "default 30", "--lame-duck", "exit codes"):
        assert needle in help_text


def test_budget_command_explains_the_arithmetic() -> None:
    result = _run_cli("budget", "--grace", "30", env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert result.returncode == 0
    assert "lame-duck 5 + drain 20 + cleanup 3 + margin 2 = 30 ≤ grace 30" in result.stdout
    bad = _run_cli("budget", "--grace", "30", "--drain-timeout", "40", "--lame-duck", "5")
    assert bad.returncode == 2
    assert "lame-duck 5 + drain 40 + cleanup 3 + margin 2 = 50 > grace 30; lower --drain-timeout to ≤ 20" in bad.stderr
