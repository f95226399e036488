"""``lameduck rollout`` end to end: real replicas behind a real HAProxy, a real rolling deploy, every request
accounted for.

lameduck serve with no preStop hook must lose nothing in either load-balancer model; bare uvicorn, which closes
its listener and keep-alive connections at SIGTERM while its endpoint is still in the load balancer, must be
caught losing requests, and rollout must exit 1 for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.integration.test_html_chromium import dump_dom

pytestmark = pytest.mark.acceptance

PY = sys.executable
SERVE = [PY, "-m", "lameduck", "serve", "bench.apps:app", "--port", "{port}", "--grace", "10", "--lame-duck", "2.5"]
UVICORN = [PY, "-m", "uvicorn", "bench.apps:app", "--port", "{port}", "--log-level", "warning"]
#: An HTTP server that ignores SIGTERM (http.server installs no handlers of its own).
STUBBORN = (
    "import functools, http.server, signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory='bench'); "
    "http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), handler).serve_forever()"
)
LOAD = ["--rate", "150", "--slow-path", "/sleep?ms=200", "--post-path", "/orders", "--settle", "1"]


def rollout(*args: str, command: list[str], timeout: float = 150, env: dict[str, str] | None = None) -> Any:
    argv = [PY, "-m", "lameduck", "rollout", *args, "--", *command]
    return subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False, env={**os.environ, **(env or {})}
    )


@pytest.mark.parametrize("lb", ["tcp", "http"])
def test_lameduck_serve_loses_nothing_without_a_prestop_hook(lb: str, tmp_path: Path) -> None:
    out = tmp_path / "rollout.json"
    result = rollout("--lb", lb, "--replicas", "2", "--grace", "10", *LOAD, "--json", str(out), command=SERVE)
    report = json.loads(out.read_text())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert report["verdict"] == "PASS"
    assert report["failed"] == 0
    assert report["requests"] >= 600  # ≈ 150 req/s for the whole run: the load kept going through both steps
    assert set(report["by_request"]) == {"fast", "slow", "post"}
    replicas = {r["name"]: r for r in report["replicas"]}
    assert sorted(replicas) == ["r1", "r2", "r3", "r4"]
    for name in ("r1", "r2"):
        ev = replicas[name]["events"]
        assert ev["up"] < ev["sigterm"] < ev["listener-closed"] <= ev["exit"]
        # No preStop: SIGTERM at once; the endpoint is removed 0.5..2.0 s later (+ scheduling slack), and the
        # listener stays open through the 2.5 s lame-duck window, i.e. until after the removal.
        assert 0.45 <= ev["removed"] - ev["sigterm"] <= 2.5
        assert ev["listener-closed"] > ev["removed"]
        assert replicas[name]["exit_code"] == 0
        assert not replicas[name]["killed"]
    for name in ("r3", "r4"):
        assert "up" in replicas[name]["events"]
        assert "sigterm" not in replicas[name]["events"]


def test_bare_uvicorn_is_caught_losing_requests(tmp_path: Path) -> None:
    out = tmp_path / "rollout.json"
    html = tmp_path / "rollout.html"
    result = rollout(
        "--lb",
        "tcp",
        "--replicas",
        "2",
        "--grace",
        "10",
        *LOAD,
        "--json",
        str(out),
        "--html",
        str(html),
        command=UVICORN,
    )
    report = json.loads(out.read_text())
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert report["verdict"] == "FAIL"
    assert report["failed"] > 0
    assert sum(report["failed_by_kind"].values()) == report["failed"]
    assert set(report["failed_by_kind"]) <= {"eof", "reset", "connect", "timeout", "protocol"} | {
        k for k in report["failed_by_kind"] if k.startswith("http ")
    }
    # Every failure is attributed to a termination step of r1 or r2.
    assert sum(c["count"] for c in report["causes"]) == report["failed"]
    assert all(set(c["replicas"]) <= {"r1", "r2"} for c in report["causes"])
    assert "where the failures happened" in result.stdout
    # The HTML report draws the failures on its timeline, in a real browser.
    dom = dump_dom(tmp_path, html.read_text(encoding="utf-8"), "rollout-dom")
    (svg,) = dom.find("svg", "timeline")
    drawn = svg.find("rect", "failure")
    buckets = report["timeline"]["buckets"]
    assert len(drawn) == sum(1 for b in buckets for n in b["failures"].values() if n > 0) > 0
    assert {m.attrs.get("data-kind") for m in svg.find("line", "marker")} >= {
        "started",
        "up",
        "removed",
        "sigterm",
        "exit",
    }
    assert len(svg.find("rect", "span")) >= 4


def test_prestop_sleep_runs_before_sigterm_and_counts_against_grace(tmp_path: Path) -> None:
    out = tmp_path / "rollout.json"
    result = rollout(
        "--replicas", "1", "--prestop", "sleep:1.5", "--grace", "10", *LOAD, "--json", str(out), command=SERVE
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ev = {r["name"]: r for r in json.loads(out.read_text())["replicas"]}["r1"]["events"]
    assert 1.4 <= ev["sigterm"] - ev["prestop"] <= 2.0


def test_grace_ends_in_sigkill(tmp_path: Path) -> None:
    """A replica that ignores SIGTERM is SIGKILLed at --grace, counted from the start of its termination."""
    out = tmp_path / "rollout.json"
    stubborn = [PY, "-c", STUBBORN, "{port}"]
    result = rollout(
        "--replicas",
        "1",
        "--grace",
        "2",
        "--rate",
        "50",
        "--settle",
        "0.5",
        "--ready-path",
        "/",
        "--json",
        str(out),
        command=stubborn,
    )
    report = json.loads(out.read_text())
    ev = {r["name"]: r for r in report["replicas"]}["r1"]
    assert ev["killed"], result.stdout[-3000:]
    assert 1.9 <= ev["events"]["kill"] - ev["events"]["sigterm"] <= 3.0
    assert ev["exit_code"] == -9


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lb", "udp"], "argument --lb: must be tcp (kube-proxy) or http (ingress) (got 'udp')"),
        (["--prestop", "wait:5"], "argument --prestop: must be none or sleep:S with 0 ≤ S ≤ 600 (got 'wait:5')"),
        (["--propagation", "2..1"], "argument --propagation: must be MIN..MAX seconds with 0 ≤ MIN ≤ MAX ≤ 60"),
        (["--mix", "80/20"], "argument --mix: must be FAST/SLOW/POST weights"),
        (["--replicas", "0"], "argument --replicas: must be a whole number in 1..20 (got '0')"),
        (["--mix", "0/15/5"], "--mix: 0/15/5 leaves no request to send"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = rollout(*args, command=UVICORN, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"lameduck: error: {message}"] or message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_haproxy_says_how_to_install_it() -> None:
    result = rollout(command=UVICORN, timeout=30, env={"LAMEDUCK_HAPROXY": "/nonexistent/haproxy"})
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "haproxy" in line
    assert "apt-get install -y haproxy" in line


def test_prestop_longer_than_grace_is_cut_at_grace_like_the_kubelet(tmp_path: Path) -> None:
    """preStop gets at most the grace period; then SIGTERM, and SIGKILL after the one-time 2 s extension."""
    out = tmp_path / "rollout.json"
    stubborn = [PY, "-c", STUBBORN, "{port}"]
    rollout(
        "--replicas", "1", "--prestop", "sleep:5", "--grace", "1", "--rate", "50", "--settle", "0.5",
        "--ready-path", "/", "--json", str(out), command=stubborn,
    )  # fmt: skip
    ev = {r["name"]: r for r in json.loads(out.read_text())["replicas"]}["r1"]["events"]
    assert 0.9 <= ev["sigterm"] - ev["prestop"] <= 1.5
    assert 1.9 <= ev["kill"] - ev["sigterm"] <= 2.6


def test_a_load_balancer_that_fails_is_one_line_not_a_traceback() -> None:
    result = rollout(command=UVICORN, timeout=60, env={"LAMEDUCK_HAPROXY": "/bin/false"})
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("lameduck rollout: error: ")
