"""What other objects of the same ``check`` run tell about a workload: ConfigMaps its containers read their
LAMEDUCK_* settings from, and HorizontalPodAutoscalers that own its replica count. Also the severities that depend
on how sure the rule can be (assumed settings, identical TCP probes) and TCP readiness on a lameduck container."""

from __future__ import annotations

from pathlib import Path

from lameduck.k8s.check import check_paths
from lameduck.k8s.findings import Finding, Severity
from lameduck.k8s.loader import load
from lameduck.k8s.model import Context
from lameduck.k8s.rules import check_document

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  REPLICAS
  strategy: {rollingUpdate: {maxUnavailable: 1, maxSurge: 1}}
  template:
    spec:
      terminationGracePeriodSeconds: 20
      containers:
        - name: web
          image: ghcr.io/acme/web:1.0
          command: [lameduck, serve, "web:app", --host, 0.0.0.0]
          ENV
          ports: [{name: http, containerPort: 8000}]
          readinessProbe: {httpGet: {path: /health/ready, port: http}}
          livenessProbe: {httpGet: {path: /health/live, port: http}}
"""
CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: web-shutdown, namespace: shop}
data:
  LAMEDUCK_GRACE: "20"
  GRACE_FOR_KEYREF: "20"
"""
HPA = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 12
  maxReplicas: 40
"""


def _deployment(env: str = "env: []", replicas: str = "replicas: 3") -> str:
    return DEPLOYMENT.replace("ENV", env).replace("REPLICAS", replicas)


def _rules(findings: list[Finding]) -> list[str]:
    return sorted(f.rule for f in findings)


def _check(*texts: str) -> list[Finding]:
    docs = [doc for i, text in enumerate(texts) for doc in load(text, f"f{i}.yaml")]
    context = Context()
    for doc in docs:
        context.add(doc.data)
    return [f for doc in docs for f in check_document(doc, context)]


def test_grace_from_an_envfrom_configmap_in_another_file_counts(tmp_path: Path) -> None:
    deployment = _deployment("envFrom: [{configMapRef: {name: web-shutdown}}]")
    # Alone, lameduck plans for its default 30 s in a 20 s pod ...
    (alone,) = [f for f in _check(deployment) if f.rule == "grace-period"]
    assert "(envFrom web-shutdown is not among the inputs: settings there were not seen)" in alone.message
    # ... with the ConfigMap that sets LAMEDUCK_GRACE=20 in the same run, it fits.
    (tmp_path / "a-deploy.yaml").write_text(deployment)
    (tmp_path / "b-config.yaml").write_text(CONFIGMAP)
    report = check_paths([str(tmp_path)])
    assert "grace-period" not in _rules(report.findings)


def test_configmap_key_ref_and_prefix() -> None:
    keyref = _deployment(
        "env: [{name: LAMEDUCK_GRACE, valueFrom: {configMapKeyRef: {name: web-shutdown, key: GRACE_FOR_KEYREF}}}]"
    )
    assert "grace-period" not in _rules(_check(keyref, CONFIGMAP))
    prefixed = _deployment("envFrom: [{prefix: X_, configMapRef: {name: web-shutdown}}]")
    assert "grace-period" in _rules(_check(prefixed, CONFIGMAP)), "X_LAMEDUCK_GRACE is not lameduck's setting"


def test_a_configmap_in_another_namespace_does_not_count() -> None:
    other = CONFIGMAP.replace("namespace: shop", "namespace: billing")
    assert "grace-period" in _rules(_check(_deployment("envFrom: [{configMapRef: {name: web-shutdown}}]"), other))


def test_an_unseen_configmap_key_is_unknown_not_a_default() -> None:
    keyref = _deployment("env: [{name: LAMEDUCK_GRACE, valueFrom: {configMapKeyRef: {name: elsewhere, key: g}}}]")
    assert "grace-period" not in _rules(_check(keyref)), "a grace the manifest does not show is not judged"


def test_hpa_min_replicas_counts_when_replicas_is_left_to_it() -> None:
    no_replicas = _deployment(replicas="minReadySeconds: 5")
    alone = [f for f in _check(no_replicas) if f.rule == "rollout-capacity"]
    assert "with 1 replica(s)" in alone[0].message
    with_hpa = [f for f in _check(no_replicas, HPA) if f.rule == "rollout-capacity"]
    assert with_hpa == [], "1 of 12 pods is under 10 %: FEW_REPLICAS does not apply"
    small_hpa = _check(no_replicas, HPA.replace("minReplicas: 12", "minReplicas: 4"))
    (finding,) = [f for f in small_hpa if f.rule == "rollout-capacity"]
    assert "with 4 replica(s) (the HorizontalPodAutoscaler's minReplicas)" in finding.message


def test_assumed_defaults_make_grace_period_a_note() -> None:
    image_command = _deployment().replace('          command: [lameduck, serve, "web:app", --host, 0.0.0.0]\n', "")
    (finding,) = [f for f in _check(image_command) if f.rule == "grace-period"]
    # The image may run anything (a redis subchart): a note, and the fix says when it applies.
    assert finding.severity is Severity.NOTE
    assert "lameduck defaults assumed" in finding.message
    assert finding.fix.startswith("if the image runs lameduck: raise terminationGracePeriodSeconds to 30")
    (shown,) = [f for f in _check(_deployment()) if f.rule == "grace-period"]
    assert shown.severity is Severity.ERROR


def test_identical_tcp_probes_are_a_warning_identical_http_probes_an_error() -> None:
    tcp = _deployment().replace(
        "readinessProbe: {httpGet: {path: /health/ready, port: http}}", "readinessProbe: {tcpSocket: {port: http}}"
    )
    tcp = tcp.replace(
        "livenessProbe: {httpGet: {path: /health/live, port: http}}", "livenessProbe: {tcpSocket: {port: http}}"
    )
    (same_tcp,) = [f for f in _check(tcp) if f.rule == "liveness-is-readiness"]
    assert same_tcp.severity is Severity.WARNING
    http = _deployment().replace("/health/live", "/health/ready")
    (same_http,) = [f for f in _check(http) if f.rule == "liveness-is-readiness"]
    assert same_http.severity is Severity.ERROR


def test_tcp_readiness_on_a_lameduck_container_never_turns_not_ready() -> None:
    tcp = _deployment().replace(
        "readinessProbe: {httpGet: {path: /health/ready, port: http}}", "readinessProbe: {tcpSocket: {port: http}}"
    )
    (finding,) = [f for f in _check(tcp) if f.rule == "probe-path"]
    assert finding.severity is Severity.ERROR
    assert finding.location.path.endswith("readinessProbe.tcpSocket")
    assert finding.fix == "readinessProbe: httpGet {path: /health/ready, port: 8000}"
    uvicorn = tcp.replace('[lameduck, serve, "web:app", --host, 0.0.0.0]', "[uvicorn, web:app, --host, 0.0.0.0]")
    assert "probe-path" not in _rules(_check(uvicorn)), "only lameduck's readiness is known to flip"
