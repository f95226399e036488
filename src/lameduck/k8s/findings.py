"""What ``lameduck k8s check`` reports: the rule catalogue and one finding per problem found.

The catalogue is data so that the text report, the JSON report, the SARIF ``tool.driver.rules`` table and the docs
page all say the same thing about a rule. A finding carries everything a person needs to act without reading the
manifest twice: where (file, document, object, container, YAML path, line), how bad, what is wrong with the numbers
that make it wrong, and the fix.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Severity(enum.Enum):
    """SARIF's levels, so that code-scanning UIs show ours unchanged.

    ``error``: the pod will lose requests or work on every deploy (or will not start); ``check`` exits 1.
    ``warning``: it can lose them under conditions that are common enough to fix now.
    ``note``: a better way exists; nothing is lost today.
    """

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "note": 2}[self.value]


@dataclass(frozen=True, slots=True)
class Rule:
    """One check: a stable id (used by ``--ignore``, annotations and SARIF), its usual severity and why it matters."""

    id: str
    severity: Severity
    title: str
    why: str


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {r.id: r for r in rules}


E, W, N = Severity.ERROR, Severity.WARNING, Severity.NOTE

#: Every rule, manifests first, then Dockerfiles. Ids never change meaning; retired ids are not reused.
RULES: dict[str, Rule] = _rules(
    Rule(
        "grace-period",
        E,
        "the shutdown does not fit in terminationGracePeriodSeconds",
        "SIGKILL arrives terminationGracePeriodSeconds after the pod starts terminating (preStop included); "
        "whatever lameduck plans beyond that is cut mid-request.",
    ),
    Rule(
        "grace-unused",
        N,
        "the pod's grace period is longer than lameduck plans to use",
        "lameduck derives its drain from --grace; a larger terminationGracePeriodSeconds is time the drain could "
        "have used for long requests and jobs.",
    ),
    Rule(
        "lameduck-settings",
        E,
        "the container's lameduck settings are invalid",
        "lameduck refuses invalid settings at startup (exit 2): the pod would crash-loop.",
    ),
    Rule(
        "prestop-double-count",
        W,
        "a preStop sleep and lameduck's lame-duck window both wait for endpoint removal",
        "Both exist to keep serving while endpoints are removed; together they wait twice and take the time from "
        "the drain.",
    ),
    Rule(
        "no-endpoint-wait",
        W,
        "nothing waits for endpoint removal after SIGTERM",
        "Endpoint removal reaches kube-proxy and ingresses 1-5 s after SIGTERM; with lameduck's lame-duck window at "
        "0 and no preStop sleep, the listener closes first and those connections are refused.",
    ),
    Rule(
        "prestop-shell",
        W,
        "the preStop hook needs a shell or a sleep binary the image may not have",
        "An exec preStop that fails is logged and skipped: the pod gets SIGTERM at once, with no wait at all. "
        "Distroless and scratch images have neither sh nor sleep.",
    ),
    Rule(
        "readiness-missing",
        W,
        "a serving container has no readiness probe",
        "Without one, a pod is ready the moment it starts and stays ready while it drains: external load balancers "
        "and meshes keep sending it traffic.",
    ),
    Rule(
        "liveness-is-readiness",
        E,
        "the liveness probe checks readiness",
        "A pod that is not ready (overloaded, a dependency down) is alive; a liveness probe on the readiness "
        "endpoint restarts it, and a partial outage becomes a restart loop.",
    ),
    Rule(
        "probe-timeout",
        W,
        "a probe's timeoutSeconds is not shorter than its periodSeconds",
        "The kubelet runs a container's probes one after another: a hung endpoint stretches every period to the "
        "timeout, and failure is noticed only after failureThreshold probes of timeoutSeconds each.",
    ),
    Rule(
        "initial-delay",
        W,
        "a large initialDelaySeconds where a startup probe belongs",
        "A fixed delay is a guess at the slowest start: too short restarts slow starts, too long leaves a dead pod "
        "unnoticed. A startupProbe waits exactly as long as startup takes.",
    ),
    Rule(
        "probe-port",
        E,
        "a probe targets a port the container does not serve probes on",
        "The kubelet probes the pod IP on that port; if nothing answers there the probe fails forever.",
    ),
    Rule(
        "probe-path",
        E,
        "a probe uses a path lameduck does not serve for that purpose",
        "lameduck serves liveness, readiness and startup on their own paths (--live-path, --ready-path, "
        "--startup-path), on --probe-port when set; any other path answers 404 or is the app's own route.",
    ),
    Rule(
        "listen-loopback",
        E,
        "lameduck listens on the loopback address inside a pod",
        "The kubelet's probes and the Service reach the pod IP, never 127.0.0.1: every probe fails.",
    ),
    Rule(
        "shell-form",
        E,
        "the container runs through a shell that does not exec the service",
        "PID 1 is then the shell: it does not forward SIGTERM, so the service is killed at the end of the grace "
        "period without draining.",
    ),
    Rule(
        "rollout-capacity",
        W,
        "the rollout strategy removes serving capacity",
        "With maxUnavailable > 0, old pods stop before their replacements are ready; with few replicas that is a "
        "large share of capacity. maxSurge adds the new pod first.",
    ),
    Rule(
        "not-a-number",
        E,
        "a number written as a string",
        "The API server rejects a string in an integer field (a quoted port is read as a port name, which needs a "
        "letter): the object is never applied, and no other check can judge the value.",
    ),
    Rule(
        "duplicate-key",
        E,
        "a mapping has the same key twice",
        "Parsers disagree about which value wins (kubectl rejects the file); the setting you read is not "
        "necessarily the one applied.",
    ),
    Rule(
        "dockerfile-shell-form",
        E,
        "ENTRYPOINT or CMD in shell form",
        "Shell form runs /bin/sh -c '…': PID 1 is the shell, which does not forward SIGTERM to the service.",
    ),
    Rule(
        "dockerfile-stopsignal",
        E,
        "STOPSIGNAL is not one lameduck drains on",
        "lameduck drains on SIGTERM and SIGINT; docker stop and Kubernetes send STOPSIGNAL instead of SIGTERM.",
    ),
    Rule(
        "dockerfile-entrypoint-script",
        N,
        "the entrypoint is a script lameduck cannot see into",
        'A wrapper script must end with exec "$@" (or exec the service) or it stays PID 1 and swallows SIGTERM.',
    ),
)


@dataclass(frozen=True, slots=True)
class Location:
    """Where a finding points: file, 0-based document index, YAML path (``spec.template.spec.containers[0]``) and
    the 1-based line and column of the closest node that exists (0 when the input had no positions)."""

    file: str
    document: int = 0
    path: str = ""
    line: int = 0
    column: int = 0


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: which rule, how bad, what exactly is wrong (with the numbers) and what to change."""

    rule: str
    severity: Severity
    message: str
    fix: str
    location: Location
    kind: str = ""
    name: str = ""
    container: str = ""
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown rule id {self.rule!r}")

    @property
    def subject(self) -> str:
        """``Deployment/web container app``: the object as ``kubectl`` names it."""
        parts = [f"{self.kind}/{self.name}" if self.kind else self.name]
        if self.container:
            parts.append(f"container {self.container}")
        return " ".join(p for p in parts if p)

    def sort_key(self) -> tuple[str, int, int, int, int, str]:
        loc = self.location
        return (loc.file, loc.document, loc.line, loc.column, self.severity.rank, self.rule)
