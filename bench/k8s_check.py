"""Benchmark 7: ``lameduck k8s check`` on a big ``helm template`` stream, against a bare YAML parse of the same text.

The input is generated, deterministically: the documents of tests/k8s_corpus/manifests/ (each file's header
comment dropped, every ``*.yaml`` and the one ``*.json``), in an order shuffled by a fixed seed, each preceded by
helm's ``# Source:`` comment, as ``helm template`` prints an umbrella chart; the corpus is repeated until about
``documents`` documents (whole copies only), copy N with every object name (``metadata.name``, and each ``name:``
that refers to it) suffixed ``-N`` so the objects are distinct, as a real umbrella chart's are. Every copy must
produce the same findings (checked: the findings of the stream are ``copies`` x those of one copy, per rule).

Measured, medians of ``trials`` trials, alternating which side goes first:

1. **in-process**, ``time.perf_counter()``: the baseline ``list(yaml.load_all(text, Loader=yaml.CSafeLoader))`` (the
   least any tool must do: parse), lameduck's parser alone (``lameduck.k8s.loader.load``: positions, duplicate keys,
   alias limits) and ``check_text(text, "bench.yaml")`` end to end (parse + every rule);
2. **the CLI as a user runs it**, wall time from fork to ``wait4`` including interpreter start: ``python -m lameduck
   k8s check - --format json`` with the text on stdin (a file) against ``python -c "import sys, yaml;
   list(yaml.load_all(sys.stdin, Loader=yaml.CSafeLoader))"``; and each child's peak RSS (``ru_maxrss`` from
   ``wait4``, that child only). A small launcher forks each child (``LAUNCHER``: a child forked by this 40+ MiB
   process would inherit its RSS high-water mark); launcher and child on the servers' CPU (taskset) when pinning
   is available.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import common
from bench.common import BenchError, Result

NAME = "k8s_check"
CORPUS = common.REPO / "tests" / "k8s_corpus" / "manifests"
SEED = 1
#: In-process ``check_text`` ÷ bare ``yaml.load_all`` (CSafeLoader). The check parses too (with libyaml as well),
#: then keeps each node's position and runs the rules: both are per-node Python work of the size of the parse.
TARGET_INPROCESS = 3.0
#: The CLI's wall time ÷ the bare-parse CLI's, both from spawn to exit (interpreter start included).
TARGET_CLI_RATIO = 3.0
#: Seconds for the CLI on the full input: an interactive command, and a CI step per chart.
TARGET_CLI_SECONDS = 10.0
#: Peak RSS of the CLI child ÷ the bare-parse child's: the document tree, plus a position per node.
TARGET_RSS_RATIO = 3.0
#: Longest a single CLI run may take before the benchmark gives up on it.
CLI_TIMEOUT = 120.0

SHOWN_CHECK = "python -m lameduck k8s check - --format json < bench.yaml"
SHOWN_BARE = 'python -c "import sys, yaml; list(yaml.load_all(sys.stdin, Loader=yaml.CSafeLoader))" < bench.yaml'
BARE_SCRIPT = "import sys, yaml; list(yaml.load_all(sys.stdin, Loader=yaml.CSafeLoader))"

_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)


# -- the input --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    text: str
    documents: int
    copies: int
    per_copy: int
    files: int

    @property
    def megabytes(self) -> float:
        return len(self.text.encode("utf-8")) / 1e6


def _documents(path: Path) -> list[str]:
    """The documents of one corpus file, each without the comment lines that lead it (the file's header)."""
    out = []
    for chunk in _SEPARATOR.split(path.read_text(encoding="utf-8")):
        lines = chunk.splitlines()
        while lines and (not lines[0].strip() or lines[0].lstrip().startswith("#")):
            lines.pop(0)
        if lines:
            out.append("\n".join(lines) + "\n")
    return out


def _object_names(data: Any) -> Iterator[str]:
    if not isinstance(data, dict):
        return
    if isinstance(data.get("items"), list):  # a kind: List
        for item in data["items"]:
            yield from _object_names(item)
    metadata = data.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
        yield metadata["name"]


def _renamer(names: list[str]) -> Callable[[str, str], str]:
    """Suffix each ``name: X`` / ``"name": "X"`` whose value is one of ``names`` (longest first)."""
    if not names:
        return lambda text, _suffix: text
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    pattern = re.compile(r'(\bname"?:[ \t]*["\']?)(' + alternatives + r')(?=["\'\s,}]|$)')
    return lambda text, suffix: pattern.sub(lambda m: m.group(1) + m.group(2) + suffix, text)


def corpus() -> list[tuple[str, list[str], Callable[[str, str], str]]]:
    """(file stem, documents, renamer) for every manifest of the corpus, sorted by name."""
    files = sorted(p for p in CORPUS.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    if not files:
        raise BenchError(f"no manifests in {CORPUS}")
    out = []
    for path in files:
        docs = _documents(path)
        names = sorted({n for d in docs for n in _object_names(yaml.load(d, Loader=yaml.CSafeLoader))})
        out.append((path.stem, docs, _renamer(names)))
    return out


def stream(documents: int, seed: int = SEED) -> Stream:
    """About ``documents`` documents of ``helm template`` output: whole copies of the corpus (see the module doc)."""
    files = corpus()
    per_copy = sum(len(docs) for _, docs, _ in files)
    copies = max(1, round(documents / per_copy))
    rng = random.Random(seed)
    parts = []
    for copy in range(copies):
        order = list(files)
        rng.shuffle(order)
        for stem, docs, rename in order:
            chart = f"{stem}-{copy}"
            for doc in docs:
                body = rename(doc, f"-{copy}") if copy else doc
                parts.append(f"---\n# Source: umbrella/charts/{chart}/templates/{stem}.yaml\n{body}")
    return Stream("".join(parts), copies * per_copy, copies, per_copy, len(files))


# -- measurements -----------------------------------------------------------------------------------------------


def _timed(fn: Callable[[], object]) -> float:
    gc.collect()
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def bare_parse(text: str) -> int:
    return len(list(yaml.load_all(text, Loader=yaml.CSafeLoader)))


def lameduck_parse(text: str) -> int:
    from lameduck.k8s import loader

    return len(loader.load(text, "bench.yaml"))


def lameduck_check(text: str) -> int:
    from lameduck.k8s.check import check_text

    return len(check_text(text, "bench.yaml").findings)


#: Runs one command and reports its wall time and peak RSS. A child's ``ru_maxrss`` starts from the RSS of the
#: process that forked it (fork copies the page tables, exec keeps the old high-water mark), so a child forked by
#: this benchmark (40+ MiB) would report at least that. This small ``python -S`` launcher forks it instead: the
#: floor left is the launcher's own, measured with ``true`` and reported.
LAUNCHER = """import os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
began = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - began
with open(out, "w") as f:
    f.write(f"{seconds!r} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


@dataclass
class ChildRun:
    seconds: float
    maxrss_kib: int
    returncode: int
    stdout: bytes


def run_child(command: list[str], stdin_path: Path, scratch: Path) -> ChildRun:
    """``command`` with ``stdin_path`` on stdin, through the launcher: wall time fork → ``wait4`` (interpreter start
    included) and that child's peak RSS. Bounded by ``CLI_TIMEOUT``; the launcher leads a session of its own, which
    is killed by its id on timeout."""
    report = scratch / "launcher.out"
    report.unlink(missing_ok=True)
    launcher = [*common.pin(common.SERVER_CPU), sys.executable, "-S", "-c", LAUNCHER, str(report), *command]
    with open(stdin_path, "rb") as stdin, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            launcher, cwd=common.REPO, env=common.child_env(), stdin=stdin, stdout=out, stderr=err,
            start_new_session=True,
        )  # fmt: skip
        try:
            proc.wait(timeout=CLI_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{command} took longer than {CLI_TIMEOUT:g} s") from None
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the launcher's session: it and the command
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=common.REAP_TIMEOUT)
        out.seek(0)
        err.seek(0)
        try:
            seconds, maxrss, code = report.read_text(encoding="ascii").split()
        except (OSError, ValueError):
            raise BenchError(f"the launcher reported nothing ({proc.returncode}): {err.read()[-2000:]!r}") from None
        if int(code) not in (0, 1):
            raise BenchError(f"{command} exited {code}: {err.read().decode(errors='replace')[-2000:]}")
        return ChildRun(float(seconds), int(maxrss), int(code), out.read())


def check_command() -> list[str]:
    return [sys.executable, "-m", "lameduck", "k8s", "check", "-", "--format", "json"]


def bare_command() -> list[str]:
    return [sys.executable, "-c", BARE_SCRIPT]


def floor_command() -> list[str]:
    return [shutil.which("true") or "/bin/true"]


def _consistency(s: Stream) -> tuple[str, int]:
    """A note saying whether every copy gave the same findings, and the stream's findings count."""
    from lameduck.k8s.check import check_text

    one = stream(s.per_copy).text
    per_copy = Counter(f.rule for f in check_text(one, "bench.yaml").findings)
    whole = Counter(f.rule for f in check_text(s.text, "bench.yaml").findings)
    expected = Counter({rule: n * s.copies for rule, n in per_copy.items()})
    total = sum(whole.values())
    if whole == expected:
        return f"every copy gave the same findings: {total:,} = {s.copies} x {sum(per_copy.values())}", total
    return f"UNEXPECTED: the stream's findings per rule {dict(whole)} are not {s.copies} x {dict(per_copy)}", total


# -- the benchmark ----------------------------------------------------------------------------------------------


def _ratio_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def run(*, documents: int = 2000, trials: int = 7, cli_trials: int = 7, seed: int = SEED, log=print) -> Result:
    began = time.perf_counter()
    s = stream(documents, seed)
    log(f"  k8s_check input: {s.documents:,} documents ({s.copies} copies of {s.per_copy}), {s.megabytes:.2f} MB")
    consistency, findings = _consistency(s)
    inproc: dict[str, list[float]] = {"bare parse": [], "lameduck parse": [], "check_text": []}
    runs: dict[str, Callable[[], object]] = {
        "bare parse": lambda: bare_parse(s.text),
        "lameduck parse": lambda: lameduck_parse(s.text),
        "check_text": lambda: lameduck_check(s.text),
    }
    one_copy = stream(s.per_copy, seed).text
    bare_parse(one_copy)  # warm-up: imports and first-call costs stay outside the timed runs
    lameduck_check(one_copy)
    for i in range(trials):
        order = list(runs) if i % 2 == 0 else list(reversed(runs))
        for key in order:
            inproc[key].append(_timed(runs[key]))
        log(f"  k8s_check in-process trial {i + 1}/{trials}: " + ", ".join(f"{k} {inproc[k][-1]:.3f} s" for k in runs))
    cli: dict[str, list[float]] = {"check CLI": [], "bare CLI": []}
    rss: dict[str, list[float]] = {"check CLI": [], "bare CLI": []}
    cli_findings: int | None = None
    codes: dict[str, set[int]] = {"check CLI": set(), "bare CLI": set()}
    with tempfile.TemporaryDirectory(prefix="lameduck-bench-k8s-") as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(s.text, encoding="utf-8")
        commands = {"check CLI": check_command(), "bare CLI": bare_command()}
        floor = run_child(floor_command(), path, Path(tmp)).maxrss_kib / 1024
        for i in range(cli_trials):
            order = list(commands) if i % 2 == 0 else list(reversed(commands))
            for key in order:
                done = run_child(commands[key], path, Path(tmp))
                cli[key].append(done.seconds)
                rss[key].append(done.maxrss_kib / 1024)
                codes[key].add(done.returncode)
                if key == "check CLI" and cli_findings is None:
                    cli_findings = len(json.loads(done.stdout)["findings"])
            log(
                f"  k8s_check CLI trial {i + 1}/{cli_trials}: "
                + ", ".join(f"{k} {cli[k][-1]:.3f} s, peak RSS {rss[k][-1]:.1f} MiB" for k in commands)
            )
    med = {k: common.median(v) for k, v in {**inproc, **cli}.items()}
    rss_med = {k: common.median(v) for k, v in rss.items()}
    r_inproc = common.ratio(med["check_text"], med["bare parse"])
    r_parse = common.ratio(med["lameduck parse"], med["bare parse"])
    r_cli = common.ratio(med["check CLI"], med["bare CLI"])
    r_rss = common.ratio(rss_med["check CLI"], rss_med["bare CLI"])
    ok_inproc = r_inproc is not None and r_inproc <= TARGET_INPROCESS
    ok_cli = r_cli is not None and r_cli <= TARGET_CLI_RATIO and med["check CLI"] <= TARGET_CLI_SECONDS
    ok_rss = r_rss is not None and r_rss <= TARGET_RSS_RATIO
    same_findings = cli_findings == findings
    mb, docs = s.megabytes, s.documents
    pinned = f"on CPU {common.SERVER_CPU} (taskset)" if common.pinning_available() else "unpinned"

    def rate(seconds: float) -> str:
        return f"{docs / seconds:,.0f} docs/s, {mb / seconds:.2f} MB/s"

    rows = [
        {
            "measure": "in-process: check_text (parse with positions + every rule)",
            "lameduck": f"{med['check_text']:.3f} s ({rate(med['check_text'])})",
            "baseline": f"bare parse {med['bare parse']:.3f} s ({rate(med['bare parse'])})",
            "ratio": r_inproc,
            "target": f"≤ {TARGET_INPROCESS:g}x: parsing is the floor; positions and rules are per-node work of "
            "the same order as the parse itself",
            "passed": ok_inproc,
            "commands": ["check (in-process)", "bare parse (in-process)"],
        },
        {
            "measure": "in-process: lameduck's parser alone (loader.load: positions, duplicate keys, alias limits)",
            "lameduck": f"{med['lameduck parse']:.3f} s ({rate(med['lameduck parse'])})",
            "baseline": f"bare parse {med['bare parse']:.3f} s",
            "ratio": r_parse,
            "target": "— (where the time goes: check_text - loader.load is the rules' share)",
            "passed": None,
            "commands": ["lameduck parser alone (in-process)", "bare parse (in-process)"],
        },
        {
            "measure": "CLI wall time, spawn → exit (interpreter start and imports included)",
            "lameduck": f"{med['check CLI']:.3f} s ({rate(med['check CLI'])})",
            "baseline": f"bare-parse CLI {med['bare CLI']:.3f} s",
            "ratio": r_cli,
            "target": f"≤ {TARGET_CLI_SECONDS:g} s and ≤ {TARGET_CLI_RATIO:g}x: an interactive command and a CI "
            "step; the same per-node work as in-process, plus the import of lameduck and the JSON report",
            "passed": ok_cli,
            "commands": ["lameduck k8s check (CLI)", "bare parse (CLI)"],
        },
        {
            "measure": "CLI peak RSS (ru_maxrss of the child, wait4)",
            "lameduck": f"{rss_med['check CLI']:.1f} MiB",
            "baseline": f"bare-parse CLI {rss_med['bare CLI']:.1f} MiB",
            "ratio": r_rss,
            "target": f"≤ {TARGET_RSS_RATIO:g}x: the same documents, plus a (line, column) per node",
            "passed": ok_rss,
            "commands": ["lameduck k8s check (CLI)", "bare parse (CLI)"],
        },
    ]
    notes = [
        f"input: {docs:,} documents, {mb:.2f} MB (10^6 bytes of UTF-8): {s.copies} copies of the {s.per_copy} "
        f"documents of the {s.files} files in tests/k8s_corpus/manifests/, shuffled with seed {seed}, each after a "
        "`# Source:` line, names suffixed per copy; generated by `bench.k8s_check.stream(documents)`",
        consistency,
        f"the CLI reported {cli_findings if cli_findings is not None else '—'} findings "
        + ("(the same as check_text)" if same_findings else f"(check_text: {findings}: UNEXPECTED)"),
        f"{trials} in-process trials (gc.collect() before each, order alternating), {cli_trials} CLI trials "
        f"(order alternating, both children {pinned}); return codes: check CLI {sorted(codes['check CLI'])} "
        f"(1: error-level findings exist, as the corpus means), bare CLI {sorted(codes['bare CLI'])}",
        "in-process samples (s): " + "; ".join(f"{k} {', '.join(f'{x:.3f}' for x in v)}" for k, v in inproc.items()),
        "CLI samples (s): " + "; ".join(f"{k} {', '.join(f'{x:.3f}' for x in v)}" for k, v in cli.items()),
        f"peak RSS is the child's ru_maxrss from wait4 in a small launcher (`python -S`) that forks it; the floor "
        f"this leaves (what `true` reports through the same launcher) is {floor:.1f} MiB",
        "CLI peak RSS samples (MiB): " + "; ".join(f"{k} {', '.join(f'{x:.1f}' for x in v)}" for k, v in rss.items()),
        f"rules' share in-process: check_text - loader.load = {med['check_text'] - med['lameduck parse']:.3f} s",
    ]
    if not same_findings:
        notes.append("UNEXPECTED: the CLI's and check_text's findings differ in number")
    result = Result(
        name=NAME,
        title=f"lameduck k8s check, {docs:,} documents ({mb:.1f} MB of helm template output)",
        target=f"check ≤ {TARGET_INPROCESS:g}x bare parse; CLI ≤ {TARGET_CLI_SECONDS:g} s and ≤ "
        f"{TARGET_CLI_RATIO:g}x; peak RSS ≤ {TARGET_RSS_RATIO:g}x",
        unit="s",
        lameduck=med["check_text"],
        bare=med["bare parse"],
        ratio=r_inproc,
        passed=ok_inproc and ok_cli and ok_rss and same_findings and consistency.startswith("every"),
        lameduck_cell=f"check {med['check_text']:.2f} s; CLI {med['check CLI']:.2f} s, {rss_med['check CLI']:.0f} MiB",
        bare_cell=f"bare parse: {med['bare parse']:.2f} s; CLI {med['bare CLI']:.2f} s, {rss_med['bare CLI']:.0f} MiB",
        samples={**inproc, **cli},
        notes=notes,
        commands={
            "lameduck k8s check (CLI)": SHOWN_CHECK,
            "bare parse (CLI)": SHOWN_BARE,
            "check (in-process)": 'lameduck.k8s.check.check_text(text, "bench.yaml")',
            "bare parse (in-process)": "list(yaml.load_all(text, Loader=yaml.CSafeLoader))",
            "lameduck parser alone (in-process)": 'lameduck.k8s.loader.load(text, "bench.yaml")',
        },
        details={
            "rows": rows,
            "input": {"documents": docs, "copies": s.copies, "per_copy": s.per_copy, "megabytes": round(mb, 3)},
            "findings": findings,
            "cli_findings": cli_findings,
            "consistent": consistency.startswith("every"),
            "peak_rss_mib": rss,
            "rss_floor_mib": floor,
        },
    )
    result.seconds = time.perf_counter() - began
    return result
