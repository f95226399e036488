"""``lameduck k8s render``: what it writes is consistent with the settings and passes ``check`` without a finding."""

from __future__ import annotations

import itertools
import math

import pytest

from lameduck.config import Settings
from lameduck.errors import ConfigError
from lameduck.k8s import loader, rules
from lameduck.k8s.command import app_settings
from lameduck.k8s.model import get, read_pre_stop, workloads
from lameduck.k8s.render import RenderOptions, render

GRACES = (10.0, 30.0, 60.0, 300.0)
LAME_DUCKS = (None, 0.0, 2.0)
PRESTOPS = (0, 5)


def _options(**overrides: object) -> RenderOptions:
    base: dict[str, object] = {"name": "web", "image": "ghcr.io/acme/web:1.4.2", "target": "web.main:app"}
    base.update(overrides)
    return RenderOptions(**base)  # type: ignore[arg-type]


def _docs(text: str) -> list[loader.Document]:
    return loader.load(text, "rendered.yaml")


def _variants() -> list[RenderOptions]:
    out = []
    for worker, grace, lame_duck, prestop in itertools.product((False, True), GRACES, LAME_DUCKS, PRESTOPS):
        if prestop and lame_duck:
            continue  # refused: both wait for endpoint removal (tested below)
        if lame_duck == 0.0 and not prestop and not worker:
            continue  # refused: nothing would wait for endpoint removal (tested below)
        if grace == 10.0 and lame_duck is None and not prestop and not worker:
            continue  # 5 + 3 + 2 leaves nothing to drain: refused (tested below)
        out.append(
            _options(worker=worker, grace=grace, lame_duck=lame_duck, prestop_sleep=prestop, target="tasks:worker")
            if worker
            else _options(grace=grace, lame_duck=lame_duck, prestop_sleep=prestop)
        )
    return out


@pytest.mark.parametrize(
    "opts",
    _variants(),
    ids=lambda o: f"{'work' if o.worker else 'serve'}-g{o.grace:g}-ld{o.lame_duck}-pre{o.prestop_sleep}",
)
def test_rendered_manifests_pass_check_without_any_finding(opts: RenderOptions) -> None:
    docs = _docs(render(opts))
    assert [get(d.data, "kind") for d in docs] == (
        ["Deployment", "PodDisruptionBudget"] if opts.worker else ["Deployment", "Service", "PodDisruptionBudget"]
    )
    findings = [f for d in docs for f in rules.check_document(d)]
    assert findings == []


@pytest.mark.parametrize("opts", _variants()[::3], ids=lambda o: f"{'work' if o.worker else 'serve'}-{o.grace:g}")
def test_the_pod_runs_the_settings_it_was_rendered_for(opts: RenderOptions) -> None:
    (w,) = list(workloads(_docs(render(opts))[0]))
    (container,) = list(w.containers())
    argv, _ = container.argv()
    assert argv is not None
    app = app_settings(argv, container.env())
    assert app.runs_lameduck
    assert app.subcommand == ("work" if opts.worker else "serve")
    assert app.settings is not None
    grace = opts.grace if opts.grace is not None else 30.0
    assert app.settings.grace == grace
    budget = app.settings.budget()
    assert budget.total == pytest.approx(grace)  # the drain takes whatever the other parts leave
    hook = container.pre_stop()
    prestop = read_pre_stop(hook).seconds if hook else 0
    assert prestop == opts.prestop_sleep
    assert w.grace == math.ceil(opts.prestop_sleep + grace)
    if opts.prestop_sleep:
        assert budget.lame_duck == 0, "the preStop sleep replaces the lame-duck window"


def test_defaults_are_the_recommended_kubernetes_deployment() -> None:
    text = render(_options())
    assert text.startswith("# Rendered by `lameduck k8s render`")
    assert "lame-duck 5 + drain 20 + cleanup 3 + margin 2 = 30 ≤ grace 30" in text
    deployment = _docs(text)[0].data
    spec = deployment["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 30
    container = pod["containers"][0]
    assert container["command"][:3] == ["lameduck", "serve", "web.main:app"]
    assert "lifecycle" not in container, "no preStop: the lame-duck window does the waiting"
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "probes"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "probes"}
    assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= 60
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8000, "probes": 9000}
    pdb = _docs(text)[2].data
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}}}


def test_prestop_sleep_is_native_and_counted_in_the_grace_period() -> None:
    text = render(_options(prestop_sleep=5))
    pod = _docs(text)[0].data["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 35
    assert pod["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["LAMEDUCK_LAME_DUCK"] == "0"


def test_settings_that_cannot_fit_are_refused_with_the_arithmetic() -> None:
    with pytest.raises(ConfigError, match=r"lame-duck 5 \+ cleanup 3 \+ margin 2 = 10 leaves 0 of grace 10"):
        render(_options(grace=10.0))
    with pytest.raises(ConfigError, match=r"--prestop-sleep: and --lame-duck 2 both wait"):
        render(_options(prestop_sleep=5, lame_duck=2.0))
    with pytest.raises(ConfigError, match=r"--lame-duck: 0 with no --prestop-sleep"):
        render(_options(lame_duck=0.0))
    with pytest.raises(ConfigError, match="--drain-timeout"):
        render(_options(grace=30.0, drain_timeout=40.0))


def test_namespace_and_explicit_drain_are_rendered() -> None:
    text = render(_options(namespace="shop", drain_timeout=12.0, grace=30.0))
    docs = _docs(text)
    assert {get(d.data, "metadata", "namespace") for d in docs} == {"shop"}
    env = {e["name"]: e["value"] for e in docs[0].data["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LAMEDUCK_DRAIN_TIMEOUT"] == "12"
    settings = Settings.load({}, {**env, "KUBERNETES_SERVICE_HOST": "x"})
    assert settings.budget().total == 22  # 5 + 12 + 3 + 2: fits in 30, nothing wasted that check would flag
    assert [f.rule for d in docs for f in rules.check_document(d)] == []
