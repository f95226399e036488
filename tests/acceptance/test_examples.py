"""Every example under examples/ runs as the README says."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lameduck.verify.client import get
from tests.conftest import REPO

pytestmark = pytest.mark.acceptance
HOST = "127.0.0.1"


def test_hello_example_serves_and_drains(serve: Any) -> None:
    svc = serve("examples.hello:app", "--lame-duck", "0.5")

    async def scenario() -> tuple[bytes, bytes, int]:
        hello = await get(HOST, svc.port, "/")
        slow = asyncio.create_task(get(HOST, svc.port, "/slow?s=1"))
        await asyncio.sleep(0.2)
        sent = svc.send(signal.SIGINT)
        # Signal delivery is asynchronous: poll (bounded) for the flip; test_shutdown holds it to 100 ms.
        while (ready := await get(HOST, svc.port, "/health/ready")).status == 200:
            assert time.perf_counter() - sent < 1.0
        return hello.body, (await slow).body, ready.status

    hello, slow, ready = asyncio.run(scenario())
    assert hello == b"hello\n"
    assert slow == b"slept 1 s; draining=True\n"
    assert ready == 503
    assert svc.wait(10) == 0
    assert "cleanup hook ran" in svc.stdout
    assert svc.summary()["outcome"] == "clean"


def test_run_api_example_runs_as_written(serve: Any) -> None:
    svc = serve(
        "",
        command=[sys.executable, "examples/run_api.py"],
        env={"LAMEDUCK_PORT": "0", "LAMEDUCK_LOG_FORMAT": "json"},
    )
    assert asyncio.run(get(HOST, svc.port, "/")).body == b"hello\n"
    svc.send(signal.SIGTERM)
    assert svc.wait(10) == 0
    assert svc.summary()["outcome"] == "clean"
    assert "cleanup hook ran" in svc.stdout
    assert svc.named("lameduck.budget")[0]["cleanup"] == 2


def readme_command(tool: str) -> list[str]:
    """The README's example command for ``lameduck TOOL``, joined across backslash continuations, as argv."""
    text = (REPO / "README.md").read_text()
    lines = iter(text.splitlines())
    for line in lines:
        if line.startswith(f"lameduck {tool} "):
            command = line
            while command.endswith("\\"):
                command = command[:-1] + next(lines).strip()
            return shlex.split(command)
    raise AssertionError(f"README.md has no `lameduck {tool} ...` command")


def run_as_written(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run a README command: `lameduck` is this checkout's CLI, output files go to tmp_path."""
    argv = [a.replace("lameduck", f"{sys.executable} -m lameduck") if a == "lameduck" else a for a in argv]
    argv = [part for a in argv for part in (a.split(" ") if a.startswith(sys.executable) else [a])]
    argv = [str(tmp_path / a) if a.endswith(".html") else a for a in argv]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=180, check=False)


def test_readme_verify_command_passes(tmp_path: Path) -> None:
    argv = readme_command("verify")
    result = run_as_written(argv, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "PASS all 6 scenarios passed" in result.stdout  # hung is N/A: the example has no --hang-path


def test_readme_rollout_command_loses_nothing(tmp_path: Path) -> None:
    argv = readme_command("rollout")
    result = run_as_written(argv, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "PASS 0 failed requests" in result.stdout
    assert (tmp_path / "rollout.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_worker_example_runs_as_written(serve: Any, tmp_path: Path) -> None:
    env = {"LAMEDUCK_BROKER": f"sqlite:///{tmp_path}/jobs.sqlite3"}
    fill = subprocess.run(
        [sys.executable, "-m", "examples.worker", "5"],
        cwd=REPO,
        env={**_clean_env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert fill.returncode == 0, fill.stderr
    assert "enqueued 5 emails and 1 report" in fill.stdout
    svc = serve(
        "",
        command=[
            sys.executable,
            "-m",
            "lameduck",
            "work",
            "examples.worker:worker",
            "--port",
            "0",
            "--log-format",
            "json",
        ],
        env=env,
    )
    deadline = time.monotonic() + 30
    while not any("report daily built" in line for line in svc.stdout):
        assert time.monotonic() < deadline, "\n".join(svc.stdout)
        time.sleep(0.05)
    svc.send(signal.SIGTERM)
    assert svc.wait(15) == 0
    assert svc.summary()["jobs"]["completed"] == 6
    assert sum("sent welcome" in line for line in svc.stdout) == 5


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LAMEDUCK_")}
