"""``lameduck verify``: run the selected scenarios one after another and describe the outcome.

Scenarios run in sequence, never in parallel: each one owns the machine's attention while it measures timing.
"""

from __future__ import annotations

import datetime
import shlex
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lameduck._version import __version__
from lameduck.verify.scenarios import NAMES, SCENARIOS, Options, Result, run_scenario
from lameduck.verify.target import TargetError
from lameduck.verify.view import Table, View


@dataclass
class Report:
    options: Options
    selected: tuple[str, ...]
    explicit: bool  # the user named the scenarios (then one that cannot apply is an error, not an N/A)
    started: str = field(default_factory=lambda: datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    results: list[Result] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every selected scenario that applies passed (and at least one ran)."""
        ran = [r for r in self.results if r.verdict != "N/A"]
        return bool(ran) and all(r.verdict == "PASS" for r in ran)

    def to_json(self) -> dict[str, Any]:
        options = asdict(self.options)
        options["signal"] = self.options.signal.name
        options.pop("env", None)
        return {
            "tool": "lameduck verify",
            "version": __version__,
            "started": self.started,
            "command": list(self.options.command),
            "options": options,
            "verdict": "PASS" if self.passed else "FAIL",
            "scenarios": [
                {
                    "name": r.name,
                    "title": r.title,
                    "verdict": r.verdict,
                    "reason": r.reason,
                    "checks": [asdict(c) for c in r.checks],
                    "figures": r.figures,
                    "timeline": r.timeline,
                }
                for r in self.results
            ],
        }

    def to_view(self) -> View:
        ran = [r for r in self.results if r.verdict != "N/A"]
        failed = [r.name for r in ran if r.verdict == "FAIL"]
        if failed:
            headline = f"{len(failed)} of {len(ran)} scenarios failed: {', '.join(failed)}"
        elif not ran:
            headline = "no scenario applied to this service; nothing was proved"
        else:
            headline = f"all {len(ran)} scenarios passed"
        summary = Table(
            title="scenarios",
            columns=["scenario", "verdict", "figures"],
            rows=[[r.name, r.verdict, _figures_line(r.figures) or r.reason] for r in self.results],
            verdicts=[r.verdict for r in self.results],
        )
        checks = [(r.name, c) for r in self.results for c in r.checks]
        detail = Table(
            title="checks",
            columns=["scenario", "check", "verdict", "measured"],
            rows=[[name, c.name, "PASS" if c.passed else "FAIL", c.detail] for name, c in checks],
            verdicts=["PASS" if c.passed else "FAIL" for _, c in checks],
            detail=True,
        )
        o = self.options
        meta = [
            ("command", shlex.join(o.command)),
            ("signal", o.signal.name),
            ("expected grace", f"{o.grace:g} s"),
            ("expected lame-duck window", f"{o.lame_duck:g} s"),
            (
                "paths",
                f"ready {o.ready_path if o.probes else '(none)'}, load {o.path}, slow {o.slow_path or '-'}, "
                f"hang {o.hang_path or '-'}",
            ),
            ("started", self.started),
            ("lameduck", __version__),
        ]
        return View(
            title="lameduck verify",
            verdict="PASS" if self.passed else "FAIL",
            headline=headline,
            meta=meta,
            tables=[summary, detail],
            timelines=[r.timeline for r in self.results if r.timeline is not None],
        )


def _figures_line(figures: dict[str, Any]) -> str:
    parts = []
    for key, value in figures.items():
        if value is None or value == {}:
            continue
        if key.endswith("_s") and isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(f"{key[:-2].replace('_', ' ')} {value * 1000:.1f} ms")
        elif isinstance(value, dict):
            parts.append(f"{key.replace('_', ' ')} " + ", ".join(f"{k} {v}" for k, v in value.items()))
        else:
            parts.append(f"{key.replace('_', ' ')} {value}")
    return "; ".join(parts)


def select(names: Sequence[str]) -> tuple[str, ...]:
    """Validate scenario names (in the order of ``NAMES``); raises ``ValueError`` naming the allowed ones."""
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(f"--scenario: must be one of {', '.join(NAMES)} (got {', '.join(unknown)})")
    return tuple(n for n in NAMES if n in names) if names else NAMES


def inapplicable(options: Options, names: Sequence[str]) -> list[str]:
    """For explicitly named scenarios: why each cannot run with these options (an empty list when all can)."""
    return [f"{s.name} {s.needs(options)}" for s in SCENARIOS if s.name in names and s.needs(options)]


async def verify(
    options: Options,
    names: Sequence[str] = (),
    *,
    on_start: Callable[[str, str], None] | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> Report:
    """Run the scenarios; ``TargetError`` propagates when the service never became ready for the first one (a
    later scenario whose service does not start is a FAIL, and the results so far are kept)."""
    report = Report(options, select(names), explicit=bool(names))
    for scenario in SCENARIOS:
        if scenario.name not in report.selected:
            continue
        if on_start is not None:
            on_start(scenario.name, scenario.title)
        try:
            result = await run_scenario(scenario, options)
        except TargetError as exc:
            if not report.results:
                raise  # the service never started: nothing was measured
            result = Result(scenario.name, scenario.title, verdict="FAIL", reason=f"the service did not start: {exc}")
        report.results.append(result)
        if on_result is not None:
            on_result(result)
    return report
