"""``lameduck k8s check``: read every input, run the rules, return one report.

Inputs are files, directories (searched for ``*.yaml``, ``*.yml``, ``*.json`` and Dockerfiles) or ``-`` for stdin
(``helm template . | lameduck k8s check -``; a Dockerfile piped in is recognised by its first instruction). Reading
stops at the first input that cannot be read or parsed (``ManifestError``): a check that silently skipped a file
would report a clean bill of health for manifests it never saw.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lameduck.errors import ManifestError
from lameduck.k8s import dockerfile, loader, model, rules
from lameduck.k8s.findings import RULES, Finding, Severity

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"
#: How findings and errors name standard input.
STDIN_NAME = "stdin"
#: A Dockerfile's first instruction (after comments and parser directives) is FROM, or ARG before FROM.
_DOCKERFILE_START = re.compile(r"\A(?:\s*(?:#[^\n]*)?\n)*\s*(?:FROM|ARG)\s", re.IGNORECASE)


@dataclass(slots=True)
class Report:
    """What was read and what was found; ``exit_code`` is the CLI's (1 on any error-level finding)."""

    findings: list[Finding] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    objects: int = 0
    pod_templates: int = 0
    #: Inputs read as Dockerfiles (their findings have no document index).
    dockerfile_sources: set[str] = field(default_factory=set)

    @property
    def dockerfiles(self) -> int:
        return len(self.dockerfile_sources)

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    @property
    def exit_code(self) -> int:
        return 1 if self.count(Severity.ERROR) else 0


def check_text(
    text: str,
    source: str,
    *,
    as_dockerfile: bool | None = None,
    report: Report | None = None,
    context: model.Context | None = None,
) -> Report:
    """Check one input's text. ``as_dockerfile`` None: decide by name, then by content."""
    report = report if report is not None else Report()
    dockerfile_text, docs = _parse(text, source, as_dockerfile)
    _check_parsed(source, dockerfile_text, docs, report, context or _context(docs))
    return report


def _parse(text: str, source: str, as_dockerfile: bool | None) -> tuple[str | None, list[loader.Document]]:
    if as_dockerfile is None:
        as_dockerfile = dockerfile.is_dockerfile_name(Path(source).name) or (
            source == STDIN_NAME and bool(_DOCKERFILE_START.match(text))
        )
    if as_dockerfile:
        return text, []
    try:
        return None, loader.load(text, source)
    except ManifestError as exc:
        if "{{" in text and "helm" not in str(exc):
            hint = " (a Helm template? check the output of `helm template` instead)"
            raise ManifestError(exc.source, exc.message + hint, exc.line, exc.column) from None
        raise


def _context(docs: Iterable[loader.Document]) -> model.Context:
    context = model.Context()
    for doc in docs:
        context.add(doc.data)
    return context


def _check_parsed(
    source: str,
    dockerfile_text: str | None,
    docs: list[loader.Document],
    report: Report,
    context: model.Context,
) -> None:
    report.files.append(source)
    if dockerfile_text is not None:
        report.dockerfile_sources.add(source)
        report.findings.extend(dockerfile.check_dockerfile(dockerfile_text, source))
        return
    for doc in docs:
        if model.is_object(doc.data):
            report.objects += _count_objects(doc.data)
            report.pod_templates += sum(1 for _ in model.workloads(doc))
        report.findings.extend(rules.check_document(doc, context))


def _count_objects(data: object) -> int:
    if isinstance(data, dict) and str(data.get("kind", "")).endswith("List") and isinstance(data.get("items"), list):
        return sum(_count_objects(item) for item in data["items"])
    return 1 if model.is_object(data) else 0


def _expand(inputs: Sequence[str]) -> list[tuple[str, str | None]]:
    """Files in the order given, directories opened (their manifests and Dockerfiles, sorted, recursively), each
    with the directory it was found in, or None when it was named itself."""
    out: list[tuple[str, str | None]] = []
    for name in inputs:
        if name == STDIN:
            out.append((name, None))
            continue
        path = Path(name)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
                and (p.suffix.lower() in MANIFEST_SUFFIXES or dockerfile.is_dockerfile_name(p.name))
            )
            if not found:
                raise ManifestError(name, "no *.yaml, *.yml, *.json or Dockerfile in this directory")
            out.extend((str(p), name) for p in found)
        else:
            out.append((name, None))
    return out


def read(name: str, stdin: Iterable[str] | None = None) -> str:
    """An input's text; ``ManifestError`` when it cannot be read (missing, a directory, not UTF-8)."""
    if name == STDIN:
        if stdin is None:
            raise ManifestError(STDIN_NAME, "no standard input")
        try:
            return "".join(stdin)
        except UnicodeDecodeError as exc:
            raise ManifestError(STDIN_NAME, f"not UTF-8 text (byte {exc.start})") from None
    try:
        return Path(name).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ManifestError(name, "no such file") from None
    except IsADirectoryError:
        raise ManifestError(name, "is a directory") from None
    except PermissionError:
        raise ManifestError(name, "permission denied") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(name, f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ManifestError(name, exc.strerror or str(exc)) from None


def check_paths(inputs: Sequence[str], *, ignore: Iterable[str] = (), stdin: Iterable[str] | None = None) -> Report:
    """Check every input; findings of ignored rules are dropped; findings sorted by file, position, severity."""
    unknown = sorted(set(ignore) - set(RULES))
    if unknown:
        raise ValueError(f"unknown rule {unknown[0]!r} (rules: {', '.join(RULES)})")
    report = Report()
    expanded = _expand(inputs)
    names = [name for name, _ in expanded]
    # Everything is read and parsed first: ConfigMaps and HPAs in one file tell about workloads in another.
    parsed = []
    found_in: dict[str, int] = {}
    for name, directory in expanded:
        source = STDIN_NAME if name == STDIN else name
        dockerfile_text, docs = _parse(read(name, stdin), source, None)
        has_objects = dockerfile_text is not None or any(model.is_object(d.data) for d in docs)
        if directory is None and not has_objects:
            # An empty stream is what `helm template ... | lameduck k8s check -` gives when helm failed: not a pass.
            raise ManifestError(
                source, "no Kubernetes object here (helm values or a template? check the output of `helm template`)"
            )
        if directory is not None:
            found_in[directory] = found_in.get(directory, 0) + has_objects
            if not has_objects:
                continue  # a values.yaml or a docs config next to the manifests
        parsed.append((source, dockerfile_text, docs))
    for directory, count in found_in.items():
        if not count:
            raise ManifestError(directory, "no Kubernetes object or Dockerfile in this directory")
    context = _context(doc for _, _, docs in parsed for doc in docs)
    for source, dockerfile_text, docs in parsed:
        _check_parsed(source, dockerfile_text, docs, report, context)
    skip = set(ignore)
    order = {STDIN_NAME if name == STDIN else name: i for i, name in enumerate(names)}
    report.findings = sorted(
        (f for f in report.findings if f.rule not in skip),
        key=lambda f: (order.get(f.location.file, len(order)), *f.sort_key()),
    )
    return report
