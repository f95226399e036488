"""``lameduck verify`` end to end: real services on real ports, real signals, judged from the outside.

lameduck serve must pass every scenario; bare uvicorn must fail the ones it really fails (it never turns
readiness 503 and waits forever for a hung request), and verify must say so with exit code 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.acceptance

PY = sys.executable
LAMEDUCK_SERVE = [PY, "-m", "lameduck", "serve", "bench.apps:app", "--port", "{port}", "--grace", "8"]
UVICORN = [PY, "-m", "uvicorn", "bench.apps:app", "--port", "{port}"]


def verify(*args: str, command: list[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    argv = [PY, "-m", "lameduck", "verify", *args, "--", *command]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)


def scenarios(path: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(path.read_text())
    return {s["name"]: s for s in data["scenarios"]}


def test_lameduck_serve_passes_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "verify.json"
    html = tmp_path / "verify.html"
    result = verify(
        "--grace",
        "8",
        "--lame-duck",
        "1",
        "--slow-path",
        "/sleep?ms=1500",
        "--hang-path",
        "/hang",
        "--deadline",
        "3",  # lame-duck 1 + drain 2 (grace 8 - cleanup 3 - margin 2 - lame-duck 1)
        "--json",
        str(out),
        "--html",
        str(html),
        command=[*LAMEDUCK_SERVE, "--lame-duck", "1"],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = scenarios(out)
    assert set(found) == {
        "in-flight",
        "idle-keepalive",
        "busy-keepalive",
        "readiness",
        "listener-close",
        "hung",
        "second-signal",
    }
    assert all(s["verdict"] == "PASS" for s in found.values()), result.stdout
    figures = {name: s["figures"] for name, s in found.items()}
    assert figures["in-flight"]["completed"] == figures["in-flight"]["in_flight"] == 8
    assert figures["busy-keepalive"]["lost"] == 0
    assert figures["busy-keepalive"]["connection_close_share"] == 1.0
    assert figures["readiness"]["readiness_flip_s"] < 1.0
    assert figures["hung"]["exit_code"] == 1
    assert figures["hung"]["exit_after_s"] < 8
    assert figures["second-signal"]["exit_after_second_signal_s"] < 3
    assert "PASS" in result.stdout
    assert html.read_text().startswith("<!DOCTYPE html>")


def test_bare_uvicorn_fails_what_it_really_fails(tmp_path: Path) -> None:
    """uvicorn keeps readiness 200 until its listener closes, and waits for a hung request past any grace."""
    out = tmp_path / "verify.json"
    began = time.monotonic()
    result = verify(
        "--lame-duck",
        "2",
        "--grace",
        "3",
        "--scenario",
        "readiness",
        "--scenario",
        "hung",
        "--hang-path",
        "/hang",
        "--json",
        str(out),
        command=UVICORN,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    found = scenarios(out)
    assert found["readiness"]["verdict"] == "FAIL"
    failed = [c for c in found["readiness"]["checks"] if not c["passed"]]
    assert any(c["name"] == "readiness turned not-ready" for c in failed)
    assert found["hung"]["verdict"] == "FAIL"
    assert any("SIGKILLed" in c["detail"] for c in found["hung"]["checks"])
    assert time.monotonic() - began < 60  # the kill came at grace + tolerance, not never


def test_a_service_without_probes_in_any_language(tmp_path: Path) -> None:
    """Python's http.server has no probes and no graceful shutdown: verify still runs and reports the exit."""
    out = tmp_path / "verify.json"
    result = verify(
        "--no-probes",
        "--ready-path",
        "/",
        "--grace",
        "3",
        "--idle-connections",
        "20",
        "--json",
        str(out),
        command=[PY, "-m", "http.server", "--bind", "127.0.0.1", "{port}"],
    )
    found = scenarios(out)
    assert found["readiness"]["verdict"] == "N/A"
    assert "no readiness probe" in found["readiness"]["reason"]
    assert found["in-flight"]["verdict"] == "N/A"
    # SIGTERM's default action ends it at once: exit code 143, not 0, so the scenarios that ran fail.
    assert found["idle-keepalive"]["verdict"] == "FAIL"
    assert found["idle-keepalive"]["figures"]["exit_code"] == -15
    assert result.returncode == 1


@pytest.mark.parametrize(
    ("args", "command", "message"),
    [
        (["--grace", "0"], UVICORN, "argument --grace: must be seconds in 1..3600 (got '0')"),
        (["--scenario", "nope"], UVICORN, "--scenario: must be one of in-flight,"),
        (["--scenario", "hung"], UVICORN, "--scenario: hung needs --hang-path"),
        (["--signal", "KILL"], UVICORN, "argument --signal: must be TERM or INT (got 'KILL')"),
        (["--connections", "0"], UVICORN, "argument --connections: must be a whole number in 1..1000"),
        (["--json", "/nonexistent/dir/x.json"], UVICORN, "argument --json: folder '/nonexistent/dir' does not exist"),
        ([], [PY, "-m", "uvicorn", "bench.apps:app"], "COMMAND must contain {port}"),
        ([], [], "COMMAND is missing"),
        (["--lame-duck", "30"], UVICORN, "--lame-duck: must be below --grace 30 (got 30)"),
        (["--deadline", "40"], UVICORN, "--deadline: must be between --lame-duck 0 and --grace 30 (got 40)"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args: list[str], command: list[str], message: str) -> None:
    result = verify(*args, command=command, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lameduck: error: ")
    assert message in lines[0]


def test_missing_separator_is_explained() -> None:
    result = subprocess.run(
        [PY, "-m", "lameduck", "verify", "uvicorn", "app:app"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "put the service's command after --" in result.stderr


def test_a_service_that_never_becomes_ready_exits_3() -> None:
    result = verify(
        "--startup-timeout",
        "2",
        "--scenario",
        "idle-keepalive",
        command=[PY, "-c", "import sys; print('boom: port {port}', flush=True); sys.exit(4)"],
        timeout=60,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "the service did not start: the service exited with code 4 before it was ready" in result.stderr
    assert "boom: port" in result.stderr


def test_help_needs_no_command() -> None:
    for tool in ("verify", "rollout"):
        result = subprocess.run(
            [PY, "-m", "lameduck", tool, "--help"], cwd=REPO, capture_output=True, text=True, timeout=30, check=False
        )
        assert result.returncode == 0, result.stderr
        assert f"usage: lameduck {tool} [options] -- COMMAND" in result.stdout


def test_a_hung_request_answered_at_once_is_caught() -> None:
    """http.server answers /hang with a 404 at once and dies on SIGTERM: not a pass for `hung`."""
    result = verify(
        "--scenario", "hung", "--hang-path", "/hang", "--no-probes", "--ready-path", "/",
        command=[PY, "-m", "http.server", "--bind", "127.0.0.1", "{port}"],
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert "✗ the request was still hanging at the signal: it ended before: http 404" in result.stdout
