"""The manifest rules: pure functions from a document to findings.

Each rule reads the values the kubelet will use (defaults filled in by ``model``) and the lameduck settings the
container will run with (``command.app_settings``: its flags and LAMEDUCK_* env, defaults otherwise), and says what
is wrong with the numbers that make it wrong. The budget arithmetic is lameduck's own (``core.budget``), so ``check``
and the runtime can never disagree about what fits.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from dataclasses import replace
from typing import Any

from lameduck.config import Settings
from lameduck.core.budget import KUBERNETES_LAME_DUCK, MIN_DERIVED_DRAIN, Budget
from lameduck.core.budget import format_seconds as _n
from lameduck.errors import ConfigError
from lameduck.k8s.command import preview, shell_run
from lameduck.k8s.findings import RULES, Finding, Location, Severity
from lameduck.k8s.loader import Document, Path, format_path
from lameduck.k8s.model import (
    BATCH,
    PROBE_DEFAULTS,
    Container,
    Context,
    PreStop,
    Workload,
    get,
    number,
    read_pre_stop,
    workloads,
)

PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
#: A liveness or readiness initialDelaySeconds above one default probe period is a guess at the slowest startup.
INITIAL_DELAY_LIMIT = 10
#: Up to this many replicas, one unavailable pod is a share of capacity worth a warning (10 % or more).
FEW_REPLICAS = 10
#: Below this much unused grace, a longer drain is not worth a note.
UNUSED_GRACE_NOTE = 5.0
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]", "ip6-localhost"})
_SHELL_LESS = ("distroless", "chainguard", "cgr.dev/", "scratch")
#: Tags of those images' variants that do ship a shell (distroless ``:debug``, Chainguard ``-dev``).
_WITH_SHELL = ("debug", "-dev")
_DIGITS = re.compile(r"[0-9]+")


#: Messages quote values from the manifest (paths, hosts, images); a finding stays one line whatever they contain.
_ONE_LINE = {c: repr(chr(c))[1:-1] for c in (*range(0x20), 0x7F, 0x85, 0x2028, 0x2029)}


class _Emit:
    """Builds findings for one workload; the location comes from the document's positions."""

    def __init__(self, w: Workload, out: list[Finding]) -> None:
        self.w = w
        self.out = out

    def __call__(
        self,
        rule: str,
        path: Path,
        message: str,
        fix: str,
        *,
        container: Container | None = None,
        severity: Severity | None = None,
    ) -> None:
        if rule in self.w.ignored:
            return
        line, column = self.w.doc.where(path)
        self.out.append(
            Finding(
                rule,
                severity or RULES[rule].severity,
                message.translate(_ONE_LINE),
                fix.translate(_ONE_LINE),
                Location(self.w.doc.source, self.w.doc.index, format_path(path), line, column),
                self.w.kind,
                self.w.name,
                container.name if container else "",
            )
        )


def check_document(doc: Document, context: Context | None = None) -> list[Finding]:
    """All manifest findings for one document; ``context`` holds the ConfigMaps and HPAs of the whole run."""
    out: list[Finding] = []
    for path, line, column in doc.duplicates:
        key = path[-1] if path else ""
        out.append(
            Finding(
                "duplicate-key",
                Severity.ERROR,
                f"key {key!r} is written twice in the same mapping (the last one wins here; kubectl rejects the file)",
                "remove one of the two entries",
                Location(doc.source, doc.index, format_path(path), line, column),
                str(get(doc.data, "kind") or ""),
                str(get(doc.data, "metadata", "name") or ""),
            )
        )
    for w in workloads(doc, context):
        emit = _Emit(w, out)
        _numbers(w, emit)
        _rollout_capacity(w, emit)
        containers = list(w.containers())
        lameduck_shown = any(c.app.runs_lameduck for c in containers if not c.sidecar)
        default_name = get(w.obj, "metadata", "annotations", "kubectl.kubernetes.io/default-container")
        for i, c in enumerate(containers):
            _shell_form(c, emit)
            _pre_stop_shell(c, emit)
            if c.sidecar:
                continue
            _probes(c, emit)
            if c.app.runs_lameduck:
                _lameduck(c, emit, assumed=False)
            elif not lameduck_shown and not c.shows_command():
                # The image decides what runs: assume lameduck with its defaults for the pod's main container.
                is_main = c.name == default_name if isinstance(default_name, str) else i == 0
                if is_main:
                    _lameduck(c, emit, assumed=True)
    return out


# -- numbers written as strings ------------------------------------------------------------------------------------

#: Integer fields of a container (relative paths) and of its probes.
_CONTAINER_INTS: tuple[Path, ...] = (("lifecycle", "preStop", "sleep", "seconds"),)
_PROBE_INTS = ("periodSeconds", "timeoutSeconds", "initialDelaySeconds", "failureThreshold", "successThreshold")


def _numbers(w: Workload, emit: _Emit) -> None:
    """Quoted numbers (``"30"``, often from a helm ``| quote``) in the integer fields the rules read."""
    fields: list[tuple[Path, Any, Container | None]] = [
        ((*w.pod_path, "terminationGracePeriodSeconds"), get(w.pod, "terminationGracePeriodSeconds"), None)
    ]
    if w.kind != "Pod":
        fields.append(((*w.path, "spec", "replicas"), get(w.obj, "spec", "replicas"), None))
    for c in w.containers():
        for rel in _CONTAINER_INTS:
            fields.append(((*c.path, *rel), get(c.spec, *rel), c))
        ports = c.spec.get("ports")
        for i, port in enumerate(ports if isinstance(ports, list) else []):
            fields.append(((*c.path, "ports", i, "containerPort"), get(port, "containerPort"), c))
        for kind in PROBES:
            probe = c.probe(kind)
            if probe is None:
                continue
            for key in _PROBE_INTS:
                fields.append(((*c.path, kind, key), probe.get(key), c))
            for handler in ("httpGet", "tcpSocket", "grpc"):
                port = get(probe, handler, "port")
                if isinstance(port, str) and _DIGITS.fullmatch(port):
                    emit(
                        "not-a-number",
                        (*c.path, kind, handler, "port"),
                        f"{kind} port is the string {port!r}: a quoted port is a port name, and a name needs a "
                        "letter, so the API server rejects it",
                        f"write port: {port} without quotes (or use the port's name)",
                        container=c,
                    )
    for path, value, owner in fields:
        if isinstance(value, str) and _NUMERIC.fullmatch(value.strip()):
            emit(
                "not-a-number",
                path,
                f"{path[-1]} is the string {value!r}: the API server rejects a string in an integer field",
                f"write {path[-1]}: {value.strip()} without quotes",
                container=owner,
            )


_NUMERIC = re.compile(r"[+-]?[0-9]+(?:\.[0-9]*)?")


# -- grace period, preStop and the lame-duck window ---------------------------------------------------------------


def _lameduck(c: Container, emit: _Emit, *, assumed: bool) -> None:
    app = c.app
    if app.error is not None:
        emit(
            "lameduck-settings",
            _error_path(c, app.error),
            f"lameduck would refuse to start (exit 2): {app.error}",
            "fix the setting named; `lameduck budget` with the same settings shows what fits",
            container=c,
        )
        return
    settings = app.settings
    if settings is None:
        return
    assumption = " (the command comes from the image: lameduck defaults assumed)" if assumed else ""
    unseen = c.unseen_env_sources()
    if unseen:
        assumption += f" (envFrom {', '.join(unseen)} {'is' if len(unseen) == 1 else 'are'} not among the inputs: "
        assumption += "settings there were not seen)"
    unknown = set(app.unknown)  # settings whose value the manifest does not show: nothing that needs them is judged
    if not assumed:
        # Without the CLI in view (LAMEDUCK_* variables only: lameduck.run() in the app's code), where it listens and
        # serves its probes may be passed in code: judged only when the variables say it.
        if not unknown & {"--host", "--probe-host", "--probe-port"} and (app.invoked or "host" in app.sources):
            _listen(c, settings, emit)
        if not unknown & {"--port", "--probe-port", "--live-path", "--ready-path", "--startup-path"} and app.invoked:
            _probe_targets(c, settings, emit)
    if not unknown & {"--grace", "--lame-duck", "--drain-timeout", "--cleanup-timeout"}:
        _grace(c, settings, emit, assumption, assumed=assumed)
    if not assumed and "--lame-duck" not in unknown:
        _endpoint_wait(c, settings, emit)


def _error_path(c: Container, error: ConfigError) -> Path:
    """Where the setting lameduck refuses is written: its env entry, else the command word, else the command."""
    flag = error.setting.split(" ", 1)[0]
    name = flag[2:].replace("-", "_") if flag.startswith("--") else flag.lower()
    source = c.app.sources.get(name, "")
    env = c.spec.get("env")
    if source.startswith("LAMEDUCK_") and isinstance(env, list):
        for i, item in enumerate(env):
            if isinstance(item, dict) and item.get("name") == source:
                return (*c.path, "env", i, "value")
    for part in ("command", "args"):
        words = c.spec.get(part)
        if isinstance(words, list):
            for i, word in enumerate(words):
                if isinstance(word, str) and flag.startswith("-") and word.partition("=")[0] == flag:
                    return (*c.path, part, i)
    argv, argv_path = c.argv()
    return argv_path if argv is not None else (*c.path, "env")


def _budget_words(b: Budget) -> str:
    return f"{b.sum()} s"


def _grace(c: Container, settings: Settings, emit: _Emit, assumption: str, *, assumed: bool = False) -> None:
    w = c.workload
    grace = w.grace
    if grace is None:
        return
    hook = c.pre_stop()
    pre = read_pre_stop(hook) if hook is not None else None
    fails = pre is not None and _hook_fails(c, pre)
    pre_seconds = pre.seconds if pre is not None and pre.seconds is not None and not fails else 0.0
    budget = settings.budget()
    grace_path = (*w.pod_path, "terminationGracePeriodSeconds")
    grace_words = (
        f"terminationGracePeriodSeconds {_n(grace)}"
        if "terminationGracePeriodSeconds" in w.pod
        else "terminationGracePeriodSeconds 30 (the default)"
    )
    if pre is not None and pre_seconds >= grace:
        emit(
            "grace-period",
            grace_path,
            f"the preStop hook ({_n(pre_seconds)} s) outlasts the grace period ({grace_words}): the kubelet cuts it "
            f"at {_n(grace)} s, sends SIGTERM and SIGKILL 2 s later, so lameduck gets 2 s instead of "
            f"{_n(budget.total)}{assumption}",
            f"raise terminationGracePeriodSeconds to {math.ceil(budget.total + pre_seconds)} or shorten the preStop "
            "hook (the API also rejects a native sleep longer than the grace period)",
            container=c,
            severity=Severity.NOTE if assumed else None,  # assumed settings may not be the image's
        )
        return
    after_signal = grace - pre_seconds
    pre_note = f" - preStop {_n(pre_seconds)} s" if pre_seconds else ""
    if pre is not None and pre.seconds is None and pre.kind != "sleep":
        pre_note += f", plus a {pre.kind} preStop hook of unknown length"
    elif fails:
        pre_note += ", the preStop hook fails at once (prestop-shell)"
    if budget.total > after_signal + 1e-9:
        needed = math.ceil(budget.total + pre_seconds)
        fixes = [f"raise terminationGracePeriodSeconds to {needed}", *_fitting(c, settings, budget, grace, pre_seconds)]
        emit(
            "grace-period",
            grace_path,
            f"lameduck's shutdown takes up to {_budget_words(budget)}, but SIGKILL comes {_n(after_signal)} s after "
            f"SIGTERM ({grace_words}{pre_note}){assumption}",
            ("if the image runs lameduck: " if assumed else "") + "; or ".join(fixes),
            container=c,
            severity=Severity.NOTE if assumed else None,  # assumed settings may not be the image's
        )
    elif budget.drain_derived and not fails and after_signal - budget.total >= UNUSED_GRACE_NOTE:
        emit(
            "grace-unused",
            grace_path,
            f"SIGKILL comes {_n(after_signal)} s after SIGTERM, but lameduck plans for --grace {_n(settings.grace)} "
            f"({_budget_words(budget)}): the drain could have {_n(after_signal - budget.total)} s more{assumption}",
            f"set {_setting_source(c, 'grace', 'LAMEDUCK_GRACE')}={_n(after_signal)}",
            container=c,
        )
    if pre is not None and pre.seconds and not fails and settings.lame_duck_seconds > 0:
        how = f"auto: {_n(KUBERNETES_LAME_DUCK)} s in a pod" if settings.lame_duck is None else "set explicitly"
        emit(
            "prestop-double-count",
            (*c.path, "lifecycle", "preStop"),
            f"the preStop hook sleeps {_n(pre.seconds)} s, then lameduck keeps serving for its lame-duck window of "
            f"{_n(settings.lame_duck_seconds)} s ({how}): endpoint removal is waited for twice, "
            f"{_n(pre.seconds + settings.lame_duck_seconds)} s in all, taken from the drain{assumption}",
            "remove the preStop hook (the lame-duck window keeps serving while endpoints go, and flips readiness at "
            f"once) or keep it and set {_setting_source(c, 'lame_duck', 'LAMEDUCK_LAME_DUCK')}=0",
            container=c,
        )


def _endpoint_wait(c: Container, settings: Settings, emit: _Emit) -> None:
    """A serving lameduck container whose lame-duck window is off and whose preStop hook does not wait either."""
    if c.app.subcommand != "serve" or c.workload.kind in BATCH or settings.lame_duck_seconds > 0:
        return
    hook = c.pre_stop()
    pre = read_pre_stop(hook) if hook is not None else None
    if pre is not None and (pre.seconds is None or pre.seconds > 0) and not _hook_fails(c, pre):
        return  # the hook waits (or may: an HTTP hook's length is the app's business)
    source = c.app.sources.get("lame_duck", "")
    where = _error_path(c, ConfigError(source if source.startswith("-") else "--lame-duck", ""))
    emit(
        "no-endpoint-wait",
        where,
        f"lame-duck window 0 s ({source or '--lame-duck'} 0) and no preStop sleep: lameduck closes its listener at "
        "SIGTERM while kube-proxy and ingresses keep sending new connections for 1-5 s; they are refused (502s)",
        f"remove {source or '--lame-duck 0'} (auto is {_n(KUBERNETES_LAME_DUCK)} s in a pod), or add a native preStop "
        "sleep (lifecycle: {preStop: {sleep: {seconds: 5}}})",
        container=c,
    )


def _needs_tool(pre: PreStop) -> bool:
    """An exec hook that runs through a shell or the ``sleep`` binary: things slim images leave out."""
    return pre.kind == "exec" and bool(pre.command) and (pre.shell or posixpath.basename(pre.command[0]) == "sleep")


def _hook_fails(c: Container, pre: PreStop) -> bool:
    """An exec preStop hook that needs a shell or ``sleep`` on an image that has neither fails at once: the
    kubelet logs it and sends SIGTERM, so its sleep never happens (``prestop-shell`` reports it)."""
    return _needs_tool(pre) and _looks_shell_less(c.image)


def _fits(settings: Settings, grace: float, lame_duck: float) -> bool:
    try:
        Budget.plan(grace=grace, lame_duck=lame_duck, drain=settings.drain_timeout, cleanup=settings.cleanup_timeout)
    except ConfigError:
        return False
    return True


def _fitting(c: Container, settings: Settings, budget: Budget, grace: float, pre_seconds: float) -> list[str]:
    """Settings changes that make lameduck's plan fit the time it has, each one checked with the budget itself.

    Keeping the preStop hook: plan for the time left after it (without the lame-duck window if that is what it takes:
    the hook already waits for endpoint removal). Dropping the hook: the lame-duck window waits instead (the hook's
    seconds moved into it when the window is off).
    """
    fixes: list[str] = []
    have = math.floor((grace - pre_seconds) * 1000) / 1000
    lame_duck = settings.lame_duck_seconds
    grace_name = _setting_source(c, "grace", "LAMEDUCK_GRACE")
    lame_duck_name = _setting_source(c, "lame_duck", "LAMEDUCK_LAME_DUCK")
    drain_name = _setting_source(c, "drain_timeout", "LAMEDUCK_DRAIN_TIMEOUT")
    if have > 0 and _fits(settings, have, lame_duck):
        fixes.append(f"set {grace_name}={_n(have)} so lameduck plans for the time it has")
    elif have > 0 and settings.drain_timeout is not None:
        drain = math.floor((have - lame_duck - budget.cleanup - budget.margin) * 1000) / 1000
        if drain >= MIN_DERIVED_DRAIN and _fits(replace(settings, drain_timeout=drain), have, lame_duck):
            fixes.append(f"set {grace_name}={_n(have)} and {drain_name}={_n(drain)}")
    elif have > 0 and lame_duck > 0 and pre_seconds and _fits(settings, have, 0.0):
        fixes.append(
            f"set {grace_name}={_n(have)} and {lame_duck_name}=0 (the preStop hook waits for endpoint removal)"
        )
    elif have > 0 and lame_duck > 0:
        # Never switch the window off with nothing else waiting (that is the 502 spike): trim cleanup, else the window.
        cleanup_name = _setting_source(c, "cleanup_timeout", "LAMEDUCK_CLEANUP_TIMEOUT")
        cleanup = math.floor((have - lame_duck - budget.margin - MIN_DERIVED_DRAIN) * 10) / 10
        shorter = float(math.floor(have - budget.cleanup - budget.margin - MIN_DERIVED_DRAIN))
        if cleanup >= 0.5 and _fits(replace(settings, cleanup_timeout=cleanup), have, lame_duck):
            fixes.append(f"set {grace_name}={_n(have)} and {cleanup_name}={_n(cleanup)}")
        elif shorter >= 1 and _fits(settings, have, shorter):
            fixes.append(
                f"set {grace_name}={_n(have)} and {lame_duck_name}={_n(shorter)} (a shorter wait for endpoint removal)"
            )
    if pre_seconds:
        window = lame_duck if lame_duck > 0 else pre_seconds
        if _fits(settings, grace, window):
            changes = [f"{grace_name}={_n(grace)}"] if settings.grace != grace else []
            if lame_duck <= 0:
                changes.append(f"{lame_duck_name}={_n(window)}")
            fix = "remove the preStop sleep"
            if len(changes) == 1:
                fix += f" and set {changes[0]}"
            elif changes:
                fix += f", set {changes[0]} and {changes[1]}"
            how = "does its job" if lame_duck > 0 else "waits instead"
            fixes.append(f"{fix} (the lame-duck window {how})")
    return fixes


def _setting_source(c: Container, name: str, env: str) -> str:
    """How this container sets ``name`` today (its flag or env var), so the fix edits the same place."""
    source = c.app.sources.get(name)
    return source if source else env


def _listen(c: Container, settings: Settings, emit: _Emit) -> None:
    if c.app.subcommand == "work" and not any(_probe_port(c, p) for p in map(c.probe, PROBES) if p is not None):
        return  # lameduck work listens only for the probes; with none that connects, nothing needs to reach it
    hosts = [("host", settings.host)]
    if settings.probe_port is not None and settings.probe_host is not None:
        hosts.append(("probe_host", settings.probe_host))
    for name, host in hosts:
        if host.strip().lower() not in _LOOPBACK:
            continue
        flag = "--host" if name == "host" else "--probe-host"
        source = c.app.sources.get(name)
        how = f"{source} {host}" if source else f"{flag} defaults to {host}"
        argv, argv_path = c.argv()
        emit(
            "listen-loopback",
            argv_path if argv is not None else c.path,
            f"lameduck listens on {host} ({how}): the kubelet's probes and the Service connect to the pod IP, so "
            "nothing reaches it",
            f"pass {flag} 0.0.0.0 (or :: for IPv6 and dual-stack clusters)",
            container=c,
        )


# -- probes -------------------------------------------------------------------------------------------------------


def _handler(probe: dict[str, Any]) -> tuple[str, Any] | None:
    for key in ("httpGet", "tcpSocket", "grpc", "exec"):
        if isinstance(probe.get(key), dict):
            return key, probe[key]
    return None


def _http_path(probe: dict[str, Any], *, query: bool = False) -> str | None:
    """The httpGet path ("/" when absent), without its query string unless ``query``; None for other handlers."""
    path = get(probe, "httpGet", "path")
    if path is None and isinstance(probe.get("httpGet"), dict):
        return "/"
    if path is None:
        return None
    return str(path) if query else str(path).split("?", 1)[0]


def _serves_traffic(c: Container) -> bool:
    if c.workload.kind in BATCH:
        return False
    if c.app.runs_lameduck:
        return c.app.subcommand == "serve"
    return bool(c.ports()[1])


def _probes(c: Container, emit: _Emit) -> None:
    live, ready, startup = (c.probe(k) for k in PROBES)
    if ready is None and _serves_traffic(c):
        emit(
            "readiness-missing",
            c.path,
            "no readinessProbe: the pod counts as ready from its start and while it drains",
            _probe_fix(c, "readinessProbe"),
            container=c,
        )
    if live is not None and ready is not None:
        lh, rh = _handler(live), _handler(ready)
        if lh is not None and lh == rh:
            same = "path and port" if lh[0] == "httpGet" else lh[0]
            emit(
                "liveness-is-readiness",
                (*c.path, "livenessProbe"),
                f"the liveness probe is the readiness probe (same {same}): a pod that turns not ready (overloaded, "
                "a dependency down) is then restarted, and a partial outage becomes a restart loop",
                _probe_fix(c, "livenessProbe"),
                container=c,
                # An identical TCP or exec check says "the port is open" twice: wasteful, rarely a restart loop.
                severity=None if lh[0] == "httpGet" else Severity.WARNING,
            )
        elif lh is not None and lh[0] == "httpGet" and rh is not None and rh[0] == "httpGet":
            lp, rp = _http_path(live, query=True), _http_path(ready, query=True)  # /health?probe=live is its own
            named = c.ports()[0]
            same_port = _resolved(named, get(live, "httpGet", "port")) == _resolved(
                named, get(ready, "httpGet", "port")
            )
            if lp == rp and same_port:
                emit(
                    "liveness-is-readiness",
                    (*c.path, "livenessProbe", "httpGet", "path"),
                    f"the liveness probe uses the readiness path {lp}: a pod that is not ready (overloaded, a "
                    "dependency down) is alive, and restarting it turns a partial outage into a restart loop",
                    _probe_fix(c, "livenessProbe"),
                    container=c,
                )
    for kind, probe in (("livenessProbe", live), ("readinessProbe", ready), ("startupProbe", startup)):
        if probe is None:
            continue
        period = number(probe.get("periodSeconds", PROBE_DEFAULTS["periodSeconds"]))
        timeout = number(probe.get("timeoutSeconds", PROBE_DEFAULTS["timeoutSeconds"]))
        if period is not None and timeout is not None and timeout >= period:
            emit(
                "probe-timeout",
                (*c.path, kind, "timeoutSeconds"),
                f"{kind} timeoutSeconds {_n(timeout)} ≥ periodSeconds {_n(period)}: the kubelet runs probes one after "
                f"another, so a hung endpoint stretches the period to the timeout and is noticed only after "
                f"failureThreshold probes of {_n(timeout)} s each",
                (
                    f"set timeoutSeconds below periodSeconds (e.g. timeoutSeconds: {int(period) // 2})"
                    if period >= 2
                    else f"raise periodSeconds above timeoutSeconds (e.g. periodSeconds: {max(2, int(timeout) * 2)}; "
                    "timeoutSeconds is at least 1)"
                ),
                container=c,
            )
        delay = number(probe.get("initialDelaySeconds", 0))
        if kind != "startupProbe" and startup is None and delay is not None and delay > INITIAL_DELAY_LIMIT:
            emit(
                "initial-delay",
                (*c.path, kind, "initialDelaySeconds"),
                f"{kind} initialDelaySeconds {_n(delay)}: a fixed guess at the slowest startup"
                + (" (a slow start gets restarted, a fast one waits)" if kind == "livenessProbe" else ""),
                f"add a startupProbe (e.g. periodSeconds 2, failureThreshold {max(3, math.ceil(delay * 2 / 2))}) "
                "and remove initialDelaySeconds",
                container=c,
                severity=Severity.WARNING if kind == "livenessProbe" else Severity.NOTE,
            )
        _probe_port_declared(c, kind, probe, emit)


def _probe_fix(c: Container, kind: str) -> str:
    settings = c.app.settings if c.app.runs_lameduck else None
    if settings is None:
        if kind == "readinessProbe":
            return "add a readinessProbe on an endpoint that fails while the app cannot take traffic, and at shutdown"
        return "point livenessProbe at an endpoint that fails only when the process is stuck (not when it is busy)"
    port = settings.probe_port if settings.probe_port is not None else settings.port
    path = settings.live_path if kind == "livenessProbe" else settings.ready_path
    return f"{kind}: httpGet {{path: {path}, port: {port}}} (lameduck's {kind[: -len('Probe')]} endpoint)"


def _probe_port(c: Container, probe: dict[str, Any]) -> tuple[Path, Any] | None:
    handler = _handler(probe)
    if handler is None or handler[0] == "exec":
        return None
    return (handler[0], "port"), handler[1].get("port")


def _probe_port_declared(c: Container, kind: str, probe: dict[str, Any], emit: _Emit) -> None:
    if c.workload.mesh_rewrites_probes():
        return
    found = _probe_port(c, probe)
    if found is None:
        return
    sub, port = found
    named, numbers = c.ports()
    path = (*c.path, kind, *sub)
    if isinstance(port, str) and not _DIGITS.fullmatch(port):
        if port not in named:
            emit(
                "probe-port",
                path,
                f"{kind} uses the port name {port!r}, which the container does not declare "
                f"(declared: {', '.join(sorted(named)) or 'none'})",
                "name the port under ports[] or use its number",
                container=c,
            )
        return
    value = number(port) if not isinstance(port, str) else float(port)  # a string of ASCII digits here
    if value is None or c.app.runs_lameduck:
        return  # lameduck containers: judged against the ports lameduck listens on (_probe_targets)
    if numbers and int(value) not in numbers:
        emit(
            "probe-port",
            path,
            f"{kind} probes port {int(value)}, which is not among the container's declared ports "
            f"({_ports(numbers)}); the kubelet probes it anyway, so it works if something listens there",
            f"declare containerPort {int(value)} under ports[] (documentation for people and tools), or check the "
            "port number",
            container=c,
            severity=Severity.NOTE,
        )


def _resolved(named: dict[str, int], port: Any) -> Any:
    """A probe's port as a number where the container's port names tell it; else as written."""
    if isinstance(port, str) and port in named:
        return named[port]
    if isinstance(port, str) and _DIGITS.fullmatch(port):
        return int(port)
    return port


def _ports(numbers: set[int]) -> str:
    return ", ".join(str(p) for p in sorted(numbers))


def _probe_targets(c: Container, settings: Settings, emit: _Emit) -> None:
    """lameduck containers: probes must reach lameduck's probe listener, on lameduck's probe paths."""
    if c.workload.mesh_rewrites_probes():
        return  # kubectl get -o yaml of an Istio-injected pod: the probes point at the mesh agent on purpose
    named, _ = c.ports()
    probe_port = settings.probe_port if settings.probe_port is not None else settings.port
    wanted = {
        "livenessProbe": {settings.live_path},
        "readinessProbe": {settings.ready_path},
        "startupProbe": {settings.startup_path, settings.ready_path},
    }
    for kind in PROBES:
        probe = c.probe(kind)
        if probe is None:
            continue
        found = _probe_port(c, probe)
        if found is not None and probe_port != 0:
            sub, port = found
            value = named.get(port) if isinstance(port, str) and not _DIGITS.fullmatch(port) else port
            n = number(int(value)) if isinstance(value, str) else number(value)
            if n is not None and int(n) != probe_port:
                if settings.probe_port is not None and int(n) == settings.port:
                    why = (
                        f"the app port {settings.port} serves only the app when --probe-port {settings.probe_port} "
                        "is set"
                    )
                else:
                    why = f"lameduck serves its probes on {probe_port}"
                emit(
                    "probe-port",
                    (*c.path, kind, *sub),
                    f"{kind} probes port {int(n)}, but {why}",
                    f"probe port {probe_port}",
                    container=c,
                )
        if get(probe, "httpGet") is None:
            if kind == "readinessProbe" and isinstance(probe.get("tcpSocket"), dict):
                emit(
                    "probe-path",
                    (*c.path, kind, "tcpSocket"),
                    "readinessProbe is a TCP check: lameduck keeps its port open through the lame-duck window, so the "
                    "pod never turns not-ready when the drain starts",
                    f"readinessProbe: httpGet {{path: {settings.ready_path}, port: {probe_port}}}",
                    container=c,
                )
            continue
        path = _http_path(probe)
        if path is None or path in wanted[kind]:
            continue
        if kind == "livenessProbe" and (
            path == settings.ready_path
            or _http_path(probe, query=True) == _http_path(c.probe("readinessProbe") or {}, query=True)
        ):
            continue  # liveness-is-readiness says it better
        role = kind[: -len("Probe")]
        if path in (settings.live_path, settings.ready_path, settings.startup_path):
            consequence = {
                "readinessProbe": "it never turns not-ready when the drain starts",
                "startupProbe": "it passes before startup is done",
                "livenessProbe": "",
            }[kind]
            message = f"{kind} uses {path}, lameduck's endpoint for another probe: {consequence}"
        else:
            consequence = (
                "it does not turn not-ready when the drain starts"
                if kind == "readinessProbe"
                else "it does not know lameduck's state"
            )
            message = f"{kind} uses {path}, which is not lameduck's {role} endpoint: {consequence}"
        emit(
            "probe-path",
            (*c.path, kind, "httpGet", "path"),
            message,
            f"use path {_wanted_path(settings, kind)}",
            container=c,
            severity=Severity.ERROR if kind == "readinessProbe" else Severity.WARNING,
        )


def _wanted_path(settings: Settings, kind: str) -> str:
    return {
        "livenessProbe": settings.live_path,
        "readinessProbe": settings.ready_path,
        "startupProbe": settings.startup_path,
    }[kind]


# -- PID 1 and preStop --------------------------------------------------------------------------------------------


def _shell_form(c: Container, emit: _Emit) -> None:
    argv, path = c.argv()
    if not argv:
        return
    run = shell_run(argv)
    if run is None or run.execs:
        return
    if run.script is None:
        emit(
            "shell-form",
            path,
            f"PID 1 is {run.shell} running a script file: unless the script ends with exec, {run.shell} keeps "
            "SIGTERM to itself",
            'end the script with exec (exec "$@" or exec the service), or run the service directly',
            container=c,
            severity=Severity.WARNING,
        )
        return
    fix = "put exec in front of the last command"
    if run.last:
        simple = _single_command(run.script)
        if simple:
            fix = f"run it directly: command: {_yaml_list(run.last)}"
            if isinstance(c.spec.get("args"), list) and c.spec["args"]:
                fix += " and remove args (they would be appended to the new command)"
        else:
            fix += f" ({preview(run.last)} → exec {preview(run.last)})"
    if run.shell == "bash" and _bash_execs_last(run.script):
        # Measured with bash 5.2: `bash -c 'cd /tmp && sleep 3'` leaves sleep as the process; dash does not.
        emit(
            "shell-form",
            path,
            "PID 1 is bash: bash 5.1 and later exec a script's last simple command by themselves, older bash and "
            "other shells do not, and any later edit of the script (a trap, a command after it) loses it",
            fix,
            container=c,
            severity=Severity.WARNING,
        )
        return
    emit(
        "shell-form",
        path,
        f"PID 1 is {run.shell}, which does not forward SIGTERM: the service is killed at the end of the grace "
        "period without draining",
        fix,
        container=c,
    )


def _bash_execs_last(script: str) -> bool:
    """bash's own exec of the last command applies to a plain last command: not backgrounded, piped, in a
    subshell or group, and with no trap set anywhere in the script."""
    tail = script.rstrip().rsplit("\n", 1)[-1]
    backgrounds = "&" in script.replace("&&", "").replace(">&", "").replace("&>", "")
    return (
        "trap" not in script
        and not backgrounds  # `app & wait`: the last command is a builtin, bash stays PID 1
        and not tail.endswith((")", "}", "done", "fi", "esac"))
        and "|" not in tail
    )


def _single_command(script: str) -> bool:
    return not any(ch in script for ch in ";&|\n$`()<>")


def _yaml_list(words: tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(w, ensure_ascii=False) for w in words) + "]"  # JSON strings are YAML


def _looks_shell_less(image: str) -> bool:
    lowered = image.lower()
    tag = lowered.rsplit("/", 1)[-1].partition("@")[0].partition(":")[2]
    if "debug" in tag or tag.endswith(_WITH_SHELL[1:]):
        return False
    return any(mark in lowered for mark in _SHELL_LESS) or lowered.endswith(("-static", ":nonroot"))


_ONLY_SLEEPS = re.compile(r"(?:[\s;&]*(?:/usr)?(?:/bin/)?sleep\s+[0-9]+(?:\.[0-9]+)?s?)+[\s;&]*")


def _pre_stop_shell(c: Container, emit: _Emit) -> None:
    hook = c.pre_stop()
    if hook is None:
        return
    pre: PreStop = read_pre_stop(hook)
    if not _needs_tool(pre):
        return  # not an exec hook, or the app's own program: the image has it
    program = posixpath.basename(pre.command[0])
    run = shell_run(pre.command) if pre.shell else None
    script = run.script if run is not None and run.script is not None else ""
    only_sleeps = not pre.shell or bool(_ONLY_SLEEPS.fullmatch(script))
    needs = "a shell" if pre.shell else f"the {program} binary"
    seconds = _n(pre.seconds) if pre.seconds else "N"
    native = f"lifecycle: {{preStop: {{sleep: {{seconds: {seconds}}}}}}} (Kubernetes 1.30+, GA in 1.34)"
    lameduck_way = "or no preStop at all: lameduck's lame-duck window keeps serving after SIGTERM"
    path = (*c.path, "lifecycle", "preStop", "exec", "command")
    if _looks_shell_less(c.image):
        emit(
            "prestop-shell",
            path,
            f"the preStop hook needs {needs}, which {c.image} (distroless or scratch) does not have: the hook fails "
            "and SIGTERM comes at once",
            f"use the native sleep action, {native}, {lameduck_way}"
            if only_sleeps
            else "run the hook's program without a shell (exec: {command: [program, args…]}) or use an httpGet hook",
            container=c,
        )
    elif only_sleeps:
        emit(
            "prestop-shell",
            path,
            f"the preStop hook runs {needs} inside the container; if a slimmer image drops it, the hook fails and "
            "SIGTERM comes at once",
            f"use the native sleep action, {native}, {lameduck_way}",
            container=c,
            severity=Severity.NOTE,
        )


# -- rollout strategy ---------------------------------------------------------------------------------------------


def _resolve(value: Any, replicas: int, *, round_up: bool) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = float(value[:-1])
        except ValueError:
            return None
        if not math.isfinite(pct):
            return None
        exact = replicas * pct / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return None


def _rollout_capacity(w: Workload, emit: _Emit) -> None:
    if w.kind != "Deployment":  # StatefulSets roll one pod at a time; a DaemonSet's surge collides on hostPorts
        return
    replicas_value = get(w.obj, "spec", "replicas")
    hpa = w.context.min_replicas(w.namespace, w.kind, w.name) if replicas_value is None else None
    replicas = int(replicas_value) if number(replicas_value) is not None else (hpa or 1)
    counted = f"{replicas} replica(s)" + (" (the HorizontalPodAutoscaler's minReplicas)" if hpa else "")
    if replicas < 1:
        return  # scaled to zero: a rollout stops nothing
    strategy = get(w.obj, "spec", "strategy")
    strategy = strategy if isinstance(strategy, dict) else {}
    path: Path = (*w.path, "spec", "strategy")
    if strategy.get("type") == "Recreate":
        if replicas >= 1:
            emit(
                "rollout-capacity",
                (*path, "type"),
                f"strategy Recreate stops all {replicas} pod(s) before any new one starts: every deploy is an outage",
                "use RollingUpdate with maxUnavailable: 0 and maxSurge: 1 (keep Recreate only if two versions must "
                "never run at once, e.g. a ReadWriteOnce volume)",
            )
        return
    rolling = get(strategy, "rollingUpdate")
    rolling = rolling if isinstance(rolling, dict) else {}
    unavailable = _resolve(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    surge = _resolve(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    if unavailable is None or surge is None:
        return
    if unavailable == 0 and surge == 0:
        unavailable = 1  # what the controller does when both resolve to 0
    if unavailable >= 1 and replicas <= FEW_REPLICAS:
        share = min(unavailable, replicas) / replicas if replicas else 1.0
        where = (*path, "rollingUpdate", "maxUnavailable") if "maxUnavailable" in rolling else path
        written = rolling.get("maxUnavailable", "25%")
        emit(
            "rollout-capacity",
            where,
            f"maxUnavailable {written} with {counted}: each rollout step stops "
            f"{min(unavailable, replicas)} pod(s) ({share:.0%} of capacity) before its replacement is ready",
            f"set maxUnavailable: 0 and maxSurge: {max(1, surge)} (new pods start first; capacity never drops)",
        )
