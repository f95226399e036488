"""Property tests: ``lameduck k8s check`` reads untrusted input, so nothing in it may crash.

(a) ``loader.load`` on any text raises nothing but ManifestError.
(b) Manifest-shaped data with values of every type in every field, dumped as YAML: ``rules.check_document`` never
    raises, and every finding has a known rule, a line inside the file, a message and a fix.
(c) The command-line readers (``shell_run``, ``script_execs``, ``app_settings``, ``expand``) never raise.

Derandomized, so CI runs the same examples every time.
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lameduck.config import SETTINGS
from lameduck.errors import ManifestError
from lameduck.k8s import loader, rules
from lameduck.k8s.command import app_settings, expand, script_execs, shell_run
from lameduck.k8s.findings import RULES, Finding
from lameduck.k8s.model import POD_SPEC, read_pre_stop

MANIFEST_RULES = frozenset(r for r in RULES if not r.startswith("dockerfile-"))
FAST = settings(derandomize=True, deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])

# -- (a) arbitrary text --------------------------------------------------------------------------------------------

#: Pieces of YAML and JSON syntax, so that random text reaches past the first character of the parser.
FRAGMENTS = [
    "kind: Deployment\n",
    "spec:\n",
    "  ",
    "\t",
    "\n",
    "- ",
    ": ",
    "a:",
    "? ",
    "&a ",
    "*a",
    "<<: ",
    "<<: *a\n",
    "{",
    "}",
    "[",
    "]",
    ", ",
    "'",
    '"',
    "\\",
    "#",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "%TAG ! tag:x,2000:\n",
    "!!int ",
    "!!float ",
    "!!binary ",
    "!!timestamp ",
    "!!set ",
    "!!omap ",
    "!!python/object:os.system ",
    "!Ref ",
    "|\n",
    ">-\n",
    "1e5",
    ".nan",
    "-.inf",
    "0x1F",
    "2024-01-01",
    "null",
    "yes",
    "\ufeff",
    "\x00",
    "\x85",
    "\u2028",
    "\ud800",
    "\uffff",
    "é",
    '{"kind": "Pod"',
    '"\\u00e9"',
    '"\\ud83d"',
]

yamlish = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=40).map("".join)


@FAST
@given(st.one_of(st.text(), yamlish))
def test_load_raises_only_manifest_error(text: str) -> None:
    try:
        docs = loader.load(text, "fuzz.yaml")
    except ManifestError as exc:
        error = exc
    else:
        error = None
    if error is not None:
        assert "\n" not in str(error)
        assert error.line >= 0
        assert error.column >= 0
        return
    for doc in docs:
        for f in rules.check_document(doc):
            assert f.rule in MANIFEST_RULES


# -- (b) manifest-shaped data --------------------------------------------------------------------------------------

WORDS = [
    "lameduck",
    "/usr/local/bin/lameduck",
    "python",
    "-m",
    "serve",
    "work",
    "app:app",
    "sh",
    "/bin/sh",
    "bash",
    "-c",
    "-o",
    "--",
    "exec lameduck serve a:b --host 0.0.0.0",
    "migrate && lameduck serve a:b",
    "sleep 5",
    "sleep",
    "5",
    "env",
    "busybox",
    "tini",
    "$(VAR)",
    "$(SECRET)",
    "$$",
    "$PORT",
    "2>&1",
    "&",
    "trap 'kill -TERM $p' TERM; wait",
    "0.0.0.0",
    "127.0.0.1",
    "localhost",
    "::",
    "25%",
    "nan%",
    "inf%",
    "-1%",
    "http",
    "probes",
    "²",
    "٣",
    "8000",
    "/health/ready",
    "/health/live",
    "/health/startup",
    "/healthz?x=1",
    "Always",
    "Recreate",
    "RollingUpdate",
    "gcr.io/distroless/python3-debian12:nonroot",
    "cgr.dev/chainguard/python:latest-dev",
    "",
    " ",
    "'",
    '"unbalanced',
    *(s.flag for s in SETTINGS if not s.positional),
    *(f"{s.flag}=" for s in SETTINGS if not s.positional),
    *(f"--no-{s.flag[2:]}" for s in SETTINGS if s.boolean),
]
K8S_KEYS = [
    "kind",
    "apiVersion",
    "metadata",
    "name",
    "annotations",
    "lameduck/ignore",
    "kubectl.kubernetes.io/default-container",
    "spec",
    "template",
    "jobTemplate",
    "replicas",
    "strategy",
    "type",
    "rollingUpdate",
    "maxUnavailable",
    "maxSurge",
    "items",
    "containers",
    "initContainers",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "image",
    "command",
    "args",
    "env",
    "value",
    "valueFrom",
    "ports",
    "containerPort",
    "readinessProbe",
    "livenessProbe",
    "startupProbe",
    "httpGet",
    "tcpSocket",
    "grpc",
    "exec",
    "path",
    "port",
    "periodSeconds",
    "timeoutSeconds",
    "initialDelaySeconds",
    "failureThreshold",
    "lifecycle",
    "preStop",
    "sleep",
    "seconds",
]

numbers = st.one_of(
    st.integers(min_value=-5, max_value=120),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2, 10, 11, 30, 65535, 65536, -1, 2**63, 10**30, 0.5, -0.0]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.sampled_from(WORDS), st.text(max_size=8))
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(K8S_KEYS), inner, max_size=4)),
    max_leaves=12,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the right shape, sometimes anything."""
    return st.one_of(strategy, strategy, strategy, strategy, strategy, junk)


flag_values = st.one_of(
    st.sampled_from(WORDS), numbers.map(str), st.sampled_from(["0", "5", "30", "45", "9000", "auto", "$(VAR)"])
)
#: Flags with values lameduck accepts, so that most generated containers get past lameduck-settings.
VALID_FLAGS = [
    ["--host", "0.0.0.0"],
    ["--host=127.0.0.1"],
    ["--port", "8000"],
    ["--probe-port", "9000"],
    ["--grace", "30"],
    ["--grace=60"],
    ["--lame-duck", "0"],
    ["--lame-duck", "5"],
    ["--drain-timeout", "10"],
    ["--cleanup-timeout", "3"],
    ["--ready-path", "/ready"],
    ["--startup-path", "/started"],
    ["app:app"],
]
lameduck_argv = st.builds(
    lambda launcher, sub, valid, rest: [*launcher, sub, *(w for pair in valid for w in pair), *rest],
    st.sampled_from(
        [["lameduck"], ["python", "-m", "lameduck"], ["tini", "--", "lameduck"], ["uv", "run", "lameduck"]]
    ),
    st.sampled_from(["serve", "serve", "work"]),
    st.lists(st.sampled_from(VALID_FLAGS), max_size=4, unique_by=lambda pair: pair[0].split("=")[0]),
    st.one_of(st.just([]), st.just([]), st.lists(st.one_of(st.sampled_from(WORDS), flag_values), max_size=3)),
)
shell_argv = st.builds(
    lambda shell, options, script: [shell, *options, script],
    st.sampled_from(["sh", "/bin/bash", "/usr/bin/env"]),
    st.sampled_from([["-c"], ["-ec"], ["-c", "--"], ["-o", "pipefail", "-c"], []]),
    st.one_of(
        st.sampled_from(["exec lameduck serve a:b --host 0.0.0.0", "migrate && lameduck serve a:b", "sleep 5"]),
        st.lists(st.sampled_from([*WORDS, ";", "&&", "exec", "2>&1"]), max_size=8).map(" ".join),
    ),
)
argv = st.one_of(
    lameduck_argv,
    lameduck_argv,
    shell_argv,
    st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=6), numbers, st.booleans(), st.none()), max_size=8),
)
env_var = st.fixed_dictionaries(
    {"name": maybe(st.sampled_from([s.env for s in SETTINGS] + ["VAR", "SECRET", "PORT"]))},
    optional={
        "value": maybe(st.one_of(st.sampled_from(WORDS), numbers)),
        "valueFrom": maybe(st.just({"secretKeyRef": {"name": "s", "key": "k"}})),
    },
)
PATHS = ["/health/ready", "/health/live", "/health/startup", "/ready", "/started", "/healthz", "/"]
port = st.one_of(st.sampled_from([8000, 9000, "http", "probes", "25%", 1, 0]), numbers, st.sampled_from(WORDS), junk)
handler = st.one_of(
    st.fixed_dictionaries(
        {"httpGet": maybe(st.fixed_dictionaries({"path": maybe(st.sampled_from(PATHS + WORDS)), "port": port}))}
    ),
    st.fixed_dictionaries({"tcpSocket": maybe(st.fixed_dictionaries({}, optional={"port": port}))}),
    st.fixed_dictionaries({"grpc": maybe(st.fixed_dictionaries({}, optional={"port": port}))}),
    st.fixed_dictionaries({"exec": maybe(st.fixed_dictionaries({}, optional={"command": maybe(argv)}))}),
    st.fixed_dictionaries({}),
)
probe = st.builds(
    lambda h, timing: {**h, **timing},
    handler,
    st.fixed_dictionaries(
        {},
        optional={
            k: maybe(numbers) for k in ("periodSeconds", "timeoutSeconds", "initialDelaySeconds", "failureThreshold")
        },
    ),
)
pre_stop = st.one_of(
    st.fixed_dictionaries({"sleep": maybe(st.fixed_dictionaries({}, optional={"seconds": maybe(numbers)}))}),
    st.fixed_dictionaries({"exec": maybe(st.fixed_dictionaries({}, optional={"command": maybe(argv)}))}),
    st.fixed_dictionaries(
        {"exec": st.fixed_dictionaries({"command": st.sampled_from([["sh", "-c", "sleep 5"], ["sleep", "10"]])})}
    ),
    st.fixed_dictionaries(
        {"httpGet": maybe(st.fixed_dictionaries({}, optional={"path": maybe(st.sampled_from(WORDS))}))}
    ),
    junk,
)
container_fields = st.fixed_dictionaries(
    {"name": maybe(st.sampled_from(["app", "web", "proxy", ""])), "command": maybe(argv)},
    optional={
        "image": maybe(st.sampled_from(["python:3.12-slim", "gcr.io/distroless/python3-debian12", *WORDS])),
        "args": maybe(argv),
        "env": maybe(st.lists(maybe(env_var), max_size=5)),
        "ports": maybe(
            st.lists(
                maybe(
                    st.fixed_dictionaries(
                        {"containerPort": maybe(st.sampled_from([8000, 9000, 8080]) | numbers)},
                        optional={"name": maybe(st.sampled_from(["http", "probes", *WORDS]))},
                    )
                ),
                max_size=3,
            )
        ),
        "readinessProbe": maybe(probe),
        "livenessProbe": maybe(probe),
        "startupProbe": maybe(probe),
        "restartPolicy": maybe(st.sampled_from(["Always", "OnFailure"])),
    },
)
container = st.builds(
    lambda fields, lifecycle, same: {
        **fields,
        **({"lifecycle": lifecycle} if lifecycle is not None else {}),
        **({"livenessProbe": fields["readinessProbe"]} if same and "readinessProbe" in fields else {}),
    },
    container_fields,
    st.one_of(st.none(), maybe(st.fixed_dictionaries({"preStop": maybe(pre_stop)}))),
    st.booleans(),
)
pod_spec = st.fixed_dictionaries(
    {"containers": maybe(st.lists(maybe(container), min_size=1, max_size=3))},
    optional={
        "initContainers": maybe(st.lists(maybe(container), max_size=2)),
        "terminationGracePeriodSeconds": maybe(st.sampled_from([0, 5, 10, 30, 35, 60, 120]) | numbers),
    },
)
metadata = st.fixed_dictionaries(
    {},
    optional={
        "name": maybe(st.sampled_from(["web", "", "x"])),
        "annotations": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "lameduck/ignore": maybe(st.sampled_from(["rollout-capacity", "probe-timeout, grace-period", ""])),
                    "kubectl.kubernetes.io/default-container": maybe(st.sampled_from(["app", "proxy"])),
                },
            )
        ),
    },
)
strategy = st.fixed_dictionaries(
    {},
    optional={
        "type": maybe(st.sampled_from(["RollingUpdate", "Recreate"])),
        "rollingUpdate": maybe(
            st.fixed_dictionaries({}, optional={"maxUnavailable": maybe(port), "maxSurge": maybe(port)})
        ),
    },
)


def nest(path: tuple[str | int, ...], leaf: Any) -> Any:
    for part in reversed(path):
        leaf = {part: leaf}
    return leaf


def merge(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if k in out else v
        return out
    return b


workload = st.builds(
    lambda kind, pod, meta, extra: merge(merge({"kind": kind, "metadata": meta}, extra), nest(POD_SPEC[kind], pod)),
    st.sampled_from(sorted(POD_SPEC)),
    maybe(pod_spec),
    maybe(metadata),
    st.fixed_dictionaries(
        {},
        optional={
            "spec": st.fixed_dictionaries(
                {"strategy": maybe(strategy)},
                optional={"replicas": maybe(st.sampled_from([1, 2, 3, 4, 10, 11]) | numbers)},
            )
        },
    ),
)
document = st.one_of(
    workload,
    workload,
    st.builds(lambda items: {"kind": "List", "items": items}, st.lists(st.one_of(workload, junk), max_size=3)),
    junk,
)


def findings_of(text: str) -> list[Finding]:
    return [f for doc in loader.load(text, "gen.yaml") for f in rules.check_document(doc)]


@FAST
@given(st.lists(document, min_size=1, max_size=3))
def test_rules_never_raise_on_manifest_shaped_data(docs: list[Any]) -> None:
    text = yaml.safe_dump_all(docs, sort_keys=False)
    lines = text.count("\n") + 1
    for f in findings_of(text):
        assert f.rule in MANIFEST_RULES
        assert f.severity is not None
        assert 1 <= f.location.line <= lines
        assert f.location.column >= 1
        assert f.message.strip()
        assert f.fix.strip()
        assert "\n" not in f.message
        assert "\n" not in f.fix


@FAST
@given(document)
def test_rules_never_raise_on_json_without_positions(doc: Any) -> None:
    # Data straight from JSON has no positions: findings say line 0 rather than crash.
    for f in rules.check_document(loader.Document("gen.json", 0, doc)):
        assert f.rule in MANIFEST_RULES
        assert f.location.line == 0
        assert f.message.strip()
        assert f.fix.strip()


# -- (c) command lines ---------------------------------------------------------------------------------------------

words = st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=10)), max_size=10)
scripts = st.lists(
    st.one_of(st.sampled_from([*WORDS, ";", "&&", "||", "|", "\n", "(", ")", "exec", "#"]), st.text(max_size=5)),
    max_size=12,
).map(" ".join)
environments = st.dictionaries(
    st.one_of(st.sampled_from([s.env for s in SETTINGS] + ["VAR", "SECRET", "PORT"]), st.text(max_size=6)),
    st.one_of(st.none(), st.sampled_from(WORDS), st.text(max_size=6)),
    max_size=6,
)


@FAST
@given(words, environments)
def test_command_readers_never_raise(argv: list[str], env: dict[str, str | None]) -> None:
    run = shell_run(argv)
    if run is not None:
        assert run.shell
    settings_ = app_settings(argv, env)
    assert (settings_.settings is None) == (settings_.error is not None) or not settings_.runs_lameduck
    for word in argv:
        expand(word, env)
        assert isinstance(expand(word, env, keep_hidden=True), str)


@FAST
@given(st.one_of(scripts, st.text()))
def test_script_execs_never_raises(script: str) -> None:
    execs, last = script_execs(script)
    assert isinstance(execs, bool)
    assert all(isinstance(w, str) for w in last)


@FAST
@given(junk)
def test_read_pre_stop_never_raises(hook: Any) -> None:
    if isinstance(hook, dict):
        pre = read_pre_stop(hook)
        assert pre.seconds is None or pre.seconds == pre.seconds  # never NaN
