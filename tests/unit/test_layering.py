"""Dependencies point inward: walk every import under src/lameduck with ``ast`` and enforce the layers.

(a) ``lameduck.core`` is sans-I/O: only pure standard-library modules, ``lameduck.errors`` and ``lameduck.core``.
(b) Ranks: a module imports lameduck modules of equal or lower rank only (its own subpackage always).
(c) Nothing imports ``lameduck.cli`` except ``lameduck/__main__.py``.
(d) Library code (anything but the CLI) never imports ``lameduck.verify``.

Every import counts, including lazy ones inside functions and ``if TYPE_CHECKING:`` blocks.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "lameduck"

#: Top-level parts of lameduck by rank; cli -> verify/k8s/servers/workers/asgi -> runtime -> core.
RANKS: dict[str, int] = {
    "errors": 0,
    "core": 1,
    "config": 2,
    "runtime": 3,
    "asgi": 4,
    "servers": 5,
    "verify": 5,
    "k8s": 5,
    "workers": 5,
    "serve": 6,
    "cli": 7,
}
#: Exempt from the rank rule as importers: the public facade, the version string, ``python -m lameduck``.
EXEMPT = frozenset({"lameduck", "lameduck._version", "lameduck.__main__"})
#: As import targets: the version is a leaf anyone may read; the facade re-exports serve (rank 6), so only the
#: CLI may use it; __main__ imports the CLI, so nothing may import it.
TARGET_RANKS = {"lameduck._version": 0, "lameduck": RANKS["cli"], "lameduck.__main__": RANKS["cli"] + 1}

#: The standard-library modules the core may use: no I/O, no clock, no threads, no event loop.
CORE_STDLIB = frozenset(
    {
        "__future__",
        "collections",
        "collections.abc",
        "dataclasses",
        "enum",
        "functools",
        "itertools",
        "math",
        "types",
        "typing",
    }
)
#: Named in the error message because they are the usual way a core module stops being sans-I/O.
CORE_FORBIDDEN = frozenset({"asyncio", "logging", "selectors", "signal", "socket", "threading", "time"})


@dataclass(frozen=True, slots=True)
class Import:
    line: int
    target: str  # absolute dotted module name
    text: str  # the statement as written


def module_name(rel: PurePosixPath) -> str:
    """``lameduck/core/budget.py`` -> ``lameduck.core.budget``; ``lameduck/core/__init__.py`` -> ``lameduck.core``."""
    parts = rel.with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def group_of(module: str) -> str | None:
    """The top-level part of lameduck a module belongs to (``serve``, ``core``...); None outside lameduck."""
    parts = module.split(".")
    if parts[0] != "lameduck":
        return None
    return "lameduck" if len(parts) == 1 else parts[1]


def known_modules() -> frozenset[str]:
    return frozenset(module_name(PurePosixPath(p.relative_to(SRC).as_posix())) for p in PACKAGE.rglob("*.py"))


def collect_imports(rel: PurePosixPath, source: str, known: frozenset[str]) -> list[Import]:
    """Every import in ``source`` (a file at ``rel`` under src/), resolved to absolute module names."""
    module = module_name(rel)
    package = module if rel.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(source, filename=str(rel))):
        if isinstance(node, ast.Import):
            found.extend(Import(node.lineno, alias.name, ast.unparse(node)) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level - 1 >= len(base):
                    found.append(Import(node.lineno, "<beyond lameduck>", ast.unparse(node)))
                    continue
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            for alias in node.names:
                # ``from lameduck import cli`` imports the module lameduck.cli, not a name in lameduck.
                candidate = f"{origin}.{alias.name}"
                found.append(Import(node.lineno, candidate if candidate in known else origin, ast.unparse(node)))
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(Import(node.lineno, node.args[0].value, ast.unparse(node)))
    return sorted(found, key=lambda i: (i.line, i.target))


def check(rel: PurePosixPath, source: str, known: frozenset[str]) -> list[str]:
    """Layering violations of one file, each as ``src/<path>:<line>: <import>: <rule>``."""
    module = module_name(rel)
    group = group_of(module)
    violations: list[str] = []
    if module not in EXEMPT and group not in RANKS:
        violations.append(f"src/{rel}:1: {module} belongs to {group!r}, which has no rank: add it to RANKS")
    for imp in collect_imports(rel, source, known):

        def bad(rule: str, imp: Import = imp) -> None:
            violations.append(f"src/{rel}:{imp.line}: {imp.text}: {rule}")

        target_group = group_of(imp.target)
        if imp.target == "<beyond lameduck>":
            bad("relative import beyond the lameduck package")
            continue
        if group == "core":
            if target_group is None:
                root = imp.target.split(".")[0]
                pure = any(imp.target == m or imp.target.startswith(m + ".") for m in CORE_STDLIB)
                if root in CORE_FORBIDDEN:
                    bad(f"lameduck.core is sans-I/O and never imports {root}")
                elif not pure:
                    bad(f"lameduck.core may import only pure stdlib modules ({', '.join(sorted(CORE_STDLIB))})")
            elif imp.target != "lameduck.errors" and target_group != "core":
                bad(f"lameduck.core may import only lameduck.errors and lameduck.core.* (not {imp.target})")
        if target_group is None:
            continue
        if target_group == "cli" and group != "cli" and module != "lameduck.__main__":
            bad("nothing imports lameduck.cli except lameduck/__main__.py")
        if target_group == "verify" and group not in ("cli", "verify"):
            bad("library code never imports lameduck.verify")
        if module in EXEMPT or group not in RANKS or target_group == group:
            continue
        if imp.target in TARGET_RANKS:
            target_rank = TARGET_RANKS[imp.target]
        elif target_group in RANKS:
            target_rank = RANKS[target_group]
        else:
            bad(f"{imp.target} belongs to {target_group!r}, which has no rank: add it to RANKS")
            continue
        if target_rank > RANKS[group]:
            bad(
                f"{group} (rank {RANKS[group]}) may not import {imp.target} (rank {target_rank}): "
                "dependencies point inward"
            )
    return violations


def source_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_walk_sees_the_package() -> None:
    files = {p.relative_to(SRC).as_posix() for p in source_files()}
    assert "lameduck/core/lifecycle.py" in files
    assert "lameduck/__main__.py" in files
    known = known_modules()
    budget = collect_imports(
        PurePosixPath("lameduck/core/budget.py"), (PACKAGE / "core" / "budget.py").read_text(), known
    )
    assert sorted({i.target for i in budget}) == ["__future__", "dataclasses", "lameduck.errors"]
    main = collect_imports(PurePosixPath("lameduck/__main__.py"), (PACKAGE / "__main__.py").read_text(), known)
    assert [i.target for i in main] == ["lameduck.cli.main"]


def test_every_module_respects_the_layers() -> None:
    known = known_modules()
    violations: list[str] = []
    for path in source_files():
        rel = PurePosixPath(path.relative_to(SRC).as_posix())
        violations.extend(check(rel, path.read_text(encoding="utf-8"), known))
    assert not violations, "layering violations:\n" + "\n".join(violations)


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        (
            "lameduck/core/evil.py",
            "import asyncio\n",
            ["src/lameduck/core/evil.py:1: import asyncio: lameduck.core is sans-I/O and never imports asyncio"],
        ),
        (
            "lameduck/core/evil.py",
            '"""Doc."""\n\nfrom time import monotonic\n',
            [
                "src/lameduck/core/evil.py:3: from time import monotonic: "
                "lameduck.core is sans-I/O and never imports time"
            ],
        ),
        (
            "lameduck/core/evil.py",
            "import typing\nif typing.TYPE_CHECKING:\n    import logging.handlers\n",
            [
                "src/lameduck/core/evil.py:3: import logging.handlers: "
                "lameduck.core is sans-I/O and never imports logging"
            ],
        ),
        (
            "lameduck/core/evil.py",
            "import os\n",
            [
                "src/lameduck/core/evil.py:1: import os: lameduck.core may import only pure stdlib modules "
                "(__future__, collections, collections.abc, dataclasses, enum, functools, itertools, math, types, "
                "typing)"
            ],
        ),
        (
            "lameduck/core/evil.py",
            "def f():\n    return __import__('socket')\n",
            ["src/lameduck/core/evil.py:2: __import__('socket'): lameduck.core is sans-I/O and never imports socket"],
        ),
        (
            "lameduck/core/evil.py",
            "from ..runtime import driver\n",
            [
                "src/lameduck/core/evil.py:1: from ..runtime import driver: "
                "lameduck.core may import only lameduck.errors and lameduck.core.* (not lameduck.runtime.driver)",
                "src/lameduck/core/evil.py:1: from ..runtime import driver: "
                "core (rank 1) may not import lameduck.runtime.driver (rank 3): dependencies point inward",
            ],
        ),
        (
            "lameduck/runtime/evil.py",
            "import asyncio\n\n\ndef f():\n    from lameduck.asgi.middleware import LameduckMiddleware\n",
            [
                "src/lameduck/runtime/evil.py:5: from lameduck.asgi.middleware import LameduckMiddleware: "
                "runtime (rank 3) may not import lameduck.asgi.middleware (rank 4): dependencies point inward"
            ],
        ),
        (
            "lameduck/config.py",
            "import lameduck\n",
            [
                "src/lameduck/config.py:1: import lameduck: "
                "config (rank 2) may not import lameduck (rank 7): dependencies point inward"
            ],
        ),
        (
            "lameduck/serve.py",
            "from lameduck import cli\n",
            [
                "src/lameduck/serve.py:1: from lameduck import cli: "
                "nothing imports lameduck.cli except lameduck/__main__.py",
                "src/lameduck/serve.py:1: from lameduck import cli: "
                "serve (rank 6) may not import lameduck.cli (rank 7): dependencies point inward",
            ],
        ),
        (
            "lameduck/servers/evil.py",
            "import lameduck.verify.client\n",
            [
                "src/lameduck/servers/evil.py:1: import lameduck.verify.client: "
                "library code never imports lameduck.verify"
            ],
        ),
        (
            "lameduck/__init__.py",
            "from lameduck.verify import client\n",
            [
                "src/lameduck/__init__.py:1: from lameduck.verify import client: "
                "library code never imports lameduck.verify"
            ],
        ),
        (
            "lameduck/extras/thing.py",
            "",
            [
                "src/lameduck/extras/thing.py:1: lameduck.extras.thing belongs to 'extras', which has no rank: "
                "add it to RANKS"
            ],
        ),
    ],
)
def test_the_checker_catches_violations(path: str, source: str, expected: list[str]) -> None:
    assert check(PurePosixPath(path), source, known_modules()) == expected


@pytest.mark.parametrize(
    ("path", "source"),
    [
        (
            "lameduck/core/fine.py",
            "from __future__ import annotations\nimport enum\nfrom collections.abc import Mapping\n"
            "from lameduck.errors import LifecycleError\nfrom . import budget\nfrom .phases import Phase\n",
        ),
        ("lameduck/core/__init__.py", "from . import budget\nfrom .ledger import Kind\n"),
        (
            "lameduck/servers/fine.py",
            "import asyncio\nfrom lameduck.asgi.types import ASGIApp\nfrom ..runtime import events\n",
        ),
        ("lameduck/verify/fine.py", "from lameduck.verify import client\nfrom lameduck.k8s import rules\n"),
        (
            "lameduck/cli/fine.py",
            "from lameduck.verify import client\nfrom lameduck.serve import run\nimport lameduck\n",
        ),
        ("lameduck/__main__.py", "from lameduck.cli.main import entrypoint\n"),
        ("lameduck/__init__.py", "from lameduck.serve import run\nfrom lameduck._version import __version__\n"),
        ("lameduck/errors.py", "from lameduck._version import __version__\n"),
    ],
)
def test_the_checker_accepts_what_the_layers_allow(path: str, source: str) -> None:
    assert check(PurePosixPath(path), source, known_modules()) == []


def test_only_tracking_creates_tasks() -> None:
    """STYLE.md #7: every task has an owner; lameduck.runtime.tracking is the one place tasks are created."""
    creators = ("create_task", "ensure_future")
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "tracking.py" and path.parent.name == "runtime":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in creators:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {node.attr}")
    assert offenders == [], "create tasks through lameduck.runtime.tracking: " + ", ".join(offenders)
