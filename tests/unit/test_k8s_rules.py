"""The manifest rules of ``lameduck k8s check``.

For every manifest rule: cases that fire (exact rule, severity, line, and the numbers in the message) and near
misses that a sloppy rule would flag. Suggested fixes are applied to the manifest and the finding must go away
without another error or warning taking its place. The corpus under tests/k8s_corpus/manifests gives exactly the
findings written down here (checked by hand against each file) and announced in each file's header.

Cases start from ``BASE``, a Deployment that is right in every respect, and change one line of it; a removed line
becomes a comment so that the line numbers of the others stay put.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from lameduck.k8s import loader, rules
from lameduck.k8s.findings import RULES, Finding, Location, Severity

CORPUS = Path(__file__).resolve().parents[1] / "k8s_corpus" / "manifests"
MANIFEST_RULES = frozenset(r for r in RULES if not r.startswith("dockerfile-"))

BASE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  strategy: {rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 30
      containers:
        - name: app
          image: ghcr.io/acme/web:1.0
          command: [lameduck, serve, "web:app", --host, 0.0.0.0]
          args: []
          env: []
          ports: [{name: http, containerPort: 8000}]
          readinessProbe: {httpGet: {path: /health/ready, port: http}}
          livenessProbe: {httpGet: {path: /health/live, port: http}}
          startupProbe: {httpGet: {path: /health/startup, port: http}, periodSeconds: 2, failureThreshold: 30}
          lifecycle: {}
"""
#: The line of each key that ``manifest()`` can change.
LINE = {
    "kind": 2,
    "replicas": 6,
    "strategy": 7,
    "terminationGracePeriodSeconds": 12,
    "image": 15,
    "command": 16,
    "args": 17,
    "env": 18,
    "ports": 19,
    "readinessProbe": 20,
    "livenessProbe": 21,
    "startupProbe": 22,
    "lifecycle": 23,
}
CONTAINER_LINE = 14
POD_SPEC_LINE = 11
CONTAINER = "spec.template.spec.containers[0]"


def manifest(**fields: str | None) -> str:
    """``BASE`` with the named keys' values replaced (flow-style YAML), or commented out when None."""
    lines = BASE.splitlines()
    for key, value in fields.items():
        i = LINE[key] - 1
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        assert lines[i].lstrip().startswith(f"{key}:"), (key, lines[i])
        lines[i] = f"{indent}# no {key}" if value is None else f"{indent}{key}: {value}"
    return "\n".join(lines) + "\n"


def check(text: str, source: str = "test.yaml") -> list[Finding]:
    return [f for doc in loader.load(text, source) for f in rules.check_document(doc)]


def summary(findings: list[Finding]) -> list[tuple[str, str, int]]:
    return sorted((f.rule, f.severity.value, f.location.line) for f in findings)


def only(text: str, rule: str) -> Finding:
    """The one finding of ``text``; it must be of ``rule``."""
    findings = check(text)
    assert [f.rule for f in findings] == [rule], summary(findings)
    return findings[0]


def serious(findings: list[Finding]) -> list[tuple[str, str, int]]:
    return summary([f for f in findings if f.severity is not Severity.NOTE])


# -- applying a fix to the manifest -------------------------------------------------------------------------------


def container_of(data: dict[str, Any]) -> dict[str, Any]:
    spec = data["spec"]["template"]["spec"]
    return spec["containers"][0]  # type: ignore[no-any-return]


def set_env(c: dict[str, Any], name: str, value: str) -> None:
    env = c.setdefault("env", [])
    for item in env:
        if item["name"] == name:
            item["value"] = value
            return
    env.append({"name": name, "value": value})


def set_flag(c: dict[str, Any], flag: str, value: str | None = None) -> None:
    """Set ``flag`` (``--grace``) in command/args, where it is written or at the end of the command line."""
    for part in ("command", "args"):
        words = c.get(part) or []
        for i, word in enumerate(words):
            if word == flag:
                if value is not None:
                    words[i + 1] = value
                return
            if str(word).startswith(flag + "="):
                words[i] = f"{flag}={value}"
                return
    target = c["args"] if c.get("args") else c["command"]
    target.extend([flag] if value is None else [flag, value])


def apply_setting(c: dict[str, Any], clause: str) -> None:
    """``set LAMEDUCK_GRACE=20`` / ``set --grace=20 and LAMEDUCK_LAME_DUCK=0`` (the words after ``set``)."""
    for name, value in re.findall(r"((?:LAMEDUCK_[A-Z_]+)|(?:--[a-z-]+))=([0-9.]+)", clause):
        if name.startswith("--"):
            set_flag(c, name, value)
        else:
            set_env(c, name, value)


def apply(text: str, clause: str) -> str:
    """One alternative of a finding's fix, applied the way a person would; returns the new manifest text."""
    data = yaml.safe_load(text)
    c = container_of(data)
    pod = data["spec"]["template"]["spec"]
    if m := re.fullmatch(r"raise terminationGracePeriodSeconds to (\d+)", clause):
        pod["terminationGracePeriodSeconds"] = int(m[1])
    elif clause.startswith("remove the preStop"):
        c.pop("lifecycle", None)
        apply_setting(c, clause)
    elif clause.startswith(("set LAMEDUCK_", "set --", "keep it and set")):
        apply_setting(c, clause)
    elif m := re.match(r"pass (--[a-z-]+) (\S+)", clause):
        set_flag(c, m[1], m[2])
    elif m := re.fullmatch(r"set maxUnavailable: (\d+) and maxSurge: (\d+) .*", clause):
        data["spec"]["strategy"] = {"rollingUpdate": {"maxUnavailable": int(m[1]), "maxSurge": int(m[2])}}
    elif clause.startswith("use RollingUpdate with maxUnavailable: 0 and maxSurge: 1"):
        data["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    elif m := re.match(r"use the native sleep action, lifecycle: (\{preStop: \{sleep: \{seconds: \d+\}\}\})", clause):
        c["lifecycle"] = yaml.safe_load(m[1])
    elif m := re.fullmatch(r"run it directly: command: (\[.*\])", clause):
        c["command"] = json.loads(m[1])
        c.pop("args", None)
    elif clause.startswith("put exec in front of the last command"):
        script_key = "args" if c.get("args") else "command"
        script = c[script_key][-1]
        parts = re.split(r"(&&|;|\n)", script.rstrip())
        parts[-1] = " exec " + parts[-1].strip()
        c[script_key][-1] = "".join(parts)
    else:
        raise AssertionError(f"no way to apply {clause!r}")
    return yaml.safe_dump(data, sort_keys=False)


def alternatives(fix: str) -> list[str]:
    return fix.split("; or ")


# -- the baseline --------------------------------------------------------------------------------------------------


def test_the_base_manifest_is_clean() -> None:
    assert check(BASE) == []
    assert manifest() == BASE


def test_every_manifest_rule_has_cases_that_fire_and_near_misses() -> None:
    assert {rule for rule, *_ in FIRES} == MANIFEST_RULES
    assert {rule for rule, _ in NEAR_MISSES} == MANIFEST_RULES


# -- one table of cases that fire: (rule, manifest, the whole expected summary) ------------------------------------

DISTROLESS = "gcr.io/distroless/python3-debian12:nonroot"

FIRES: list[tuple[str, str, list[tuple[str, str, int]]]] = [
    ("grace-period", manifest(terminationGracePeriodSeconds="20"), [("grace-period", "error", 12)]),
    (
        "grace-period",
        manifest(
            terminationGracePeriodSeconds=None, command='[lameduck, serve, "web:app", --host, 0.0.0.0, --grace, "45"]'
        ),
        [("grace-period", "error", POD_SPEC_LINE)],
    ),
    ("grace-unused", manifest(terminationGracePeriodSeconds="60"), [("grace-unused", "note", 12)]),
    ("grace-unused", manifest(terminationGracePeriodSeconds="35"), [("grace-unused", "note", 12)]),
    ("lameduck-settings", manifest(args='[--lame-duck, "40"]'), [("lameduck-settings", "error", 17)]),
    (
        "lameduck-settings",
        manifest(env="[{name: LAMEDUCK_DRAIN_TIMEOUT, value: soon}]"),
        [("lameduck-settings", "error", 18)],
    ),
    ("lameduck-settings", manifest(args="[--graceful-timeout=30]"), [("lameduck-settings", "error", 17)]),
    (
        "prestop-double-count",
        manifest(terminationGracePeriodSeconds="35", lifecycle="{preStop: {sleep: {seconds: 5}}}"),
        [("prestop-double-count", "warning", 23)],
    ),
    (
        "prestop-shell",
        manifest(
            image=DISTROLESS,
            terminationGracePeriodSeconds="35",
            env="[{name: LAMEDUCK_LAME_DUCK, value: '0'}, {name: LAMEDUCK_GRACE, value: '30'}]",
            lifecycle='{preStop: {exec: {command: [sh, -c, "sleep 5"]}}}',
        ),
        # The hook fails, so with the window at 0 nothing waits for endpoint removal either.
        [("no-endpoint-wait", "warning", 18), ("prestop-shell", "warning", 23)],
    ),
    (
        "prestop-shell",
        manifest(
            image="python:3.12-slim",
            terminationGracePeriodSeconds="35",
            env="[{name: LAMEDUCK_LAME_DUCK, value: '0'}, {name: LAMEDUCK_GRACE, value: '30'}]",
            lifecycle="{preStop: {exec: {command: [sleep, '5']}}}",
        ),
        [("prestop-shell", "note", 23)],
    ),
    (
        "no-endpoint-wait",
        manifest(env="[{name: LAMEDUCK_LAME_DUCK, value: '0'}]"),
        [("no-endpoint-wait", "warning", 18)],
    ),
    (
        "no-endpoint-wait",
        manifest(args='["--lame-duck", "0"]'),
        [("no-endpoint-wait", "warning", 17)],
    ),
    (
        "not-a-number",
        manifest(terminationGracePeriodSeconds='"45"'),
        [("not-a-number", "error", 12)],  # unreadable as a number, so grace-period cannot judge it either
    ),
    (
        "not-a-number",
        manifest(readinessProbe='{httpGet: {path: /health/ready, port: "8000"}, periodSeconds: "5"}'),
        [("not-a-number", "error", 20), ("not-a-number", "error", 20)],
    ),
    ("readiness-missing", manifest(readinessProbe=None), [("readiness-missing", "warning", CONTAINER_LINE)]),
    (
        "liveness-is-readiness",
        manifest(livenessProbe="{httpGet: {path: /health/ready, port: http}}"),
        [("liveness-is-readiness", "error", 21)],
    ),
    (
        "liveness-is-readiness",
        manifest(
            command="[uvicorn, web:app, --host, 0.0.0.0]",
            readinessProbe="{httpGet: {path: /healthz, port: 8000}}",
            livenessProbe="{httpGet: {path: /healthz, port: http}, periodSeconds: 20}",
            startupProbe=None,
        ),
        [("liveness-is-readiness", "error", 21)],
    ),
    (
        "probe-timeout",
        manifest(readinessProbe="{httpGet: {path: /health/ready, port: http}, timeoutSeconds: 10}"),
        [("probe-timeout", "warning", 20)],
    ),
    (
        "initial-delay",
        manifest(
            startupProbe=None, livenessProbe="{httpGet: {path: /health/live, port: http}, initialDelaySeconds: 11}"
        ),
        [("initial-delay", "warning", 21)],
    ),
    (
        "initial-delay",
        manifest(
            startupProbe=None, readinessProbe="{httpGet: {path: /health/ready, port: http}, initialDelaySeconds: 30}"
        ),
        [("initial-delay", "note", 20)],
    ),
    (
        "probe-port",
        manifest(readinessProbe="{httpGet: {path: /health/ready, port: probes}}"),
        [("probe-port", "error", 20)],
    ),
    (
        "probe-port",
        manifest(readinessProbe="{httpGet: {path: /health/ready, port: 8080}}"),
        [("probe-port", "error", 20)],
    ),
    (
        "probe-port",
        manifest(
            command="[uvicorn, web:app, --host, 0.0.0.0]",
            readinessProbe="{httpGet: {path: /ready, port: 9090}}",
            livenessProbe="{httpGet: {path: /live, port: 8000}}",
            startupProbe=None,
        ),
        [("probe-port", "note", 20)],
    ),
    ("probe-path", manifest(readinessProbe="{httpGet: {path: /healthz, port: http}}"), [("probe-path", "error", 20)]),
    ("probe-path", manifest(livenessProbe="{httpGet: {path: /ping, port: http}}"), [("probe-path", "warning", 21)]),
    (
        "probe-path",
        manifest(startupProbe="{httpGet: {path: /health/live, port: http}, failureThreshold: 30}"),
        [("probe-path", "warning", 22)],
    ),
    ("listen-loopback", manifest(command='[lameduck, serve, "web:app"]'), [("listen-loopback", "error", 16)]),
    (
        "listen-loopback",
        manifest(command='[lameduck, serve, "web:app", --host, localhost]'),
        [("listen-loopback", "error", 16)],
    ),
    (
        "shell-form",
        manifest(command='[sh, -c, "lameduck serve web:app --host 0.0.0.0"]'),
        [("shell-form", "error", 16)],
    ),
    (
        "shell-form",
        manifest(
            command="[bash, /app/start.sh]", readinessProbe=None, livenessProbe=None, startupProbe=None, ports=None
        ),
        [("shell-form", "warning", 16)],
    ),
    (
        "rollout-capacity",
        manifest(strategy="{rollingUpdate: {maxUnavailable: 1, maxSurge: 1}}"),
        [("rollout-capacity", "warning", 7)],
    ),
    ("rollout-capacity", manifest(strategy=None, replicas="4"), [("rollout-capacity", "warning", 5)]),
    ("rollout-capacity", manifest(strategy="{type: Recreate}"), [("rollout-capacity", "warning", 7)]),
    (
        "duplicate-key",
        BASE.replace(
            "      terminationGracePeriodSeconds: 30\n",
            "      terminationGracePeriodSeconds: 30\n      dnsPolicy: ClusterFirst\n      dnsPolicy: Default\n",
        ),
        [("duplicate-key", "error", 14)],
    ),
]


@pytest.mark.parametrize(("rule", "text", "expected"), FIRES, ids=[f"{r}-{i}" for i, (r, *_) in enumerate(FIRES)])
def test_fires(rule: str, text: str, expected: list[tuple[str, str, int]]) -> None:
    findings = check(text)
    assert summary(findings) == expected
    for f in findings:
        assert f.message
        assert f.fix
        assert f.location.file == "test.yaml"
        assert f.location.document == 0
        assert f.kind == "Deployment"
        assert f.name == "web"


# -- one table of near misses: (rule, manifest) -- the rule must stay silent ---------------------------------------

NEAR_MISSES: list[tuple[str, str]] = [
    # lame-duck 5 + drain 20 + cleanup 3 + margin 2 = 30 fits 30 exactly
    ("grace-period", BASE),
    # lameduck told about the shorter grace: lame-duck 5 + drain 10 + cleanup 3 + margin 2 = 20
    ("grace-period", manifest(terminationGracePeriodSeconds="20", env="[{name: LAMEDUCK_GRACE, value: '20'}]")),
    # a 5 s preStop leaves exactly lameduck's 30 s
    ("grace-period", manifest(terminationGracePeriodSeconds="35", lifecycle="{preStop: {sleep: {seconds: 5}}}")),
    # an httpGet preStop's duration is the app's business: not counted
    ("grace-period", manifest(lifecycle="{preStop: {httpGet: {path: /drain, port: http}}}")),
    # terminationGracePeriodSeconds from a template that did not render: not a number, not judged
    ("grace-period", manifest(terminationGracePeriodSeconds='"{{ .Values.grace }}"')),
    # LAMEDUCK_GRACE from a ConfigMap: the manifest cannot show it, so neither error nor note
    (
        "grace-period",
        manifest(
            terminationGracePeriodSeconds="10",
            env="[{name: LAMEDUCK_GRACE, valueFrom: {configMapKeyRef: {name: c, key: grace}}}]",
        ),
    ),
    (
        "grace-unused",
        manifest(
            terminationGracePeriodSeconds="120",
            env="[{name: LAMEDUCK_GRACE, valueFrom: {configMapKeyRef: {name: c, key: grace}}}]",
        ),
    ),
    # 4 s more would not be worth a note
    ("grace-unused", manifest(terminationGracePeriodSeconds="34")),
    # an explicit drain is a decision, not a derived default
    ("grace-unused", manifest(terminationGracePeriodSeconds="60", args='[--drain-timeout, "10"]')),
    # a lame-duck window of 10 s is within the grace (10 + 15 + 3 + 2 = 30)
    ("lameduck-settings", manifest(args='[--lame-duck, "10"]')),
    # a flag whose value comes from a Secret: unknown, not invalid
    (
        "lameduck-settings",
        manifest(
            args='["--broker=$(BROKER_URL)", "--worker", "web.jobs:worker"]',
            env="[{name: BROKER_URL, valueFrom: {secretKeyRef: {name: s, key: url}}}]",
        ),
    ),
    # a shell variable is the shell's to expand at startup
    (
        "lameduck-settings",
        manifest(command='[sh, -c, "exec lameduck serve web:app --host 0.0.0.0 --port ${PORT:-8000}"]'),
    ),
    # a preStop with lameduck's window off is the documented alternative
    (
        "prestop-double-count",
        manifest(
            terminationGracePeriodSeconds="35", args='[--lame-duck, "0"]', lifecycle="{preStop: {sleep: {seconds: 5}}}"
        ),
    ),
    # lameduck work has no lame-duck window
    (
        "prestop-double-count",
        manifest(
            terminationGracePeriodSeconds="35",
            command='[lameduck, work, "web.jobs:worker", --host, 0.0.0.0]',
            lifecycle="{preStop: {sleep: {seconds: 5}}}",
            readinessProbe=None,
            startupProbe=None,
        ),
    ),
    # the native sleep action needs neither a shell nor a sleep binary
    (
        "prestop-shell",
        manifest(
            image=DISTROLESS,
            terminationGracePeriodSeconds="35",
            args='[--lame-duck, "0"]',
            lifecycle="{preStop: {sleep: {seconds: 5}}}",
        ),
    ),
    # the app's own drain program is in the image, distroless or not
    # the window is off but a native preStop sleep waits instead
    (
        "no-endpoint-wait",
        manifest(
            terminationGracePeriodSeconds="35",
            env="[{name: LAMEDUCK_LAME_DUCK, value: '0'}]",
            lifecycle="{preStop: {sleep: {seconds: 5}}}",
        ),
    ),
    # an HTTP preStop hook may wait (its length is the app's business): not judged
    (
        "no-endpoint-wait",
        manifest(args='["--lame-duck", "0"]', lifecycle="{preStop: {httpGet: {path: /, port: http}}}"),
    ),
    # numbers as numbers, a port by name, and a string that is not a number at all (a name, judged elsewhere)
    ("not-a-number", manifest(terminationGracePeriodSeconds="45")),
    ("not-a-number", manifest(readinessProbe="{httpGet: {path: /health/ready, port: http}, periodSeconds: 5}")),
    ("prestop-shell", manifest(image=DISTROLESS, lifecycle="{preStop: {exec: {command: [/app/bin/drain]}}}")),
    # a script that does more than sleep cannot become the sleep action; the image has sh
    (
        "prestop-shell",
        manifest(
            image="python:3.12-slim", lifecycle='{preStop: {exec: {command: [sh, -c, "curl -s localhost:8000/drain"]}}}'
        ),
    ),
    # a Job's pods get no traffic
    ("readiness-missing", manifest(kind="Job", readinessProbe=None, strategy=None, replicas=None)),
    # a worker serves no traffic
    (
        "readiness-missing",
        manifest(
            command='[lameduck, work, "web.jobs:worker", --host, 0.0.0.0]', readinessProbe=None, startupProbe=None
        ),
    ),
    # not lameduck and no ports: nothing to route to
    (
        "readiness-missing",
        manifest(
            command="[python, -m, web.consumer]", ports=None, readinessProbe=None, livenessProbe=None, startupProbe=None
        ),
    ),
    # different paths; a liveness probe with no readiness probe is readiness-missing's business
    ("liveness-is-readiness", BASE),
    ("liveness-is-readiness", manifest(readinessProbe=None)),
    # same path, different query: two endpoints
    (
        "liveness-is-readiness",
        manifest(
            command="[uvicorn, web:app, --host, 0.0.0.0]",
            readinessProbe='{httpGet: {path: "/health?probe=ready", port: 8000}}',
            livenessProbe='{httpGet: {path: "/health?probe=live", port: 8000}}',
            startupProbe=None,
        ),
    ),
    ("probe-timeout", manifest(readinessProbe="{httpGet: {path: /health/ready, port: http}, timeoutSeconds: 9}")),
    ("probe-timeout", manifest(readinessProbe="{httpGet: {path: /health/ready, port: http}, periodSeconds: 2}")),
    (
        "initial-delay",
        manifest(
            startupProbe=None, livenessProbe="{httpGet: {path: /health/live, port: http}, initialDelaySeconds: 10}"
        ),
    ),
    # with a startup probe, liveness waits for it anyway; the startup probe's own delay is not a guess at startup
    ("initial-delay", manifest(livenessProbe="{httpGet: {path: /health/live, port: http}, initialDelaySeconds: 30}")),
    ("initial-delay", manifest(startupProbe="{httpGet: {path: /health/startup, port: http}, initialDelaySeconds: 60}")),
    # the numeric port and the named port are both lameduck's
    ("probe-port", manifest(readinessProbe="{httpGet: {path: /health/ready, port: 8000}}")),
    ("probe-port", manifest(readinessProbe='{httpGet: {path: /health/ready, port: "8000"}}')),
    # the probe port lameduck was told about
    (
        "probe-port",
        manifest(
            args='[--probe-port, "9000"]',
            ports="[{name: http, containerPort: 8000}, {name: probes, containerPort: 9000}]",
            readinessProbe="{httpGet: {path: /health/ready, port: probes}}",
            livenessProbe="{httpGet: {path: /health/live, port: 9000}}",
            startupProbe="{httpGet: {path: /health/startup, port: probes}, failureThreshold: 30}",
        ),
    ),
    # a container that declares no ports may serve anywhere; exec probes have no port
    (
        "probe-port",
        manifest(
            command="[uvicorn, web:app, --host, 0.0.0.0]",
            ports=None,
            readinessProbe="{httpGet: {path: /r, port: 9090}}",
            livenessProbe="{exec: {command: [true]}}",
            startupProbe=None,
        ),
    ),
    # a query string does not change the endpoint; the readiness path is fine for startup too
    ("probe-path", manifest(readinessProbe='{httpGet: {path: "/health/ready?verbose=1", port: http}}')),
    ("probe-path", manifest(startupProbe="{httpGet: {path: /health/ready, port: http}, failureThreshold: 30}")),
    # custom paths lameduck was told about
    ("probe-path", manifest(args="[--ready-path, /ready]", readinessProbe="{httpGet: {path: /ready, port: http}}")),
    # liveness on the readiness path is liveness-is-readiness's finding, not a second one
    ("probe-path", manifest(livenessProbe="{httpGet: {path: /health/ready, port: http}}")),
    # lameduck.run() in the app's own code may pass its own port and paths
    (
        "probe-port",
        manifest(
            command="[python, -m, web.main]",
            env="[{name: LAMEDUCK_GRACE, value: '30'}]",
            ports="[{name: http, containerPort: 9000}]",
            readinessProbe="{httpGet: {path: /ready, port: 9000}}",
        ),
    ),
    # not lameduck: its paths are its own
    (
        "probe-path",
        manifest(
            command="[uvicorn, web:app, --host, 0.0.0.0]",
            readinessProbe="{httpGet: {path: /ready, port: http}}",
            livenessProbe="{httpGet: {path: /live, port: http}}",
            startupProbe=None,
        ),
    ),
    ("listen-loopback", manifest(command='[lameduck, serve, "web:app", --host, "::"]')),
    (
        "listen-loopback",
        manifest(command='[lameduck, serve, "web:app"]', env="[{name: LAMEDUCK_HOST, value: 0.0.0.0}]"),
    ),
    # the pod IP from the downward API
    (
        "listen-loopback",
        manifest(
            command='[lameduck, serve, "web:app"]',
            env="[{name: LAMEDUCK_HOST, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]",
        ),
    ),
    # lameduck.run() in the app's own code (LAMEDUCK_* variables only): the host may be passed in code
    (
        "listen-loopback",
        manifest(command="[python, -m, web.main]", env="[{name: LAMEDUCK_GRACE, value: '30'}]"),
    ),
    # lameduck work with no network probe: nothing connects to it
    (
        "listen-loopback",
        manifest(
            command='[lameduck, work, "web.jobs:worker"]',
            readinessProbe=None,
            livenessProbe="{exec: {command: [true]}}",
            startupProbe=None,
        ),
    ),
    ("shell-form", manifest(command='[sh, -c, "exec lameduck serve web:app --host 0.0.0.0"]')),
    (
        "shell-form",
        manifest(command="[/bin/sh, -c, --]", args='["cd /srv && exec lameduck serve web:app --host 0.0.0.0"]'),
    ),
    ("shell-form", manifest(command='[bash, -o, pipefail, -c, "exec lameduck serve web:app --host 0.0.0.0 2>&1"]')),
    (
        "shell-form",
        manifest(
            command='[sh, -c, "lameduck serve web:app --host 0.0.0.0 & child=$!; '
            "trap 'kill -TERM $child' TERM; wait $child\"]"
        ),
    ),
    ("shell-form", manifest(command='[tini, --, lameduck, serve, "web:app", --host, 0.0.0.0]')),
    # 25 % of 3 replicas rounds down to 0 unavailable
    ("rollout-capacity", manifest(strategy=None, replicas="3")),
    ("rollout-capacity", manifest(strategy="{rollingUpdate: {maxUnavailable: 1}}", replicas="11")),
    ("rollout-capacity", manifest(strategy="{rollingUpdate: {maxUnavailable: 1}}", replicas="0")),
    # a StatefulSet rolls one pod at a time by design
    ("rollout-capacity", manifest(kind="StatefulSet", strategy=None, replicas="2")),
    # the same key in sibling mappings, or a merge key's value overridden, is not a duplicate
    (
        "duplicate-key",
        BASE.replace("  selector: {matchLabels: {app: web}}\n", "  selector: {matchLabels: &l {app: web}}\n").replace(
            "    metadata: {labels: {app: web}}\n", "    metadata: {labels: {<<: *l, app: web, App: web}}\n"
        ),
    ),
]


@pytest.mark.parametrize(("rule", "text"), NEAR_MISSES, ids=[f"{r}-{i}" for i, (r, _) in enumerate(NEAR_MISSES)])
def test_near_miss(rule: str, text: str) -> None:
    findings = check(text)
    assert rule not in {f.rule for f in findings}, summary(findings)


# -- grace-period: the arithmetic and the fixes --------------------------------------------------------------------


def test_grace_period_shows_the_arithmetic_and_where() -> None:
    f = only(manifest(terminationGracePeriodSeconds="20"), "grace-period")
    assert f.severity is Severity.ERROR
    assert f.message == (
        "lameduck's shutdown takes up to lame-duck 5 + drain 20 + cleanup 3 + margin 2 = 30 s, but SIGKILL comes "
        "20 s after SIGTERM (terminationGracePeriodSeconds 20)"
    )
    assert (
        f.fix
        == "raise terminationGracePeriodSeconds to 30; or set LAMEDUCK_GRACE=20 so lameduck plans for the time it has"
    )
    assert f.location == Location("test.yaml", 0, "spec.template.spec.terminationGracePeriodSeconds", 12, 7)
    assert (f.kind, f.name, f.container) == ("Deployment", "web", "app")
    assert f.subject == "Deployment/web container app"


def test_grace_period_absent_means_30_and_points_at_the_pod_spec() -> None:
    text = manifest(terminationGracePeriodSeconds=None, args='[--grace, "45"]')
    f = only(text, "grace-period")
    assert "lame-duck 5 + drain 35 + cleanup 3 + margin 2 = 45 s" in f.message
    assert "SIGKILL comes 30 s after SIGTERM (terminationGracePeriodSeconds 30 (the default))" in f.message
    assert (f.location.path, f.location.line) == ("spec.template.spec.terminationGracePeriodSeconds", POD_SPEC_LINE)
    assert f.fix == "raise terminationGracePeriodSeconds to 45; or set --grace=30 so lameduck plans for the time it has"


def test_grace_period_counts_the_prestop_sleep() -> None:
    text = manifest(lifecycle="{preStop: {sleep: {seconds: 10}}}")
    findings = check(text)
    assert summary(findings) == [("grace-period", "error", 12), ("prestop-double-count", "warning", 23)]
    grace = next(f for f in findings if f.rule == "grace-period")
    assert (
        "= 30 s, but SIGKILL comes 20 s after SIGTERM (terminationGracePeriodSeconds 30 - preStop 10 s)"
        in grace.message
    )
    assert alternatives(grace.fix) == [
        "raise terminationGracePeriodSeconds to 40",
        "set LAMEDUCK_GRACE=20 so lameduck plans for the time it has",
        "remove the preStop sleep (the lame-duck window does its job)",
    ]


def test_grace_period_counts_an_exec_sleep_and_a_script_of_sleeps() -> None:
    text = manifest(lifecycle='{preStop: {exec: {command: [/bin/sh, -c, "sleep 3; nginx -s quit; sleep 4"]}}}')
    grace = next(f for f in check(text) if f.rule == "grace-period")
    assert "(terminationGracePeriodSeconds 30 - preStop 7 s)" in grace.message


@pytest.mark.parametrize(
    "fields",
    [
        {"terminationGracePeriodSeconds": "20"},
        {"terminationGracePeriodSeconds": "10"},
        {"terminationGracePeriodSeconds": "8"},
        {"terminationGracePeriodSeconds": "25", "env": "[{name: LAMEDUCK_GRACE, value: '25.5'}]"},
        {"lifecycle": "{preStop: {sleep: {seconds: 10}}}"},
        {"lifecycle": "{preStop: {sleep: {seconds: 15}}}", "terminationGracePeriodSeconds": "25"},
        {
            "lifecycle": "{preStop: {sleep: {seconds: 10}}}",
            "args": '[--lame-duck, "0"]',
            "terminationGracePeriodSeconds": "35",
        },
        {"terminationGracePeriodSeconds": "20", "args": '[--drain-timeout, "20"]'},
        {"terminationGracePeriodSeconds": None, "args": '[--grace, "45"]'},
        {
            "terminationGracePeriodSeconds": "12",
            "command": '[lameduck, work, "web.jobs:worker", --host, 0.0.0.0]',
            "readinessProbe": None,
            "startupProbe": None,
        },
    ],
    ids=[
        "20",
        "10",
        "8",
        "fractional",
        "prestop",
        "prestop-15-of-25",
        "prestop-without-window",
        "explicit-drain",
        "flag",
        "work",
    ],
)
def test_every_grace_period_fix_makes_the_error_go_away(fields: dict[str, str | None]) -> None:
    text = manifest(**fields)
    grace = next(f for f in check(text) if f.rule == "grace-period")
    fixes = alternatives(grace.fix)
    assert fixes[0].startswith("raise terminationGracePeriodSeconds to ")
    for fix in fixes:
        after = check(apply(text, fix))
        assert "grace-period" not in {f.rule for f in after}, (fix, summary(after))
        assert "lameduck-settings" not in {f.rule for f in after}, (fix, summary(after))


def test_the_grace_period_raise_is_rounded_up_to_whole_seconds() -> None:
    text = manifest(terminationGracePeriodSeconds="25", env="[{name: LAMEDUCK_GRACE, value: '25.5'}]")
    f = only(text, "grace-period")
    assert "= 25.5 s, but SIGKILL comes 25 s after SIGTERM" in f.message
    assert alternatives(f.fix)[0] == "raise terminationGracePeriodSeconds to 26"


def test_grace_period_without_a_prestop_never_suggests_dropping_both_waits_silently() -> None:
    f = only(manifest(terminationGracePeriodSeconds="10"), "grace-period")
    assert alternatives(f.fix) == [
        "raise terminationGracePeriodSeconds to 30",
        # Never the window at 0 without a preStop hook (no-endpoint-wait): cleanup gives way instead.
        "set LAMEDUCK_GRACE=10 and LAMEDUCK_CLEANUP_TIMEOUT=2",
    ]


def test_grace_period_with_a_prestop_never_suggests_removing_it_and_the_window_together() -> None:
    # Before: "remove the preStop sleep, set LAMEDUCK_GRACE=30 and LAMEDUCK_LAME_DUCK=0" -- nothing would wait.
    text = manifest(lifecycle="{preStop: {sleep: {seconds: 15}}}")
    grace = next(f for f in check(text) if f.rule == "grace-period")
    assert "LAMEDUCK_LAME_DUCK=0" not in grace.fix
    assert alternatives(grace.fix)[-1] == "remove the preStop sleep (the lame-duck window does its job)"


def test_grace_period_with_the_window_off_moves_the_prestop_seconds_into_it() -> None:
    text = manifest(
        lifecycle="{preStop: {sleep: {seconds: 10}}}", args='[--lame-duck, "0"]', terminationGracePeriodSeconds="35"
    )
    f = only(text, "grace-period")
    assert "lame-duck 0 + drain 25 + cleanup 3 + margin 2 = 30 s" in f.message
    assert alternatives(f.fix) == [
        "raise terminationGracePeriodSeconds to 40",
        "set LAMEDUCK_GRACE=25 so lameduck plans for the time it has",
        "remove the preStop sleep, set LAMEDUCK_GRACE=35 and --lame-duck=10 (the lame-duck window waits instead)",
    ]


def test_grace_period_with_an_explicit_drain_suggests_a_drain_that_fits() -> None:
    f = only(manifest(terminationGracePeriodSeconds="20", args='[--drain-timeout, "20"]'), "grace-period")
    assert "lame-duck 5 + drain 20 + cleanup 3 + margin 2 = 30 s" in f.message
    assert alternatives(f.fix) == [
        "raise terminationGracePeriodSeconds to 30",
        "set LAMEDUCK_GRACE=20 and --drain-timeout=10",
    ]


def test_grace_period_never_suggests_a_drain_shorter_than_a_second() -> None:
    # 10 s - lame-duck 5 - cleanup 3 - margin 2 leaves no drain at all: only a longer grace helps.
    f = only(manifest(terminationGracePeriodSeconds="10", args='[--drain-timeout, "20"]'), "grace-period")
    assert f.fix == "raise terminationGracePeriodSeconds to 30"


def test_grace_period_that_nothing_but_a_longer_grace_fixes() -> None:
    f = only(manifest(terminationGracePeriodSeconds="5"), "grace-period")
    assert f.fix == "raise terminationGracePeriodSeconds to 30"


def test_grace_period_of_a_worker_has_no_lame_duck_window() -> None:
    text = manifest(
        terminationGracePeriodSeconds="12",
        command='[lameduck, work, "web.jobs:worker", --host, 0.0.0.0]',
        readinessProbe=None,
        startupProbe=None,
    )
    f = only(text, "grace-period")
    assert "lame-duck 0 + drain 25 + cleanup 3 + margin 2 = 30 s" in f.message


def test_grace_period_assumed_defaults_say_so() -> None:
    f = only(manifest(command=None, args=None, terminationGracePeriodSeconds="20"), "grace-period")
    assert f.message.endswith("(the command comes from the image: lameduck defaults assumed)")


def test_assumed_lameduck_is_only_the_main_container() -> None:
    text = BASE.replace(
        "          lifecycle: {}\n",
        "          lifecycle: {}\n        - name: proxy\n          image: envoyproxy/envoy:v1.31.0\n",
    )
    text = text.replace("      terminationGracePeriodSeconds: 30\n", "      terminationGracePeriodSeconds: 20\n")
    text = text.replace('          command: [lameduck, serve, "web:app", --host, 0.0.0.0]\n', "")
    assert [(f.rule, f.container) for f in check(text)] == [("grace-period", "app")]
    annotated = text.replace(
        "  name: web\n", "  name: web\n  annotations: {kubectl.kubernetes.io/default-container: proxy}\n"
    )
    assert [(f.rule, f.container) for f in check(annotated)] == [("grace-period", "proxy")]


# -- grace-unused --------------------------------------------------------------------------------------------------


def test_grace_unused_says_how_much_more_the_drain_could_have() -> None:
    f = only(manifest(terminationGracePeriodSeconds="60"), "grace-unused")
    assert f.severity is Severity.NOTE
    assert f.message == (
        "SIGKILL comes 60 s after SIGTERM, but lameduck plans for --grace 30 (lame-duck 5 + drain 20 + cleanup 3 + "
        "margin 2 = 30 s): the drain could have 30 s more"
    )
    assert f.fix == "set LAMEDUCK_GRACE=60"
    assert check(apply(manifest(terminationGracePeriodSeconds="60"), f.fix)) == []


def test_grace_unused_fix_edits_the_flag_the_manifest_uses() -> None:
    text = manifest(terminationGracePeriodSeconds="90", args='[--grace, "30"]')
    f = only(text, "grace-unused")
    assert f.fix == "set --grace=90"
    assert check(apply(text, f.fix)) == []


def test_grace_unused_after_a_prestop() -> None:
    text = manifest(
        terminationGracePeriodSeconds="60", args='[--lame-duck, "0"]', lifecycle="{preStop: {sleep: {seconds: 10}}}"
    )
    f = only(text, "grace-unused")
    assert "SIGKILL comes 50 s after SIGTERM" in f.message
    assert "the drain could have 20 s more" in f.message
    assert f.fix == "set LAMEDUCK_GRACE=50"
    assert check(apply(text, f.fix)) == []


# -- lameduck-settings ---------------------------------------------------------------------------------------------


def test_lameduck_settings_points_at_the_flag_word() -> None:
    f = only(manifest(args='[--lame-duck, "40"]'), "lameduck-settings")
    assert (
        f.message == "lameduck would refuse to start (exit 2): --lame-duck: must be auto or 0 ≤ s ≤ grace 30 (got 40)"
    )
    assert (f.location.path, f.location.line, f.location.column) == (f"{CONTAINER}.args[0]", 17, 18)


def test_lameduck_settings_points_at_the_env_value() -> None:
    f = only(manifest(env="[{name: LAMEDUCK_DRAIN_TIMEOUT, value: soon}]"), "lameduck-settings")
    assert "--drain-timeout (LAMEDUCK_DRAIN_TIMEOUT): must be auto or 0 ≤ s ≤ 3600 (got 'soon')" in f.message
    assert (f.location.path, f.location.line) == (f"{CONTAINER}.env[0].value", 18)


def test_lameduck_settings_shows_the_budget_arithmetic() -> None:
    f = only(
        manifest(env="[{name: LAMEDUCK_GRACE, value: '8'}]", terminationGracePeriodSeconds="8"), "lameduck-settings"
    )
    assert "lame-duck 5 + cleanup 3 + margin 2 = 10 leaves 0 of grace 8 for the drain" in f.message


def test_lameduck_settings_unknown_flag() -> None:
    f = only(manifest(args="[--graceful-timeout=30]"), "lameduck-settings")
    assert (
        f.message
        == "lameduck would refuse to start (exit 2): --graceful-timeout: unrecognized argument for lameduck serve"
    )
    assert f.location.line == 17


def test_lameduck_settings_an_env_reference_to_a_later_variable_stays_literal() -> None:
    env = "[{name: LAMEDUCK_CLEANUP_TIMEOUT, value: $(CLEANUP)}, {name: CLEANUP, value: '5'}]"
    f = only(manifest(env=env), "lameduck-settings")
    assert "(got '$(CLEANUP)')" in f.message
    ordered = "[{name: CLEANUP, value: '5'}, {name: LAMEDUCK_CLEANUP_TIMEOUT, value: $(CLEANUP)}]"
    # 5 s of cleanup: lame-duck 5 + drain 18 + cleanup 5 + margin 2 = 30
    assert check(manifest(env=ordered)) == []


def test_a_worker_broker_from_a_secret_is_unknown_not_an_unexpected_argument() -> None:
    # Before: the word "--broker=$(BROKER_URL)" was expanded to "" and read as a second MODULE:ATTR (exit 2).
    text = manifest(
        command='[lameduck, work, "web.jobs:worker", --host, 0.0.0.0, "--broker=$(BROKER_URL)"]',
        env="[{name: BROKER_URL, valueFrom: {secretKeyRef: {name: s, key: url}}}]",
        readinessProbe=None,
        startupProbe=None,
    )
    assert check(text) == []


# -- prestop-double-count ------------------------------------------------------------------------------------------


def test_prestop_double_count_adds_up_both_waits() -> None:
    text = manifest(terminationGracePeriodSeconds="35", lifecycle="{preStop: {sleep: {seconds: 5}}}")
    f = only(text, "prestop-double-count")
    assert f.message == (
        "the preStop hook sleeps 5 s, then lameduck keeps serving for its lame-duck window of 5 s (auto: 5 s in a "
        "pod): endpoint removal is waited for twice, 10 s in all, taken from the drain"
    )
    assert (f.location.path, f.location.line, f.location.column) == (f"{CONTAINER}.lifecycle.preStop", 23, 23)
    remove, keep = f.fix.split(" or keep it and ")
    assert remove.startswith("remove the preStop hook")
    assert keep == "set LAMEDUCK_LAME_DUCK=0"
    for fix in (remove, "keep it and " + keep):
        assert serious(check(apply(text, fix))) == []


def test_prestop_double_count_explicit_window() -> None:
    text = manifest(
        terminationGracePeriodSeconds="35", args='[--lame-duck, "5"]', lifecycle="{preStop: {sleep: {seconds: 5}}}"
    )
    f = only(text, "prestop-double-count")
    assert "lame-duck window of 5 s (set explicitly)" in f.message
    assert f.fix.endswith("keep it and set --lame-duck=0")


# -- prestop-shell -------------------------------------------------------------------------------------------------


def test_prestop_shell_on_distroless_is_a_warning_and_the_native_action_fixes_it() -> None:
    text = manifest(
        image=DISTROLESS,
        terminationGracePeriodSeconds="35",
        args='[--lame-duck, "0"]',
        lifecycle='{preStop: {exec: {command: [sh, -c, "sleep 5"]}}}',
    )
    # The failing hook waits for nothing, and the window is 0: both are reported; the native sleep fixes both.
    assert sorted(g.rule for g in check(text)) == ["no-endpoint-wait", "prestop-shell"]
    f = next(g for g in check(text) if g.rule == "prestop-shell")
    assert f.severity is Severity.WARNING
    assert f.message == (
        f"the preStop hook needs a shell, which {DISTROLESS} (distroless or scratch) does not have: the hook fails "
        "and SIGTERM comes at once"
    )
    assert f.fix.startswith(
        "use the native sleep action, lifecycle: {preStop: {sleep: {seconds: 5}}} (Kubernetes 1.30+"
    )
    assert (f.location.path, f.location.line) == (f"{CONTAINER}.lifecycle.preStop.exec.command", 23)
    assert check(apply(text, f.fix)) == []


@pytest.mark.parametrize(
    ("image", "severity"),
    [
        ("cgr.dev/chainguard/python:latest", "warning"),
        ("cgr.dev/chainguard/python:latest-dev", "note"),
        ("gcr.io/distroless/python3-debian12:debug", "note"),
        ("gcr.io/distroless/python3-debian12:debug-nonroot", "note"),
        ("ghcr.io/acme/web:1.0-static", "warning"),
        ("python:3.12-slim", "note"),
    ],
)
def test_prestop_shell_images(image: str, severity: str) -> None:
    text = manifest(
        image=image,
        terminationGracePeriodSeconds="35",
        args='[--lame-duck, "0"]',
        lifecycle="{preStop: {exec: {command: [sleep, '5']}}}",
    )
    # Where the hook cannot run (warning), nothing waits for endpoint removal with the window at 0 either.
    wait = [("no-endpoint-wait", "warning", 17)] if severity == "warning" else []
    assert summary(check(text)) == [*wait, ("prestop-shell", severity, 23)]


def test_prestop_shell_on_distroless_with_a_script_that_is_not_a_sleep() -> None:
    text = manifest(image=DISTROLESS, lifecycle='{preStop: {exec: {command: [sh, -c, "kill -USR1 1"]}}}')
    f = only(text, "prestop-shell")
    assert f.severity is Severity.WARNING
    assert "native sleep" not in f.fix


# -- probes --------------------------------------------------------------------------------------------------------


def test_readiness_missing_points_at_the_container_and_says_lameducks_path() -> None:
    f = only(manifest(readinessProbe=None), "readiness-missing")
    assert (f.location.path, f.location.line, f.location.column) == (CONTAINER, CONTAINER_LINE, 11)
    assert f.fix == "readinessProbe: httpGet {path: /health/ready, port: 8000} (lameduck's readiness endpoint)"


def test_readiness_missing_for_a_native_sidecar_is_not_reported() -> None:
    text = BASE.replace(
        "      containers:\n",
        "      initContainers:\n"
        "        - {name: proxy, image: envoyproxy/envoy:v1.31.0, restartPolicy: Always,\n"
        "           ports: [{containerPort: 9901}]}\n"
        "      containers:\n",
    )
    assert check(text) == []


def test_liveness_is_readiness_identical_probes() -> None:
    f = only(manifest(livenessProbe="{httpGet: {path: /health/ready, port: http}}"), "liveness-is-readiness")
    assert f.message.startswith("the liveness probe is the readiness probe (same path and port)")
    assert (f.location.path, f.location.line) == (f"{CONTAINER}.livenessProbe", 21)
    assert f.fix == "livenessProbe: httpGet {path: /health/live, port: 8000} (lameduck's liveness endpoint)"


def test_liveness_is_readiness_same_path_other_port() -> None:
    text = manifest(
        command="[uvicorn, web:app, --host, 0.0.0.0]",
        readinessProbe="{httpGet: {path: /healthz, port: 8000}}",
        livenessProbe="{httpGet: {path: /healthz, port: http}, periodSeconds: 20}",
        startupProbe=None,
    )
    f = only(text, "liveness-is-readiness")
    assert f.message.startswith("the liveness probe uses the readiness path /healthz")
    assert (f.location.path, f.location.column) == (f"{CONTAINER}.livenessProbe.httpGet.path", 37)


def test_liveness_is_readiness_identical_exec_probes() -> None:
    probe = "{exec: {command: [/bin/grpc_health_probe, -addr=:8000]}}"
    text = manifest(command="[python, -m, web.grpc]", readinessProbe=probe, livenessProbe=probe, startupProbe=None)
    f = only(text, "liveness-is-readiness")
    assert "(same exec)" in f.message


def test_probe_timeout_numbers_and_fix() -> None:
    text = manifest(readinessProbe="{httpGet: {path: /health/ready, port: http}, timeoutSeconds: 10}")
    f = only(text, "probe-timeout")
    assert f.message == (
        "readinessProbe timeoutSeconds 10 ≥ periodSeconds 10: the kubelet runs probes one after another, so a hung "
        "endpoint stretches the period to the timeout and is noticed only after failureThreshold probes of 10 s each"
    )
    assert (f.location.path, f.location.line) == (f"{CONTAINER}.readinessProbe.timeoutSeconds", 20)
    assert f.fix == "set timeoutSeconds below periodSeconds (e.g. timeoutSeconds: 5)"
    fixed = text.replace("timeoutSeconds: 10", "timeoutSeconds: 5")
    assert check(fixed) == []


def test_probe_timeout_with_a_one_second_period_raises_the_period() -> None:
    # Before: "set timeoutSeconds below periodSeconds (e.g. timeoutSeconds: 1)", which is not below 1.
    text = manifest(readinessProbe="{httpGet: {path: /health/ready, port: http}, periodSeconds: 1}")
    f = only(text, "probe-timeout")
    assert f.message.startswith("readinessProbe timeoutSeconds 1 ≥ periodSeconds 1")
    assert (f.location.path, f.location.line) == (f"{CONTAINER}.readinessProbe.timeoutSeconds", 20)
    m = re.search(r"periodSeconds: (\d+)", f.fix)
    assert m is not None
    assert check(text.replace("periodSeconds: 1}", f"periodSeconds: {m[1]}}}")) == []


def test_initial_delay_fix_adds_a_startup_probe() -> None:
    text = manifest(
        startupProbe=None, livenessProbe="{httpGet: {path: /health/live, port: http}, initialDelaySeconds: 60}"
    )
    f = only(text, "initial-delay")
    assert f.severity is Severity.WARNING
    assert f.message == (
        "livenessProbe initialDelaySeconds 60: a fixed guess at the slowest startup (a slow start gets restarted, "
        "a fast one waits)"
    )
    assert (f.location.path, f.location.line) == (f"{CONTAINER}.livenessProbe.initialDelaySeconds", 21)
    m = re.search(r"periodSeconds (\d+), failureThreshold (\d+)", f.fix)
    assert m is not None
    assert int(m[1]) * int(m[2]) >= 60  # the startup probe allows at least as long as the delay did
    probe = f"{{httpGet: {{path: /health/startup, port: http}}, periodSeconds: {m[1]}, failureThreshold: {m[2]}}}"
    assert check(manifest(startupProbe=probe, livenessProbe="{httpGet: {path: /health/live, port: http}}")) == []


def test_probe_port_named_port_not_declared() -> None:
    f = only(manifest(readinessProbe="{httpGet: {path: /health/ready, port: probes}}"), "probe-port")
    assert (
        f.message == "readinessProbe uses the port name 'probes', which the container does not declare (declared: http)"
    )
    assert (f.location.path, f.location.line) == (f"{CONTAINER}.readinessProbe.httpGet.port", 20)


def test_probe_port_not_lameducks() -> None:
    text = manifest(readinessProbe="{httpGet: {path: /health/ready, port: 8080}}")
    f = only(text, "probe-port")
    assert f.message == "readinessProbe probes port 8080, but lameduck serves its probes on 8000"
    assert f.fix == "probe port 8000"
    assert check(text.replace("port: 8080", "port: 8000")) == []


def test_probe_port_the_app_port_when_probes_have_their_own() -> None:
    text = manifest(
        args='[--probe-port, "9000"]',
        ports="[{name: http, containerPort: 8000}, {name: probes, containerPort: 9000}]",
        readinessProbe="{httpGet: {path: /health/ready, port: http}}",
        livenessProbe="{httpGet: {path: /health/live, port: probes}}",
        startupProbe="{httpGet: {path: /health/startup, port: probes}, failureThreshold: 30}",
    )
    f = only(text, "probe-port")
    assert f.message == (
        "readinessProbe probes port 8000, but the app port 8000 serves only the app when --probe-port 9000 is set"
    )
    assert f.fix == "probe port 9000"
    assert check(text.replace("{path: /health/ready, port: http}", "{path: /health/ready, port: 9000}")) == []


def test_probe_port_not_declared_by_a_container_that_is_not_lameduck() -> None:
    text = manifest(
        command="[uvicorn, web:app, --host, 0.0.0.0]",
        readinessProbe="{httpGet: {path: /ready, port: 9090}}",
        livenessProbe="{httpGet: {path: /live, port: 8000}}",
        startupProbe=None,
    )
    f = only(text, "probe-port")
    assert f.severity is Severity.NOTE  # the kubelet probes undeclared ports too: worth knowing, not a failure
    assert f.message == (
        "readinessProbe probes port 9090, which is not among the container's declared ports (8000); the kubelet "
        "probes it anyway, so it works if something listens there"
    )


def test_probe_port_strings_of_digits_outside_ascii_do_not_crash() -> None:
    # Before: "²".isdigit() is True and float("²") raised ValueError out of check_document.
    text = manifest(readinessProbe='{httpGet: {path: /health/ready, port: "²"}}')
    assert summary(check(text)) == [("probe-port", "error", 20)]


@pytest.mark.parametrize(
    ("probe", "path", "severity", "message", "fix"),
    [
        (
            "readinessProbe",
            "/healthz",
            "error",
            "readinessProbe uses /healthz, which is not lameduck's readiness endpoint: it does not turn not-ready when "
            "the drain starts",
            "use path /health/ready",
        ),
        (
            "readinessProbe",
            "/health/startup",
            "error",
            "readinessProbe uses /health/startup, lameduck's endpoint for another probe: it never turns not-ready when "
            "the drain starts",
            "use path /health/ready",
        ),
        (
            "livenessProbe",
            "/ping",
            "warning",
            "livenessProbe uses /ping, which is not lameduck's liveness endpoint: it does not know lameduck's state",
            "use path /health/live",
        ),
        (
            "startupProbe",
            "/health/live",
            "warning",
            "startupProbe uses /health/live, lameduck's endpoint for another probe: it passes before startup is done",
            "use path /health/startup",
        ),
    ],
)
def test_probe_path(probe: str, path: str, severity: str, message: str, fix: str) -> None:
    text = manifest(**{probe: f"{{httpGet: {{path: {path}, port: http}}}}"})
    f = only(text, "probe-path")
    assert (f.severity.value, f.message, f.fix) == (severity, message, fix)
    assert (f.location.path, f.location.line) == (f"{CONTAINER}.{probe}.httpGet.path", LINE[probe])
    fixed = fix.removeprefix("use path ")
    assert check(manifest(**{probe: f"{{httpGet: {{path: {fixed}, port: http}}}}"})) == []


def test_values_quoted_from_the_manifest_keep_a_finding_on_one_line() -> None:
    # Before: a path with a newline (found by the property tests) split the message over two lines.
    f = only(manifest(readinessProbe='{httpGet: {path: "/a\\nb", port: http}}'), "probe-path")
    assert f.message.startswith("readinessProbe uses /a\\nb, which is not lameduck's readiness endpoint")


def test_probe_path_fix_names_the_custom_startup_path() -> None:
    text = manifest(args="[--startup-path, /zz/started]", startupProbe="{httpGet: {path: /health/live, port: http}}")
    assert only(text, "probe-path").fix == "use path /zz/started"


# -- listen-loopback and shell-form --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "how"),
    [
        ({"command": '[lameduck, serve, "web:app"]'}, "127.0.0.1 (--host defaults to 127.0.0.1)"),
        ({"command": '[lameduck, serve, "web:app", --host, localhost]'}, "localhost (--host localhost)"),
        (
            {"command": '[lameduck, serve, "web:app"]', "env": "[{name: LAMEDUCK_HOST, value: 127.0.0.1}]"},
            "127.0.0.1 (LAMEDUCK_HOST 127.0.0.1)",
        ),
        ({"command": "[python, -m, lameduck, serve, web:app]"}, "127.0.0.1 (--host defaults to 127.0.0.1)"),
    ],
)
def test_listen_loopback(fields: dict[str, str], how: str) -> None:
    text = manifest(**fields)
    f = only(text, "listen-loopback")
    assert f.message == (
        f"lameduck listens on {how}: the kubelet's probes and the Service connect to the pod IP, so nothing reaches it"
    )
    assert f.fix == "pass --host 0.0.0.0 (or :: for IPv6 and dual-stack clusters)"
    assert (f.location.path, f.location.line) == (f"{CONTAINER}.command", 16)
    assert check(apply(text, f.fix)) == []


def test_listen_loopback_probe_host() -> None:
    text = manifest(
        args='[--probe-port, "9000", --probe-host, 127.0.0.1]',
        ports="[{name: http, containerPort: 8000}, {name: probes, containerPort: 9000}]",
        readinessProbe="{httpGet: {path: /health/ready, port: probes}}",
        livenessProbe="{httpGet: {path: /health/live, port: probes}}",
        startupProbe=None,
    )
    f = only(text, "listen-loopback")
    assert f.message.startswith("lameduck listens on 127.0.0.1 (--probe-host 127.0.0.1)")
    assert f.fix.startswith("pass --probe-host 0.0.0.0")


def test_listen_loopback_of_a_worker_with_an_http_probe() -> None:
    text = manifest(command='[lameduck, work, "web.jobs:worker"]', readinessProbe=None, startupProbe=None)
    assert summary(check(text)) == [("listen-loopback", "error", 16)]


def test_shell_form_single_command_fix_is_the_exec_form() -> None:
    text = manifest(command='[sh, -c, "lameduck serve web:app --host 0.0.0.0"]')
    f = only(text, "shell-form")
    assert f.message == (
        "PID 1 is sh, which does not forward SIGTERM: the service is killed at the end of the grace period without "
        "draining"
    )
    assert f.fix == 'run it directly: command: ["lameduck", "serve", "web:app", "--host", "0.0.0.0"]'
    assert check(apply(text, f.fix)) == []


def test_shell_form_fix_quotes_words_as_yaml() -> None:
    text = manifest(command="""[sh, -c, "lameduck serve web:app --host 0.0.0.0 --ready-path '/r\\"x'"]""")
    f = next(f for f in check(text) if f.rule == "shell-form")
    words = yaml.safe_load(f.fix.removeprefix("run it directly: command: "))
    assert words == ["lameduck", "serve", "web:app", "--host", "0.0.0.0", "--ready-path", '/r"x']


def test_shell_form_chain_fix_puts_exec_in_front() -> None:
    text = manifest(command="[/bin/sh, -c]", args='["alembic upgrade head && lameduck serve web:app --host 0.0.0.0"]')
    f = only(text, "shell-form")
    assert f.fix == (
        "put exec in front of the last command (lameduck serve web:app --host … → exec lameduck serve web:app --host …)"
    )
    assert (f.location.path, f.location.line) == (f"{CONTAINER}.command", 16)
    assert check(apply(text, f.fix)) == []


def test_shell_form_still_judges_the_lameduck_it_runs() -> None:
    text = manifest(command='[sh, -c, "lameduck serve web:app"]', terminationGracePeriodSeconds="20")
    assert summary(check(text)) == [
        ("grace-period", "error", 12),
        ("listen-loopback", "error", 16),
        ("shell-form", "error", 16),
    ]


def test_shell_form_script_file_is_a_warning() -> None:
    text = manifest(
        command="[bash, /app/start.sh]", readinessProbe=None, livenessProbe=None, startupProbe=None, ports=None
    )
    f = only(text, "shell-form")
    assert f.severity is Severity.WARNING
    assert (
        f.message
        == "PID 1 is bash running a script file: unless the script ends with exec, bash keeps SIGTERM to itself"
    )


# -- rollout-capacity ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "strategy", "line", "message"),
    [
        (
            "3",
            "{rollingUpdate: {maxUnavailable: 1, maxSurge: 1}}",
            7,
            "maxUnavailable 1 with 3 replica(s): each rollout step stops 1 pod(s) (33% of capacity)",
        ),
        ("4", None, 5, "maxUnavailable 25% with 4 replica(s): each rollout step stops 1 pod(s) (25% of capacity)"),
        (
            "10",
            "{rollingUpdate: {maxUnavailable: 50%}}",
            7,
            "maxUnavailable 50% with 10 replica(s): each rollout step stops 5 pod(s) (50% of capacity)",
        ),
        (
            "2",
            "{rollingUpdate: {maxUnavailable: 5}}",
            7,
            "maxUnavailable 5 with 2 replica(s): each rollout step stops 2 pod(s) (100% of capacity)",
        ),
    ],
)
def test_rollout_capacity(replicas: str, strategy: str | None, line: int, message: str) -> None:
    text = manifest(replicas=replicas, strategy=strategy)
    f = only(text, "rollout-capacity")
    assert f.severity is Severity.WARNING
    assert f.message == message + " before its replacement is ready"
    assert f.location.line == line
    assert f.container == ""
    assert check(apply(text, f.fix)) == []


def test_rollout_capacity_recreate() -> None:
    text = manifest(replicas="2", strategy="{type: Recreate}")
    f = only(text, "rollout-capacity")
    assert f.message == "strategy Recreate stops all 2 pod(s) before any new one starts: every deploy is an outage"
    assert (f.location.path, f.location.line, f.location.column) == ("spec.strategy.type", 7, 14)
    assert check(apply(text, f.fix)) == []


@pytest.mark.parametrize("value", ['"nan%"', '"inf%"', '"-inf%"', '"1e999%"', "true", "null", '"abc%"', '"1"'])
def test_rollout_capacity_nonsense_values_are_not_judged(value: str) -> None:
    # Before: "nan%" and "inf%" raised ValueError/OverflowError out of check_document.
    text = manifest(strategy=f"{{rollingUpdate: {{maxUnavailable: {value}, maxSurge: 1}}}}")
    assert check(text) == []


def test_ignore_annotation_on_the_object_and_on_the_template() -> None:
    text = manifest(
        strategy="{type: Recreate}", readinessProbe="{httpGet: {path: /health/ready, port: http}, timeoutSeconds: 10}"
    )
    assert sorted(f.rule for f in check(text)) == ["probe-timeout", "rollout-capacity"]
    on_object = text.replace(
        "  name: web\n", '  name: web\n  annotations: {lameduck/ignore: "rollout-capacity, probe-timeout"}\n'
    )
    assert check(on_object) == []
    on_template = text.replace(
        "    metadata: {labels: {app: web}}",
        "    metadata: {labels: {app: web}, annotations: {lameduck/ignore: probe-timeout}}",
    )
    assert [f.rule for f in check(on_template)] == ["rollout-capacity"]


# -- duplicate-key -------------------------------------------------------------------------------------------------


def test_duplicate_key_position_and_subject() -> None:
    text = BASE.replace(
        "      terminationGracePeriodSeconds: 30\n",
        "      terminationGracePeriodSeconds: 30\n      dnsPolicy: ClusterFirst\n      dnsPolicy: Default\n",
    )
    f = only(text, "duplicate-key")
    assert f.message == (
        "key 'dnsPolicy' is written twice in the same mapping (the last one wins here; kubectl rejects the file)"
    )
    assert f.location == Location("test.yaml", 0, "spec.template.spec.dnsPolicy", 14, 7)
    assert (f.kind, f.name) == ("Deployment", "web")


def test_duplicate_key_in_flow_style_and_in_a_list_item() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n  - {kind: ConfigMap, metadata: {name: a, name: b}}\n"
    f = only(text, "duplicate-key")
    assert f.location == Location("test.yaml", 0, "items[0].metadata.name", 4, 43)
    assert (f.kind, f.name) == ("List", "")


def test_duplicate_key_the_last_value_is_judged_where_it_is_written() -> None:
    text = BASE.replace(
        "          lifecycle: {}\n",
        "          lifecycle: {}\n          readinessProbe:\n            httpGet: {path: /healthz, port: http}\n",
    )
    assert summary(check(text)) == [("duplicate-key", "error", 24), ("probe-path", "error", 25)]


# -- robustness of the rules on odd but loadable input --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "kind: Deployment\nspec: {template: {spec: {containers: [{command: 5, args: {x: 1}, env: [1, {a: 2}]}]}}}",
        "kind: Deployment\nspec: {replicas: 1e999, template: {spec: {terminationGracePeriodSeconds: -5}}}",
        "kind: Deployment\nspec: {template: {spec: {terminationGracePeriodSeconds: 0, containers: [{ports: [x, 3]}]}}}",
        "kind: Pod\nspec: {containers: [{lifecycle: {preStop: {sleep: {seconds: .inf}}}}]}\n",
        "kind: Pod\nspec: {containers: [{lifecycle: {preStop: {exec: {command: [sh, -c]}}}, image: distroless}]}\n",
        "kind: Pod\nspec: {containers: [{readinessProbe: {httpGet: {port: [1]}},"
        " livenessProbe: {timeoutSeconds: .nan}, startupProbe: {periodSeconds: .inf}}]}",
        "kind: CronJob\nspec: {jobTemplate: [1]}\n",
        "kind: List\nitems: [{kind: List, items: [{kind: Pod, spec: {containers: null}}]}]\n",
    ],
)
def test_rules_never_crash_on_odd_values(text: str) -> None:
    for f in check(text):
        assert f.rule in MANIFEST_RULES


# -- the corpus ----------------------------------------------------------------------------------------------------

#: (rule, severity, line) of every finding in every corpus file, checked by hand against the file.
GOLDEN: dict[str, list[tuple[str, str, int]]] = {
    "anchors-merge-keys.yaml": [("probe-path", "warning", 30)],
    "argo-rollout-canary.yaml": [("grace-unused", "note", 35)],
    "bare-pod-debug.yaml": [("grace-period", "note", 17), ("readiness-missing", "warning", 20)],
    "cronjob-nightly.yaml": [],
    "daemonset-node-agent.yaml": [("grace-period", "error", 30)],
    "distroless-prestop-sh.yaml": [("prestop-shell", "warning", 46)],
    "lame-duck-off.yaml": [("no-endpoint-wait", "warning", 29)],
    "helm-quoted-numbers.yaml": [
        ("not-a-number", "error", 26),
        ("not-a-number", "error", 35),
        ("not-a-number", "error", 36),
    ],
    "slim-prestop-sleep.yaml": [
        ("grace-period", "error", 26),
        ("prestop-double-count", "warning", 44),
        ("prestop-shell", "note", 46),
    ],
    "django-gunicorn-probes.yaml": [
        ("initial-delay", "note", 66),
        ("initial-delay", "warning", 57),
        ("liveness-is-readiness", "error", 50),
        ("probe-timeout", "warning", 68),
        ("rollout-capacity", "warning", 23),
    ],
    "duplicate-keys.yaml": [("duplicate-key", "error", 28), ("duplicate-key", "error", 40)],
    "entrypoint-scripts.yaml": [
        ("prestop-double-count", "warning", 39),
        ("prestop-shell", "note", 41),
        ("shell-form", "warning", 59),
    ],
    "env-references.yaml": [("lameduck-settings", "error", 69)],
    "fastapi-uvicorn-bad.yaml": [("readiness-missing", "warning", 38), ("shell-form", "error", 40)],
    "helm-good-api.yaml": [],
    "job-migrate.yaml": [("shell-form", "error", 24)],
    "kubectl-get-deployment.json": [("probe-port", "error", 64)],
    "kubectl-get-list.yaml": [("probe-path", "error", 95), ("rollout-capacity", "warning", 69)],
    "lameduck-quickstart-loopback.yaml": [("listen-loopback", "error", 28)],
    "native-prestop-sleep.yaml": [("grace-period", "error", 49), ("prestop-double-count", "warning", 58)],
    "native-sidecar.yaml": [],
    "recreate-strategy.yaml": [("rollout-capacity", "warning", 16)],
    "statefulset-websocket.yaml": [("initial-delay", "warning", 68)],
    "worker-deployment.yaml": [],
}


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.suffix in (".yaml", ".yml", ".json"))


def test_the_golden_table_covers_the_corpus() -> None:
    assert sorted(GOLDEN) == [p.name for p in corpus_files()]


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    findings = check(text, path.name)
    assert summary(findings) == sorted(GOLDEN[path.name])
    lines = text.splitlines()
    for f in findings:
        assert f.location.file == path.name
        assert 1 <= f.location.line <= len(lines)
        assert f.location.column >= 1
        assert f.message
        assert f.fix


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_headers_announce_their_findings(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        header = json.loads(text)["metadata"]["annotations"]["lameduck/corpus"]
        announced = re.findall(r"\b([a-z]+(?:-[a-z]+)+) (error|warning|note)\b", header.split("Expected findings:")[1])
        assert "Expected findings:" in header
    else:
        comments = []
        for line in text.splitlines():
            if line.startswith("#"):
                comments.append(line)
            elif line.strip() and line.strip() != "---":
                break
        header = "\n".join(comments)
        assert "Expected findings:" in header
        announced = re.findall(r"^#\s+([a-z]+(?:-[a-z]+)+)\s+(error|warning|note)\b", header, re.MULTILINE)
        if "Expected findings: none." in header:
            assert announced == []
    assert Counter(announced) == Counter((rule, severity) for rule, severity, _ in GOLDEN[path.name])


def test_the_corpus_exercises_every_manifest_rule() -> None:
    fired = {rule for expected in GOLDEN.values() for rule, _, _ in expected}
    assert fired == MANIFEST_RULES
