"""The three faces of a check report: text for people, JSON for scripts, SARIF 2.1.0 for code-scanning UIs.

Pure functions from a ``Report`` to a string; the CLI decides where it goes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lameduck._version import __version__
from lameduck.k8s.check import Report
from lameduck.k8s.findings import RULES, Finding, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary(report: Report) -> str:
    counts = ", ".join(_plural(report.count(s), s.value) for s in Severity)
    what = []
    if report.dockerfiles < len(report.files):  # some inputs were manifests
        what += [_plural(report.objects, "object"), _plural(report.pod_templates, "pod template")]
    if report.dockerfiles:
        what.append(_plural(report.dockerfiles, "Dockerfile"))
    return f"{counts} in {_plural(len(report.files), 'input')} ({', '.join(what)})"


def _where(f: Finding) -> str:
    loc = f.location
    return f"{loc.file}:{loc.line}:{loc.column}" if loc.line else loc.file


def text(report: Report) -> str:
    """``file:line:col: severity[rule] Kind/name container c: message`` then the path and the fix, indented."""
    lines: list[str] = []
    for f in report.findings:
        subject = f"{f.subject}: " if f.subject else ""
        lines.append(f"{_where(f)}: {f.severity.value}[{f.rule}] {subject}{f.message}")
        if f.location.path:
            document = "" if f.location.file in report.dockerfile_sources else f" (document {f.location.document + 1})"
            lines.append(f"    at {f.location.path}{document}")
        lines.append(f"    fix: {f.fix}")
    lines.append(summary(report))
    return "\n".join(lines) + "\n"


def _finding_json(f: Finding, report: Report) -> dict[str, Any]:
    loc = f.location
    dockerfile = loc.file in report.dockerfile_sources
    return {
        "rule": f.rule,
        "severity": f.severity.value,
        "message": f.message,
        "fix": f.fix,
        "file": loc.file,
        "document": None if dockerfile else loc.document + 1,  # 1-based, as people count them
        "path": loc.path,
        "line": loc.line,
        "column": loc.column,
        "kind": f.kind,
        "name": f.name,
        "container": f.container,
    }


def as_json(report: Report) -> str:
    payload = {
        "findings": [_finding_json(f, report) for f in report.findings],
        "summary": {
            "errors": report.count(Severity.ERROR),
            "warnings": report.count(Severity.WARNING),
            "notes": report.count(Severity.NOTE),
            "inputs": report.files,
            "objects": report.objects,
            "pod_templates": report.pod_templates,
            "dockerfiles": report.dockerfiles,
            "exit_code": report.exit_code,
        },
    }
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def _uri(file: str) -> str:
    """Relative to the working directory where it can be (code-scanning UIs map those to the repository), else an
    absolute ``file://`` URI; standard input stays ``stdin``."""
    path = Path(file)
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            return path.as_uri()
    return quote(path.as_posix().removeprefix("./"))


def sarif(report: Report) -> str:
    """SARIF 2.1.0 with every rule in ``tool.driver.rules`` (ids stable, so UIs can track a finding over time)."""
    rule_ids = list(RULES)
    rules_json = [
        {
            "id": r.id,
            "name": "".join(part.capitalize() for part in r.id.split("-")),
            "shortDescription": {"text": r.title},
            "fullDescription": {"text": r.why},
            "defaultConfiguration": {"level": r.severity.value},
            "help": {"text": r.why},
        }
        for r in RULES.values()
    ]
    results = []
    for f in report.findings:
        physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(f.location.file)}}
        if f.location.line:
            physical["region"] = {"startLine": f.location.line, "startColumn": max(1, f.location.column)}
        location: dict[str, Any] = {"physicalLocation": physical}
        logical = "/".join(p for p in (f.kind, f.name, f.container) if p)
        if logical or f.location.path:
            location["logicalLocations"] = [
                {"fullyQualifiedName": f"{logical}:{f.location.path}" if logical else f.location.path}
            ]
        results.append(
            {
                "ruleId": f.rule,
                "ruleIndex": rule_ids.index(f.rule),
                "level": f.severity.value,
                "message": {"text": f"{f.subject + ': ' if f.subject else ''}{f.message}. Fix: {f.fix}."},
                "locations": [location],
                "partialFingerprints": {
                    "lameduck/v1": "/".join(
                        (f.rule, _uri(f.location.file), f.kind, f.name, f.container, f.location.path)
                    )
                },
            }
        )
    payload = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "lameduck",
                        "version": __version__,
                        "rules": rules_json,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


FORMATS = {"text": text, "json": as_json, "sarif": sarif}
