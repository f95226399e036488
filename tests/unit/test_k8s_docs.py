"""docs/kubernetes.md stays true: every rule is documented, and the recommended manifest and timeline shown there
are what ``lameduck k8s render`` and ``lameduck budget`` print today."""

from __future__ import annotations

import re

import pytest

from lameduck.config import Settings
from lameduck.k8s.findings import RULES
from lameduck.k8s.render import RenderOptions, render
from tests.conftest import REPO

DOC = (REPO / "docs" / "kubernetes.md").read_text()


def test_every_rule_has_a_section_with_its_severity() -> None:
    headings = re.findall(r"^### ([a-z0-9-]+)$", DOC, flags=re.MULTILINE)
    assert headings == list(RULES), "one section per rule, in catalogue order"
    for rule in RULES.values():
        section = DOC.split(f"### {rule.id}\n", 1)[1].split("\n### ", 1)[0]
        assert f"**{rule.severity.value}" in section, rule.id


def test_the_recommended_manifest_is_what_render_prints() -> None:
    rendered = render(RenderOptions(name="web", image="ghcr.io/acme/web:1.4.2", target="web.main:app", replicas=3))
    block = DOC.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert block == rendered


def test_the_timeline_is_what_budget_prints() -> None:
    explained = Settings.load({}, {"KUBERNETES_SERVICE_HOST": "x"}).budget().explain()
    assert f"```\n{explained}\n```" in DOC


def test_the_readme_example_is_real_output(monkeypatch: pytest.MonkeyPatch) -> None:
    from lameduck.k8s.check import check_paths

    monkeypatch.chdir(REPO)
    from lameduck.k8s.report import text

    readme = (REPO / "README.md").read_text()
    block = readme.split("$ lameduck k8s check tests/k8s_corpus/manifests/slim-prestop-sleep.yaml\n", 1)[1]
    shown = block.split("```", 1)[0].splitlines()
    report = check_paths(["tests/k8s_corpus/manifests/slim-prestop-sleep.yaml"])
    real = text(report).splitlines()
    assert shown[:3] == real[:3]
    assert shown[-1] == real[-1]
