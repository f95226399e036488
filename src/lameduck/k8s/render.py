"""``lameduck k8s render``: the manifests ``check`` would write for you.

A Deployment, a Service and a PodDisruptionBudget whose numbers come from the same settings and the same budget
arithmetic the runtime uses: terminationGracePeriodSeconds = preStop + lameduck's grace, probes on lameduck's probe
port and paths, exec-form command, surge-only rollout. ``tests/unit/test_k8s_render.py`` runs ``check`` over every
rendered variant and expects no findings at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import yaml

from lameduck.config import Settings
from lameduck.core.budget import format_seconds as _n
from lameduck.errors import ConfigError

_IN_CLUSTER = {"KUBERNETES_SERVICE_HOST": "in-cluster"}


@dataclass(frozen=True, slots=True)
class RenderOptions:
    name: str
    image: str
    target: str  # MODULE:ATTR
    worker: bool = False  # lameduck work: no Service, no app port
    replicas: int = 2
    namespace: str | None = None
    port: int = 8000
    probe_port: int = 9000
    grace: float | None = None
    lame_duck: float | None = None
    drain_timeout: float | None = None
    cleanup_timeout: float | None = None
    prestop_sleep: int = 0
    service_port: int = 80


def settings_for(opts: RenderOptions) -> Settings:
    """Validated lameduck settings as the pod will run them (in-cluster: ``auto`` lame-duck resolves to 5 s,
    or to 0 when a preStop sleep already waits for endpoint removal)."""
    if opts.prestop_sleep < 0:
        raise ConfigError("--prestop-sleep", f"must be ≥ 0 seconds (got {opts.prestop_sleep})")
    if not opts.worker and not opts.prestop_sleep and opts.lame_duck == 0:
        raise ConfigError(
            "--lame-duck",
            "0 with no --prestop-sleep: nothing would wait for endpoint removal after SIGTERM (new connections are "
            "refused for 1-5 s); leave it auto or pass --prestop-sleep 5",
        )
    if opts.prestop_sleep and opts.lame_duck:
        raise ConfigError(
            "--prestop-sleep",
            f"and --lame-duck {_n(opts.lame_duck)} both wait for endpoint removal; choose one (the other 0)",
        )
    values: dict[str, Any] = {
        "grace": opts.grace,
        "lame_duck": 0.0 if opts.prestop_sleep and opts.lame_duck is None else opts.lame_duck,
        "drain_timeout": opts.drain_timeout,
        "cleanup_timeout": opts.cleanup_timeout,
        # lameduck work serves its probes on --port (it has no app port); serve keeps them apart.
        "port": opts.probe_port if opts.worker else opts.port,
        "probe_port": None if opts.worker else opts.probe_port,
        "host": "0.0.0.0",  # a pod must listen on its pod IP: probes and Services connect there
    }
    return Settings.load({k: v for k, v in values.items() if v is not None}, _IN_CLUSTER, work_only=opts.worker)


def _env(settings: Settings) -> list[dict[str, str]]:
    """The budget's parts as explicit env vars: readable in ``kubectl describe`` and editable in one place."""
    budget = settings.budget()
    env = [
        {"name": "LAMEDUCK_GRACE", "value": _n(settings.grace)},
        {"name": "LAMEDUCK_LAME_DUCK", "value": _n(budget.lame_duck)},
        {"name": "LAMEDUCK_CLEANUP_TIMEOUT", "value": _n(budget.cleanup)},
    ]
    if settings.drain_timeout is not None:
        env.insert(2, {"name": "LAMEDUCK_DRAIN_TIMEOUT", "value": _n(settings.drain_timeout)})
    return env


def render(opts: RenderOptions) -> str:
    """Multi-document YAML with a comment header that shows the shutdown timeline. Raises ``ConfigError``."""
    settings = settings_for(opts)
    labels = {"app.kubernetes.io/name": opts.name}
    meta: dict[str, Any] = {"name": opts.name, "labels": dict(labels)}
    if opts.namespace:
        meta["namespace"] = opts.namespace
    command = ["lameduck", "work" if opts.worker else "serve", opts.target, "--host", "0.0.0.0"]
    ports = [{"name": "probes", "containerPort": opts.probe_port}]
    if opts.worker:
        command += ["--port", str(opts.probe_port)]
        probe_port_name = "probes"
    else:
        command += ["--port", str(opts.port), "--probe-port", str(opts.probe_port)]
        ports.insert(0, {"name": "http", "containerPort": opts.port})
        probe_port_name = "probes"
    container: dict[str, Any] = {
        "name": opts.name,
        "image": opts.image,
        "command": command,
        "env": _env(settings),
        "ports": ports,
    }
    if not opts.worker:
        container["readinessProbe"] = {
            "httpGet": {"path": settings.ready_path, "port": probe_port_name},
            "periodSeconds": 2,
            "timeoutSeconds": 1,
            "failureThreshold": 1,
        }
    container["livenessProbe"] = {
        "httpGet": {"path": settings.live_path, "port": probe_port_name},
        "periodSeconds": 10,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }
    container["startupProbe"] = {
        "httpGet": {"path": settings.startup_path, "port": probe_port_name},
        "periodSeconds": 2,
        "timeoutSeconds": 1,
        "failureThreshold": max(3, math.ceil(settings.startup_timeout / 2)),
    }
    if opts.prestop_sleep:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": opts.prestop_sleep}}}
    grace_seconds = math.ceil(opts.prestop_sleep + settings.grace)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": opts.replicas,
            "selector": {"matchLabels": dict(labels)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"terminationGracePeriodSeconds": grace_seconds, "containers": [container]},
            },
        },
    }
    documents: list[dict[str, Any]] = [deployment]
    if not opts.worker:
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": meta,
                "spec": {
                    "selector": dict(labels),
                    "ports": [{"name": "http", "port": opts.service_port, "targetPort": "http"}],
                },
            }
        )
    documents.append(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta,
            # maxUnavailable, not minAvailable: with one replica, minAvailable 1 would block every node drain.
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(labels)}},
        }
    )
    header = _header(opts, settings, grace_seconds)
    body = yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=None, width=120, explicit_start=True)
    return header + body


def _header(opts: RenderOptions, settings: Settings, grace_seconds: int) -> str:
    budget = settings.budget()
    lines = [
        f"# Rendered by `lameduck k8s render` for {opts.target} (lameduck {'work' if opts.worker else 'serve'}).",
        f"# terminationGracePeriodSeconds {grace_seconds} = "
        + (f"preStop sleep {opts.prestop_sleep} + " if opts.prestop_sleep else "")
        + f"lameduck --grace {_n(settings.grace)}; after SIGTERM:",
    ]
    lines += [f"#   {row}" for row in budget.explain().splitlines()]
    if opts.worker:
        lines.append("# lameduck work: nothing routes traffic to a worker, so no lame-duck window, no readiness probe,")
        lines.append("# no preStop hook and no Service; the drain gets the rest of the grace period.")
    elif opts.prestop_sleep:
        lines.append(f"# The native preStop sleep ({opts.prestop_sleep} s, Kubernetes 1.30+) waits for endpoint")
        lines[-1] += " removal,"
        lines.append("# so lameduck's lame-duck window is 0.")
    else:
        lines.append(f"# No preStop hook: lameduck's lame-duck window ({_n(budget.lame_duck)} s) keeps serving while")
        lines.append("# endpoints are removed (no shell and no sleep binary needed in the image).")
    return "\n".join(lines) + "\n"
