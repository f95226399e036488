"""``lameduck verify``'s pure parts: scenario selection, applicability, the report's verdict, JSON and view, and
the small formatting helpers. No service is started: results are built by hand.
"""

from __future__ import annotations

import dataclasses
import json
import signal
from typing import Any

import pytest

from lameduck._version import __version__
from lameduck.verify.runner import Report, _figures_line, inapplicable, select
from lameduck.verify.scenarios import NAMES, SCENARIOS, Options, Result, describe_exit
from lameduck.verify.view import Timeline, Verdict

COMMAND = ("serve", "app:app", "--port", "{port}")
ALL = ("in-flight", "idle-keepalive", "busy-keepalive", "readiness", "listener-close", "hung", "second-signal")


def result(name: str, verdict: Verdict, *checks: tuple[str, bool, str], **figures: Any) -> Result:
    found = Result(name, f"title of {name}", verdict=verdict, figures=dict(figures))
    for check in checks:
        found.check(*check)
    return found


def timeline(title: str) -> Timeline:
    return Timeline(title=title, bucket=0.1, end=1.0, buckets=[], lanes=[], markers=[])


# -- select ------------------------------------------------------------------------------------------------------


def test_the_scenarios_and_their_order() -> None:
    assert NAMES == ALL
    assert tuple(s.name for s in SCENARIOS) == ALL


def test_no_names_select_every_scenario() -> None:
    assert select([]) == ALL
    assert select(()) == ALL


def test_selected_scenarios_run_in_the_canonical_order_once_each() -> None:
    assert select(["hung", "in-flight"]) == ("in-flight", "hung")
    assert select(["second-signal", "readiness", "second-signal"]) == ("readiness", "second-signal")
    assert select(list(reversed(ALL))) == ALL


def test_unknown_scenarios_are_named_with_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="bogus") as caught:
        select(["hung", "inflight", "bogus"])
    assert str(caught.value) == (
        "--scenario: must be one of in-flight, idle-keepalive, busy-keepalive, readiness, listener-close, hung, "
        "second-signal (got inflight, bogus)"
    )


def test_scenario_names_are_case_sensitive() -> None:
    with pytest.raises(ValueError, match=r"\(got HUNG\)$"):
        select(["HUNG"])


# -- inapplicable ------------------------------------------------------------------------------------------------


def test_every_scenario_applies_with_every_path_given() -> None:
    options = Options(command=COMMAND, slow_path="/slow", hang_path="/hang")
    assert inapplicable(options, ALL) == []


def test_inapplicable_explains_what_each_named_scenario_needs_in_scenario_order() -> None:
    options = Options(command=COMMAND, probes=False)
    assert inapplicable(options, ["second-signal", "hung", "readiness", "in-flight", "busy-keepalive"]) == [
        "in-flight needs --slow-path (a request that takes ~1-5 s)",
        "readiness the service has no readiness probe (--no-probes)",
        "hung needs --hang-path (a request that never finishes)",
        "second-signal needs --hang-path or --slow-path",
    ]


def test_inapplicable_looks_only_at_the_named_scenarios() -> None:
    options = Options(command=COMMAND)
    assert inapplicable(options, ["idle-keepalive", "listener-close"]) == []
    assert inapplicable(options, []) == []


@pytest.mark.parametrize(("slow", "hang"), [("/slow", None), (None, "/hang")])
def test_second_signal_needs_either_a_slow_or_a_hang_path(slow: str | None, hang: str | None) -> None:
    assert inapplicable(Options(command=COMMAND, slow_path=slow, hang_path=hang), ["second-signal"]) == []


# -- Options, Result ---------------------------------------------------------------------------------------------


def test_kill_after_is_grace_plus_tolerance() -> None:
    assert Options(command=COMMAND).kill_after == 32.0
    assert Options(command=COMMAND, grace=5.0, tolerance=1.5).kill_after == 6.5
    assert Options(command=COMMAND, grace=1.0, tolerance=0.0).kill_after == 1.0


@pytest.mark.parametrize(
    ("passed", "verdict"), [((), "N/A"), ((True,), "PASS"), ((True, True), "PASS"), ((True, False), "FAIL")]
)
def test_a_result_is_judged_by_its_checks(passed: tuple[bool, ...], verdict: Verdict) -> None:
    found = Result("hung", "t")
    for i, ok in enumerate(passed):
        found.check(f"check {i}", ok, "")
    assert found.judge() is found
    assert found.verdict == verdict


def test_a_verdict_already_given_is_kept() -> None:
    found = result("hung", "FAIL", ("c", True, ""))
    assert found.judge().verdict == "FAIL"


# -- describe_exit -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (None, "no exit code"),
        (0, "exit code 0"),
        (1, "exit code 1"),
        (143, "exit code 143"),
        (-15, "exit code 143 (ended by SIGTERM, not by exiting)"),
        (-9, "exit code 137 (ended by SIGKILL, not by exiting)"),
        (-2, "exit code 130 (ended by SIGINT, not by exiting)"),
        (-200, "exit code 328 (ended by signal 200, not by exiting)"),
    ],
)
def test_describe_exit(code: int | None, text: str) -> None:
    assert describe_exit(code) == text


# -- _figures_line -----------------------------------------------------------------------------------------------


def test_figures_in_seconds_are_shown_in_milliseconds() -> None:
    assert _figures_line({"exit_after_s": 0.1234}) == "exit after 123.4 ms"
    assert _figures_line({"readiness_flip_s": 0.0}) == "readiness flip 0.0 ms"
    assert _figures_line({"exit_after_last_response_s": 1.5}) == "exit after last response 1500.0 ms"


def test_figures_of_other_kinds() -> None:
    figures = {
        "exit_code": 0,
        "in_flight": 8,
        "liveness_ok_while_draining": "12/12",
        "lost_by_kind": {"reset": 2, "eof": 1},
        "hung_request_ended_as": "eof",
    }
    assert _figures_line(figures) == (
        "exit code 0; in flight 8; liveness ok while draining 12/12; lost by kind reset 2, eof 1; "
        "hung request ended as eof"
    )


def test_empty_figures_are_skipped() -> None:
    assert _figures_line({}) == ""
    assert _figures_line({"exit_after_s": None, "exit_code": None, "failures": {}}) == ""
    assert _figures_line({"exit_after_s": None, "lost": 0, "failures": {}}) == "lost 0"  # zero is a figure


# -- Report ------------------------------------------------------------------------------------------------------


def report(*results: Result, options: Options | None = None) -> Report:
    found = Report(options or Options(command=COMMAND), tuple(r.name for r in results), explicit=False)
    found.results.extend(results)
    return found


@pytest.mark.parametrize(
    ("verdicts", "passed"),
    [
        ((), False),  # nothing ran
        (("N/A",), False),
        (("N/A", "N/A"), False),
        (("PASS",), True),
        (("PASS", "N/A"), True),
        (("N/A", "PASS", "PASS"), True),
        (("PASS", "FAIL"), False),
        (("FAIL", "N/A"), False),
        (("PASS", "N/A", "FAIL", "PASS"), False),
    ],
)
def test_report_passed(verdicts: tuple[Verdict, ...], passed: bool) -> None:
    found = report(*(result(name, v) for name, v in zip(ALL, verdicts, strict=False)))
    assert found.passed is passed


def test_report_started_is_an_utc_timestamp_in_seconds() -> None:
    started = report().started
    assert started.endswith("+00:00")
    assert len(started) == len("2024-05-01T12:00:00+00:00")


def sample_report() -> Report:
    options = Options(
        command=COMMAND,
        slow_path="/slow",
        lame_duck=2.0,
        grace=10.0,
        signal=signal.SIGINT,
        env={"SECRET": "hunter2"},
    )
    in_flight = result(
        "in-flight",
        "PASS",
        ("requests were in flight at the signal", True, "0 of 8 answered before the signal"),
        ("every in-flight request completed", True, "8/8 2xx"),
        in_flight=8,
        exit_after_s=0.25,
        failures={},
    )
    in_flight.timeline = timeline("in-flight requests complete")
    busy = result(
        "busy-keepalive",
        "FAIL",
        ("no request lost after being sent", False, "3 lost of 400"),
        ("exited within grace", True, "1.000 s ≤ 10 s"),
        lost=3,
        lost_by_kind={"reset": 3},
    )
    hung = Result("hung", "a hung request ends at the deadline", reason="needs --hang-path (a request that never ...)")
    return report(in_flight, busy, hung, options=options)


def test_to_json() -> None:
    found = json.loads(json.dumps(sample_report().to_json()))  # what --json writes
    assert set(found) == {"tool", "version", "started", "command", "options", "verdict", "scenarios"}
    assert found["tool"] == "lameduck verify"
    assert found["version"] == __version__
    assert found["command"] == list(COMMAND)
    assert found["verdict"] == "FAIL"
    options = found["options"]
    assert options["signal"] == "SIGINT"  # a name, not an enum
    assert "env" not in options  # the environment may hold secrets
    assert options["command"] == list(COMMAND)
    assert options["lame_duck"] == 2.0
    assert set(options) == {f.name for f in dataclasses.fields(Options)} - {"env"}
    assert [s["name"] for s in found["scenarios"]] == ["in-flight", "busy-keepalive", "hung"]
    first, second, third = found["scenarios"]
    assert set(first) == {"name", "title", "verdict", "reason", "checks", "figures", "timeline"}
    assert first["checks"][1] == {"name": "every in-flight request completed", "passed": True, "detail": "8/8 2xx"}
    assert first["figures"] == {"in_flight": 8, "exit_after_s": 0.25, "failures": {}}
    assert first["timeline"]["title"] == "in-flight requests complete"
    assert second["verdict"] == "FAIL"
    assert third["verdict"] == "N/A"
    assert third["reason"].startswith("needs --hang-path")
    assert third["timeline"] is None
    assert "hunter2" not in json.dumps(found)


def test_to_json_keeps_the_options_object_intact() -> None:
    built = sample_report()
    built.to_json()
    assert built.options.signal is signal.SIGINT
    assert built.options.env == {"SECRET": "hunter2"}


def test_to_json_of_a_passing_report() -> None:
    found = report(result("hung", "PASS", ("c", True, "")), result("in-flight", "N/A")).to_json()
    assert found["verdict"] == "PASS"
    assert found["options"]["signal"] == "SIGTERM"


def test_to_view_of_a_failing_report() -> None:
    view = sample_report().to_view()
    assert view["title"] == "lameduck verify"
    assert view["verdict"] == "FAIL"
    assert view["headline"] == "1 of 2 scenarios failed: busy-keepalive"
    summary, detail = view["tables"]
    assert summary["title"] == "scenarios"
    assert summary["columns"] == ["scenario", "verdict", "figures"]
    assert summary["rows"] == [
        ["in-flight", "PASS", "in flight 8; exit after 250.0 ms"],
        ["busy-keepalive", "FAIL", "lost 3; lost by kind reset 3"],
        ["hung", "N/A", "needs --hang-path (a request that never ...)"],  # no figures: the reason
    ]
    assert summary["verdicts"] == ["PASS", "FAIL", "N/A"]
    assert "detail" not in summary
    assert detail["title"] == "checks"
    assert detail["detail"] is True
    assert detail["columns"] == ["scenario", "check", "verdict", "measured"]
    assert detail["rows"] == [
        ["in-flight", "requests were in flight at the signal", "PASS", "0 of 8 answered before the signal"],
        ["in-flight", "every in-flight request completed", "PASS", "8/8 2xx"],
        ["busy-keepalive", "no request lost after being sent", "FAIL", "3 lost of 400"],
        ["busy-keepalive", "exited within grace", "PASS", "1.000 s ≤ 10 s"],
    ]
    assert detail["verdicts"] == ["PASS", "PASS", "FAIL", "PASS"]
    for table in view["tables"]:
        assert len(table["verdicts"]) == len(table["rows"])
        assert [row[table["columns"].index("verdict")] for row in table["rows"]] == table["verdicts"]
    assert [t["title"] for t in view["timelines"]] == ["in-flight requests complete"]


def test_to_view_meta() -> None:
    meta = dict(sample_report().to_view()["meta"])
    assert meta["command"] == "serve app:app --port '{port}'"
    assert meta["signal"] == "SIGINT"
    assert meta["expected grace"] == "10 s"
    assert meta["expected lame-duck window"] == "2 s"
    assert meta["paths"] == "ready /health/ready, load /, slow /slow, hang -"
    assert meta["lameduck"] == __version__
    no_probes = dict(report(options=Options(command=COMMAND, probes=False)).to_view()["meta"])
    assert no_probes["paths"] == "ready (none), load /, slow -, hang -"


def test_to_view_of_a_passing_report() -> None:
    view = report(result("in-flight", "PASS", ("c", True, "ok")), result("hung", "N/A")).to_view()
    assert view["verdict"] == "PASS"
    assert view["headline"] == "all 1 scenarios passed"  # N/A ones are not counted
    assert view["timelines"] == []


def test_a_report_where_nothing_applied_is_not_a_pass() -> None:
    view = report(result("in-flight", "N/A"), result("hung", "N/A")).to_view()
    assert view["verdict"] == "FAIL"
    assert view["tables"][0]["verdicts"] == ["N/A", "N/A"]


def test_several_failures_are_listed_in_the_headline() -> None:
    view = report(result("in-flight", "FAIL"), result("readiness", "PASS"), result("hung", "FAIL")).to_view()
    assert view["headline"] == "2 of 3 scenarios failed: in-flight, hung"
