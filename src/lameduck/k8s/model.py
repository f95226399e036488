"""From Kubernetes objects to the pod templates and containers the rules look at.

Every workload kind nests the same PodSpec at a different path; this module knows those paths (``POD_SPEC``) and
reads the values the kubelet will use, defaults included (probe timings, terminationGracePeriodSeconds, preStop
durations), so the rules can compare numbers without knowing YAML.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lameduck.k8s.command import AppSettings, app_settings, expand, shell_run
from lameduck.k8s.loader import Document, Path

_T = TypeVar("_T")

#: Where each kind keeps its PodSpec. Argo Rollouts' Rollout has a Deployment's shape.
POD_SPEC: dict[str, Path] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Rollout": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
#: Kinds whose pods run to completion: nothing routes traffic to them, so no readiness is needed.
BATCH = frozenset({"Job", "CronJob"})
#: Kubernetes' defaults (https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/).
DEFAULT_GRACE = 30
PROBE_DEFAULTS = {"periodSeconds": 10, "timeoutSeconds": 1, "failureThreshold": 3, "initialDelaySeconds": 0}
#: Annotation naming rules to skip for one object: ``lameduck/ignore: "rollout-capacity,probe-timeout"``.
IGNORE_ANNOTATION = "lameduck/ignore"


def get(data: Any, *path: str | int) -> Any:
    """``data[path...]`` or None, whatever types are met on the way (manifests are untrusted input)."""
    for part in path:
        if isinstance(part, int):
            if not isinstance(data, list) or part >= len(data):
                return None
            data = data[part]
        else:
            if not isinstance(data, dict):
                return None
            data = data.get(part)
    return data


def number(value: Any) -> float | None:
    """A numeric field as Kubernetes reads it; None for anything else (strings, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(slots=True)
class Context:
    """What other objects in the same check run tell about a workload: ConfigMaps its containers read env from
    (``envFrom``, ``configMapKeyRef``) and HorizontalPodAutoscalers that own its replica count.

    Keys are (namespace, name); an object without a namespace matches any namespace (``helm template`` output
    usually has none).
    """

    configmaps: dict[tuple[str, ...], dict[str, str]] = field(default_factory=dict)
    hpa_min_replicas: dict[tuple[str, ...], int] = field(default_factory=dict)

    def add(self, data: Any) -> None:
        """Index ``data`` (one object, or a List of them) if it is a ConfigMap or an HPA."""
        if not isinstance(data, dict):
            return
        kind = data.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(data.get("items"), list):
            for item in data["items"]:
                self.add(item)
            return
        namespace = _scalar(get(data, "metadata", "namespace"))
        name = get(data, "metadata", "name")
        if not isinstance(name, str):
            return
        if kind == "ConfigMap" and isinstance(data.get("data"), dict):
            self.configmaps[(namespace, name)] = {str(k): _scalar(v) for k, v in data["data"].items()}
        elif kind == "HorizontalPodAutoscaler":
            target_kind, target_name = (
                get(data, "spec", "scaleTargetRef", "kind"),
                get(data, "spec", "scaleTargetRef", "name"),
            )
            low = get(data, "spec", "minReplicas")
            low_n = number(low) if low is not None else 1.0
            if isinstance(target_kind, str) and isinstance(target_name, str) and low_n is not None:
                self.hpa_min_replicas[(namespace, target_kind, target_name)] = int(low_n)

    def configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        return _in_namespace(self.configmaps, namespace, name)

    def min_replicas(self, namespace: str, kind: str, name: str) -> int | None:
        return _in_namespace(self.hpa_min_replicas, namespace, kind, name)


def _in_namespace(table: Mapping[tuple[str, ...], _T], namespace: str, *key: str) -> _T | None:
    """``table[(namespace, *key)]``; else the one entry for ``key`` where either side has no namespace."""
    found = table.get((namespace, *key))
    if found is None:
        matches = [v for (ns, *rest), v in table.items() if tuple(rest) == key and (not ns or not namespace)]
        found = matches[0] if len(matches) == 1 else None
    return found


@dataclass(slots=True)
class Workload:
    """One object that carries a pod template."""

    doc: Document
    path: Path  # of the object inside the document (``()``, or ``("items", 3)`` inside a List)
    obj: dict[str, Any]
    kind: str
    name: str
    pod_path: Path
    pod: dict[str, Any]
    ignored: frozenset[str] = frozenset()
    context: Context = field(default_factory=Context)

    def pod_annotations(self) -> dict[str, Any]:
        """The pod's annotations: the template's, or a bare Pod's own."""
        spec = POD_SPEC[self.kind]
        meta = get(self.obj, *spec[:-1], "metadata") if len(spec) > 1 else self.obj.get("metadata")
        found = get(meta, "annotations")
        return found if isinstance(found, dict) else {}

    def mesh_rewrites_probes(self) -> bool:
        """Istio's injector rewrites HTTP probes to its agent (port 15020, ``/app-health/<container>/…``) and
        records it in ``sidecar.istio.io/status``: such probes are judged by what they were, not what they are."""
        return "sidecar.istio.io/status" in self.pod_annotations()

    @property
    def namespace(self) -> str:
        return _scalar(get(self.obj, "metadata", "namespace"))

    @property
    def grace(self) -> float | None:
        """terminationGracePeriodSeconds (30 when absent); None when it is not a number."""
        value = self.pod.get("terminationGracePeriodSeconds")
        if value is None:
            return float(DEFAULT_GRACE)
        return number(value)

    def containers(self) -> Iterator[Container]:
        """Main containers, then native sidecars (init containers with ``restartPolicy: Always``), which also
        receive SIGTERM at pod termination; ordinary init containers have finished long before."""
        for key in ("containers", "initContainers"):
            items = self.pod.get(key)
            if not isinstance(items, list):
                continue
            for i, c in enumerate(items):
                if not isinstance(c, dict):
                    continue
                sidecar = key == "initContainers"
                if sidecar and c.get("restartPolicy") != "Always":
                    continue
                yield Container(self, (*self.pod_path, key, i), c, sidecar)


@dataclass(slots=True)
class Container:
    workload: Workload
    path: Path
    spec: dict[str, Any]
    sidecar: bool
    _app: AppSettings | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return str(self.spec.get("name", ""))

    @property
    def image(self) -> str:
        return str(self.spec.get("image", ""))

    def env(self) -> dict[str, str | None]:
        """The container's environment as far as the manifest shows it, in the kubelet's order: ``envFrom`` first
        (ConfigMaps found in the same check run; Secrets and unseen ConfigMaps contribute nothing known), then
        ``env`` with ``$(VAR)`` expanded in order. None marks a variable whose value the manifest does not show
        (``valueFrom`` a Secret, the downward API, a ConfigMap not among the inputs)."""
        out: dict[str, str | None] = {}
        context = self.workload.context
        namespace = self.workload.namespace
        sources = self.spec.get("envFrom")
        if isinstance(sources, list):
            for source in sources:
                ref = get(source, "configMapRef", "name")
                if not isinstance(ref, str):
                    continue
                data = context.configmap(namespace, ref)
                prefix = _scalar(get(source, "prefix"))
                for var, text in (data or {}).items():
                    out[prefix + var] = text
        items = self.spec.get("env")
        if not isinstance(items, list):
            return out
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue
            value = item.get("value")
            if "valueFrom" in item:
                key_ref = get(item, "valueFrom", "configMapKeyRef")
                map_name = get(key_ref, "name")
                data = context.configmap(namespace, map_name) if isinstance(map_name, str) else None
                wanted = get(key_ref, "key")
                out[item["name"]] = data.get(wanted) if data is not None and isinstance(wanted, str) else None
            elif value is None:
                out[item["name"]] = ""
            else:
                out[item["name"]] = expand(_scalar(value), out)
        return out

    def unseen_env_sources(self) -> list[str]:
        """``envFrom`` ConfigMaps and Secrets that are not among the inputs: LAMEDUCK_* settings may hide there."""
        unseen: list[str] = []
        sources = self.spec.get("envFrom")
        for source in sources if isinstance(sources, list) else []:
            for key in ("configMapRef", "secretRef"):
                name = get(source, key, "name")
                if not isinstance(name, str):
                    continue
                if key == "secretRef" or self.workload.context.configmap(self.workload.namespace, name) is None:
                    unseen.append(name)
        return unseen

    def argv(self) -> tuple[list[str] | None, Path]:
        """command + args, expanded, and the path to point at; None when neither is set (the image decides).
        A reference to a variable whose value the manifest does not show stays as written (``$(DB_URL)``).

        ``args`` alone replace the image's CMD and are appended to its ENTRYPOINT; images built for Python rarely
        have an ENTRYPOINT, so ``args`` are judged as the command line.
        """
        command, args = self.spec.get("command"), self.spec.get("args")
        # An empty list is the same as none (the API drops it): helm charts render ``args: []`` by default.
        command = command if isinstance(command, list) and command else None
        args = args if isinstance(args, list) and args else None
        if command is None and args is None:
            return None, self.path
        words = [_scalar(w) for part in (command, args) if part is not None for w in part]
        env = self.env()
        where = (*self.path, "command") if command is not None else (*self.path, "args")
        return [expand(w, env, keep_hidden=True) for w in words], where

    @property
    def app(self) -> AppSettings:
        if self._app is None:
            argv, _ = self.argv()
            self._app = app_settings(argv or [], self.env())
        return self._app

    def shows_command(self) -> bool:
        """The manifest says what runs (command/args) or configures lameduck (LAMEDUCK_* env)."""
        argv, _ = self.argv()
        return argv is not None or any(k.startswith("LAMEDUCK_") for k in self.env())

    def probe(self, kind: str) -> dict[str, Any] | None:
        value = self.spec.get(kind)
        return value if isinstance(value, dict) else None

    def ports(self) -> tuple[dict[str, int], set[int]]:
        """Declared ports: by name, and the set of numbers."""
        named: dict[str, int] = {}
        numbers: set[int] = set()
        items = self.spec.get("ports")
        if isinstance(items, list):
            for p in items:
                n = number(get(p, "containerPort"))
                if n is None:
                    continue
                numbers.add(int(n))
                if isinstance(get(p, "name"), str):
                    named[p["name"]] = int(n)
        return named, numbers

    def pre_stop(self) -> dict[str, Any] | None:
        value = get(self.spec, "lifecycle", "preStop")
        return value if isinstance(value, dict) else None


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


_SLEEP = re.compile(r"(?:^|[\s;&|(])(?:/usr)?(?:/bin/)?sleep\s+(\S+)")
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
#: Shell words that repeat or branch: a script's sleeps then do not simply add up.
_CONTROL = re.compile(r"(?:^|[\s;&|(])(?:while|until|for|if|case)\s")


def sleep_seconds(script: str) -> float | None:
    """What the ``sleep`` commands of a straight-line script add up to (``sleep 5``, ``sleep 1m``, GNU's
    ``sleep 1m 30s``); None when it cannot be known: no sleep, ``sleep infinity``, a variable, a loop."""
    if _CONTROL.search(script):
        return None
    total, found = 0.0, False
    for match in _SLEEP.finditer(script):
        found = True
        tail = script[match.start(1) :]
        words = re.split(r"[;&|)\n]", tail, maxsplit=1)[0].split()
        for word in words:
            duration = _DURATION.fullmatch(word)
            if duration is None:
                return None  # infinity, $VAR, a flag: not a known duration
            total += float(duration.group(1)) * _UNITS[duration.group(2)]
    return total if found else None


@dataclass(frozen=True, slots=True)
class PreStop:
    """What a preStop hook does to the timeline: how long it holds SIGTERM back, and how."""

    kind: str  # "sleep" (native), "exec", "httpGet", "tcpSocket", "unknown"
    seconds: float | None  # None: cannot be known from the manifest
    shell: bool = False
    command: tuple[str, ...] = ()


def read_pre_stop(hook: Mapping[str, Any]) -> PreStop:
    """The hook's duration where the manifest shows it: ``sleep: {seconds: 5}``, ``exec: [sleep, 5]`` or a shell
    script whose sleeps add up; an HTTP hook's duration is the app's business (unknown)."""
    if isinstance(hook.get("sleep"), dict):
        return PreStop("sleep", number(hook["sleep"].get("seconds")))
    command = get(hook, "exec", "command")
    if isinstance(command, list):
        words = tuple(_scalar(w) for w in command)
        run = shell_run(words)
        text = run.script if run is not None and run.script is not None else " ".join(words)
        return PreStop("exec", sleep_seconds(text), shell=run is not None, command=words)
    if "httpGet" in hook:
        return PreStop("httpGet", None)
    if "tcpSocket" in hook:
        return PreStop("tcpSocket", None)
    return PreStop("unknown", None)


def workloads(doc: Document, context: Context | None = None) -> Iterator[Workload]:
    """Every object in ``doc`` that carries a pod template (``kind: List`` is opened)."""
    yield from _walk(doc, doc.data, (), context or Context())


def _walk(doc: Document, obj: Any, path: Path, context: Context) -> Iterator[Workload]:
    if not isinstance(obj, dict):
        return
    kind = obj.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(obj.get("items"), list):
        for i, item in enumerate(obj["items"]):
            yield from _walk(doc, item, (*path, "items", i), context)
        return
    if not isinstance(kind, str) or kind not in POD_SPEC:
        return
    pod = get(obj, *POD_SPEC[kind])
    if not isinstance(pod, dict):
        return
    name = get(obj, "metadata", "name")
    yield Workload(
        doc,
        path,
        obj,
        kind,
        _scalar(name) if name is not None else "",
        (*path, *POD_SPEC[kind]),
        pod,
        _ignored(obj, kind),
        context,
    )


def _ignored(obj: dict[str, Any], kind: str) -> frozenset[str]:
    found: set[str] = set()
    template_meta = get(obj, *POD_SPEC[kind][:-1], "metadata") if len(POD_SPEC[kind]) > 1 else None
    for meta in (obj.get("metadata"), template_meta):
        value = get(meta, "annotations", IGNORE_ANNOTATION)
        if isinstance(value, str):
            found.update(part.strip() for part in value.split(",") if part.strip())
    return frozenset(found)


def is_object(data: Any) -> bool:
    """A Kubernetes object (or List of them): has a kind."""
    return isinstance(data, dict) and isinstance(data.get("kind"), str)
