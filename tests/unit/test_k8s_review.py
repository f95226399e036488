"""Cases a review of ``lameduck k8s check`` found: each one failed before its fix (false positives on realistic
manifests, wrong arithmetic, fixes that did not fix)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lameduck.k8s import loader, rules
from lameduck.k8s.check import check_paths
from lameduck.k8s.command import script_execs
from lameduck.k8s.findings import Finding, Severity
from lameduck.k8s.model import sleep_seconds
from lameduck.k8s.report import sarif

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  ANNOTATIONS
spec:
  GRACE
  containers:
    - name: web
      image: python:3.12-slim
      COMMAND
      ports: [{name: http, containerPort: 8000}, {name: admin, containerPort: 8001}]
      READINESS
      LIVENESS
      LIFECYCLE
"""


def pod(**parts: str) -> str:
    text = POD
    defaults = {
        "ANNOTATIONS": "labels: {}",
        "GRACE": "terminationGracePeriodSeconds: 30",
        "COMMAND": 'command: [lameduck, serve, "web:app", --host, 0.0.0.0]',
        "READINESS": "readinessProbe: {httpGet: {path: /health/ready, port: http}}",
        "LIVENESS": "livenessProbe: {httpGet: {path: /health/live, port: http}}",
        "LIFECYCLE": "env: []",
    }
    for key, value in {**defaults, **parts}.items():
        text = text.replace(key, value)
    return text


def check(text: str) -> list[Finding]:
    return [f for doc in loader.load(text, "pod.yaml") for f in rules.check_document(doc)]


def rules_of(text: str) -> list[str]:
    return sorted(f.rule for f in check(text))


def test_the_base_pod_is_clean() -> None:
    assert check(pod()) == []


def test_a_backslash_newline_continues_the_exec_line() -> None:
    script = "exec lameduck serve web:app \\\n  --host 0.0.0.0"
    assert script_execs(script) == (True, ("lameduck", "serve", "web:app", "--host", "0.0.0.0"))
    text = pod(
        COMMAND='command: ["/bin/sh", "-c"]\n      args:\n        - |\n          '
        + script.replace("\n", "\n          ")
    )
    assert check(text) == []


def test_the_run_directly_fix_removes_args_that_would_be_appended() -> None:
    text = pod(COMMAND='command: ["/bin/sh", "-c"]\n      args: ["uvicorn web:app --host 0.0.0.0"]')
    (finding,) = [f for f in check(text) if f.rule == "shell-form"]
    assert (
        finding.fix == 'run it directly: command: ["uvicorn", "web:app", "--host", "0.0.0.0"] and remove args '
        "(they would be appended to the new command)"
    )


def test_bash_running_a_plain_last_command_is_a_warning_dash_an_error() -> None:
    bash = pod(COMMAND='command: [bash, -c, "cd /app && uvicorn web:app --host 0.0.0.0"]')
    (b,) = [f for f in check(bash) if f.rule == "shell-form"]
    assert b.severity is Severity.WARNING
    assert "bash 5.1 and later exec a script's last simple command by themselves" in b.message
    sh = pod(COMMAND='command: [sh, -c, "cd /app && uvicorn web:app --host 0.0.0.0"]')
    (d,) = [f for f in check(sh) if f.rule == "shell-form"]
    assert d.severity is Severity.ERROR
    background = pod(COMMAND='command: [bash, -c, "uvicorn web:app & wait"]')
    (w,) = [f for f in check(background) if f.rule == "shell-form"]
    assert w.severity is Severity.ERROR, "bash keeps a backgrounded job's PID 1 to itself"


def test_a_prestop_longer_than_the_grace_period_is_not_negative_arithmetic() -> None:
    text = pod(LIFECYCLE="lifecycle: {preStop: {sleep: {seconds: 40}}}")
    (finding,) = [f for f in check(text) if f.rule == "grace-period"]
    assert "the preStop hook (40 s) outlasts the grace period (terminationGracePeriodSeconds 30)" in finding.message
    assert "-10" not in finding.message
    assert finding.fix.startswith("raise terminationGracePeriodSeconds to 70")


@pytest.mark.parametrize(
    ("script", "seconds"),
    [
        ("sleep 5", 5),
        ("sleep 1m", 60),
        ("sleep 1m 30s", 90),
        ("sleep infinity", None),
        ("while true; do sleep 1; done", None),
        ("sleep $DELAY", None),
        ("/bin/sleep 3 && kill 1", 3),
    ],
)
def test_prestop_sleep_durations(script: str, seconds: float | None) -> None:
    assert sleep_seconds(script) == seconds


def test_istio_rewritten_probes_are_not_judged_as_lameduck_probes() -> None:
    text = pod(
        ANNOTATIONS='annotations: {sidecar.istio.io/status: \'{"containers":["istio-proxy"]}\'}',
        READINESS="readinessProbe: {httpGet: {path: /app-health/web/readyz, port: 15020}}",
        LIVENESS="livenessProbe: {httpGet: {path: /app-health/web/livez, port: 15020}}",
    )
    assert rules_of(text) == []
    plain = text.replace("sidecar.istio.io/status", "example.com/status")
    assert "probe-path" in rules_of(plain)
    assert "probe-port" in rules_of(plain)


def test_liveness_on_the_same_path_but_another_port_is_not_readiness() -> None:
    same = pod(
        COMMAND="command: [uvicorn, web:app, --host, 0.0.0.0]",
        READINESS="readinessProbe: {httpGet: {path: /healthz, port: http}}",
        LIVENESS="livenessProbe: {httpGet: {path: /healthz, port: 8000}}",
    )
    assert "liveness-is-readiness" in rules_of(same), "port 8000 is the port named http"
    other = same.replace("path: /healthz, port: 8000", "path: /healthz, port: admin")
    assert "liveness-is-readiness" not in rules_of(other)


def test_sarif_uris_are_relative_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "pod.yaml").write_text(pod(GRACE="terminationGracePeriodSeconds: 10"))
    monkeypatch.chdir(tmp_path)
    report = check_paths([str(tmp_path / "k8s" / "pod.yaml")])
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in json.loads(sarif(report))["runs"][0]["results"]
    }
    assert uris == {"k8s/pod.yaml"}
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in json.loads(sarif(report))["runs"][0]["results"]
    }
    assert uris == {(tmp_path / "k8s" / "pod.yaml").as_uri()}


def test_a_directory_skips_files_without_objects_but_a_named_file_must_have_one(tmp_path: Path) -> None:
    (tmp_path / "values.yaml").write_text("replicaCount: 2\n")
    (tmp_path / "pod.yaml").write_text(pod())
    report = check_paths([str(tmp_path)])
    assert report.files == [str(tmp_path / "pod.yaml")]
    from lameduck.errors import ManifestError

    with pytest.raises(ManifestError, match="no Kubernetes object here"):
        check_paths([str(tmp_path / "values.yaml")])
