"""Acceptance: ``lameduck k8s check|render|rules`` and ``lameduck budget`` as a user runs them (a real process,
stdin pipes, files on disk), exit codes and formats included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.acceptance
CORPUS = REPO / "tests" / "k8s_corpus"

GOOD = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  template:
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/web:1.0
          command: ["lameduck", "serve", "web:app", "--host", "0.0.0.0", "--probe-port", "9000"]
          ports: [{name: http, containerPort: 8000}, {name: probes, containerPort: 9000}]
          readinessProbe: {httpGet: {path: /health/ready, port: probes}, periodSeconds: 2}
          livenessProbe: {httpGet: {path: /health/live, port: probes}}
"""
BAD = GOOD.replace("/health/live", "/health/ready")


def _run(*args: str, stdin: str | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMEDUCK_", "KUBERNETES_"))}
    return subprocess.run(
        [sys.executable, "-m", "lameduck", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
        check=False,
    )


def test_clean_manifest_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(GOOD)
    result = _run("k8s", "check", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "0 errors, 0 warnings, 0 notes in 1 input (1 object, 1 pod template)"


def test_error_finding_exits_1_with_file_line_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text(BAD)
    result = _run("k8s", "check", str(path))
    assert result.returncode == 1
    first, at, fix, *_ = result.stdout.splitlines()
    assert first.startswith(f"{path}:15:")
    assert "error[liveness-is-readiness] Deployment/web container web:" in first
    assert at.strip() == "at spec.template.spec.containers[0].livenessProbe (document 1)"
    assert fix.strip().startswith("fix: livenessProbe: httpGet {path: /health/live, port: 9000}")


def test_helm_output_on_stdin() -> None:
    helm = "---\n# Source: web/templates/deployment.yaml\n" + BAD + "---\n# Source: web/templates/sa.yaml\n"
    helm += "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web}\n"
    result = _run("k8s", "check", "-", stdin=helm)
    assert result.returncode == 1
    assert result.stdout.startswith("stdin:17:")
    assert result.stdout.splitlines()[-1] == "1 error, 0 warnings, 0 notes in 1 input (2 objects, 1 pod template)"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("kind: Deployment\nspec:\n  replicas: 2\n   template: {}\n", "stdin:4:12: mapping values are not allowed"),
        ('{"kind": "Pod", "spec": {"containers": [}\n', "stdin:1:"),
        ("kind: Pod\nspec: [1, 2\n", "stdin:3:1: did not find expected ',' or ']'"),
    ],
)
def test_malformed_input_is_one_line_with_position_and_exit_2(text: str, where: str) -> None:
    result = _run("k8s", "check", "-", stdin=text)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"lameduck: error: {where}")
    assert "Traceback" not in result.stderr


def test_unreadable_inputs_exit_2(tmp_path: Path) -> None:
    missing = _run("k8s", "check", str(tmp_path / "nope.yaml"))
    assert (missing.returncode, missing.stderr) == (2, f"lameduck: error: {tmp_path / 'nope.yaml'}: no such file\n")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00kind")
    binary = _run("k8s", "check", str(tmp_path / "bin.yaml"))
    assert binary.returncode == 2
    assert "not UTF-8" in binary.stderr or "control characters" in binary.stderr
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    assert _run("k8s", "check", str(empty_dir)).returncode == 2
    assert _run("k8s", "check", "-", "--ignore", "no-such-rule", stdin=GOOD).returncode == 2


def test_json_report(tmp_path: Path) -> None:
    result = _run("k8s", "check", "-", "--format", "json", stdin=BAD)
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    (finding,) = payload["findings"]
    assert finding == {
        "rule": "liveness-is-readiness",
        "severity": "error",
        "message": finding["message"],
        "fix": finding["fix"],
        "file": "stdin",
        "document": 1,
        "path": "spec.template.spec.containers[0].livenessProbe",
        "line": 15,
        "column": 11,
        "kind": "Deployment",
        "name": "web",
        "container": "web",
    }
    assert payload["summary"]["errors"] == 1
    assert payload["summary"]["exit_code"] == 1


def test_sarif_report_is_sarif_2_1_0() -> None:
    result = _run("k8s", "check", "-", "--format", "sarif", stdin=BAD.replace("replicas: 3", "replicas: 4"))
    assert result.returncode == 1
    sarif = json.loads(result.stdout)
    assert sarif["version"] == "2.1.0"
    assert sarif["$schema"].endswith("sarif-2.1.0.json")
    (run,) = sarif["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "lameduck"
    ids = [r["id"] for r in driver["rules"]]
    assert len(ids) == len(set(ids))
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"]
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    assert run["results"], "the bad manifest has findings"
    for res in run["results"]:
        assert ids[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note")
        assert res["message"]["text"]
        (loc,) = res["locations"]
        assert loc["physicalLocation"]["artifactLocation"]["uri"] == "stdin"
        assert loc["physicalLocation"]["region"]["startLine"] >= 1
        assert loc["logicalLocations"][0]["fullyQualifiedName"].startswith("Deployment/web/web:spec.")


def test_ignore_by_flag_and_by_annotation(tmp_path: Path) -> None:
    assert _run("k8s", "check", "-", "--ignore", "liveness-is-readiness", stdin=BAD).returncode == 0
    annotated = BAD.replace(
        "metadata: {name: web}",
        "metadata: {name: web, annotations: {lameduck/ignore: 'probe-timeout, liveness-is-readiness'}}",
    )
    assert _run("k8s", "check", "-", stdin=annotated).returncode == 0


def test_output_file_and_directory_input(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text(BAD)
    (tmp_path / "notes.txt").write_text("not a manifest")
    out = tmp_path / "report.sarif"
    result = _run("k8s", "check", str(tmp_path), "--format", "sarif", "--output", str(out))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == "1 error, 0 warnings, 0 notes in 2 inputs (2 objects, 2 pod templates)"
    assert json.loads(out.read_text())["runs"][0]["results"][0]["ruleId"] == "liveness-is-readiness"


def test_render_piped_into_check_is_clean() -> None:
    for extra in ([], ["--prestop-sleep", "5"], ["--grace", "60"], ["--worker", "tasks:worker"]):
        target = [] if "--worker" in extra else ["--app", "web.main:app"]
        rendered = _run("k8s", "render", *target, "--image", "ghcr.io/acme/web:1", "--name", "web", *extra)
        assert rendered.returncode == 0, rendered.stderr
        checked = _run("k8s", "check", "-", stdin=rendered.stdout)
        assert checked.returncode == 0, checked.stdout
        assert checked.stdout.startswith("0 errors, 0 warnings, 0 notes"), checked.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--app", "web:app"], "the following arguments are required: --image"),
        (["--app", "web", "--image", "x"], "--app: must be MODULE:ATTR (got 'web')"),
        (["--app", "w:a", "--image", "x", "--name", "Web_1"], "argument --name: must be a DNS label"),
        (["--app", "w:a", "--image", "x", "--replicas", "0"], "argument --replicas: must be 1..10000 (got '0')"),
        (["--app", "w:a", "--image", "x", "--name", "1web"], "argument --name: must be a DNS label"),
        (["--app", "w:a", "--image", "x", "--namespace", "Shop"], "argument --namespace: must be lowercase"),
        (["--worker", "t:w", "--image", "x", "--port", "8000"], "--port: a worker has no app port"),
        (["--app", "w:a", "--image", "x", "--lame-duck", "0"], "--lame-duck: 0 with no --prestop-sleep"),
        (["--app", "w:a", "--image", "x", "--grace", "10"], "--grace: lame-duck 5 + cleanup 3 + margin 2 = 10"),
    ],
)
def test_render_rejects_bad_flags_in_one_line(args: list[str], message: str) -> None:
    result = _run("k8s", "render", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


def test_rules_lists_every_rule() -> None:
    from lameduck.k8s.findings import RULES

    result = _run("k8s", "rules")
    assert result.returncode == 0
    listed = {line.split()[0] for line in result.stdout.splitlines() if line and not line.startswith(" ")}
    assert listed == set(RULES)


def test_budget_for_a_pod_with_a_prestop_sleep() -> None:
    result = _run("budget", "--kubernetes", "--prestop-sleep", "5")
    assert result.returncode == 0
    assert "lame-duck 5 + drain 20 + cleanup 3 + margin 2 = 30 ≤ grace 30" in result.stdout
    assert "terminationGracePeriodSeconds: 35" in result.stdout
    assert "both wait for endpoint removal" in result.stdout
    local = json.loads(_run("budget", "--no-kubernetes", "--json").stdout)
    assert (local["lame_duck"], local["drain"], local["termination_grace_period_seconds"]) == (0, 25, 30)
    work = json.loads(_run("budget", "--kubernetes", "--work", "--json").stdout)
    assert work["lame_duck"] == 0
    assert work["timeline"][2] == {"at": 25.0, "what": work["timeline"][2]["what"]}


def test_the_corpus_directory_is_checked_end_to_end() -> None:
    result = _run("k8s", "check", str(CORPUS), "--format", "json")
    assert result.returncode == 1, "the corpus holds bad examples on purpose"
    payload = json.loads(result.stdout)
    assert payload["summary"]["dockerfiles"] >= 3
    assert payload["summary"]["pod_templates"] >= 10
    assert {f["rule"] for f in payload["findings"]} >= {"grace-period", "shell-form", "dockerfile-shell-form"}


@pytest.mark.parametrize("stdin", ["", "\n", "# helm failed\n", "replicaCount: 2\n"])
def test_empty_or_non_kubernetes_stdin_is_not_a_pass(stdin: str) -> None:
    result = _run("k8s", "check", "-", stdin=stdin)
    assert result.returncode == 2
    assert result.stderr.startswith("lameduck: error: stdin: no Kubernetes object here")


def test_an_ascii_terminal_gets_no_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMEDUCK_", "KUBERNETES_"))}
    env["PYTHONIOENCODING"] = "ascii"
    result = subprocess.run(
        [sys.executable, "-m", "lameduck", "k8s", "check", "-"],
        input=BAD.replace("periodSeconds: 2", "periodSeconds: 1, timeoutSeconds: 1"),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "probe-timeout" in result.stdout
