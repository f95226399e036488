"""Acceptance: the exit code does not depend on being PID 1 (uvicorn's does: 143, or 0 as PID 1)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, free_port

pytestmark = pytest.mark.acceptance


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--fork", "--pid", "--mount-proc", "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="this machine does not allow PID namespaces (unshare --pid)")
@pytest.mark.parametrize(("path", "expected"), [("/", 0), ("/hang", 1)])
def test_exit_code_is_the_same_as_pid_1(path: str, expected: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMEDUCK_")}
    env["PYTHONUNBUFFERED"] = "1"
    port = free_port()  # the PID namespace shares the host's network, so pick a free port
    cmd = [
        "unshare",
        "--fork",
        "--pid",
        "--mount-proc",
        sys.executable,
        "-c",
        # In the namespace the server is PID 1; it serves once, then gets SIGTERM from itself via os.kill(1).
        "import os, sys, threading, time, urllib.request;"
        "from lameduck.cli.main import main;"
        "assert os.getpid() == 1, os.getpid();"
        "t = threading.Thread(target=lambda: (time.sleep(1.5),"
        f"  threading.Thread(target=lambda: urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=10),"
        "   daemon=True).start(), time.sleep(0.5), os.kill(1, 15)), daemon=True); t.start();"
        f"sys.exit(main(['serve', 'tests.apps.basic:app', '--port', '{port}', '--grace', '6',"
        " '--drain-timeout', '0.5']))",
    ]
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == expected, result.stderr
    assert time.monotonic() - started < 20
    assert "lameduck.summary" in result.stderr
    assert signal.SIGTERM.name in result.stderr
