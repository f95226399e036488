"""The rollout report, built from synthetic replicas, samples and ``perf_counter``-like times: lanes, causes,
markers, JSON and the view. Nothing is started: a ``Target`` with a fixed port is only data here.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Sequence
from typing import Any

import pytest

from lameduck._version import __version__
from lameduck.verify.client import Failure
from lameduck.verify.rollout import ATTRIBUTION_WINDOW, LABELS, Replica, RolloutOptions, RolloutReport
from lameduck.verify.samples import Sample
from lameduck.verify.target import Target
from lameduck.verify.view import LANE_STATES, MARKER_KINDS

ORIGIN = 500.0
COMMAND = ("serve", "app:app", "--port", "{port}")


def replica(name: str, port: int = 8000, exit_code: int | None = None, **events: float) -> Replica:
    """A replica with events given as seconds from ORIGIN (``listener_closed`` for ``listener-closed``)."""
    target = Target(COMMAND, port=port)
    target.exit_code = exit_code
    return Replica(name, target, {k.replace("_", "-"): ORIGIN + v for k, v in events.items()})


def ok(t: float, label: str = "fast") -> Sample:
    return Sample(label, began=ORIGIN + t - 0.01, done=ORIGIN + t, status=200)


def bad(t: float, failure: Failure | None = None, status: int = 0, label: str = "fast") -> Sample:
    return Sample(label, began=ORIGIN + t - 0.01, done=ORIGIN + t, status=status, failure=failure)


def report(
    replicas: Sequence[Replica] = (),
    samples: Sequence[Sample] = (),
    errors: Sequence[str] = (),
    *,
    ended: float = 20.0,
    options: RolloutOptions | None = None,
) -> RolloutReport:
    return RolloutReport(
        options=options or RolloutOptions(command=COMMAND, replicas=2, seed=5, slow_path="/slow", post_path="/orders"),
        started="2024-05-01T12:00:00+00:00",
        origin=ORIGIN,
        ended=ORIGIN + ended,
        samples=list(samples),
        replicas=list(replicas),
        errors=list(errors),
    )


def states(spans: list[Any]) -> list[tuple[str, float, float]]:
    return [(s["state"], s["start"], s["end"]) for s in spans]


def spans_of(r: Replica, end: float = 20.0) -> list[tuple[str, float, float]]:
    return states(report([r], ended=end)._spans(r, end))


# -- RolloutOptions ----------------------------------------------------------------------------------------------


def test_only_the_fast_kind_runs_without_slow_and_post_paths() -> None:
    options = RolloutOptions(command=COMMAND)
    assert [(k.name, k.method, k.path, k.weight) for k in options.kinds] == [("fast", "GET", "/", 80.0)]


def test_kinds_come_in_fast_slow_post_order_with_their_weights_and_paths() -> None:
    options = RolloutOptions(command=COMMAND, path="/a", slow_path="/slow", post_path="/orders", mix=(1, 2, 3))
    assert [(k.name, k.label, k.weight) for k in options.kinds] == [
        ("fast", "GET /a", 1),
        ("slow", "GET /slow", 2),
        ("post", "POST /orders", 3),
    ]


@pytest.mark.parametrize(
    ("mix", "slow", "post", "expected"),
    [
        ((80, 15, 5), None, "/p", ["fast", "post"]),
        ((80, 15, 5), "/s", None, ["fast", "slow"]),
        ((0, 15, 5), "/s", "/p", ["slow", "post"]),
        ((80, 0, 5), "/s", "/p", ["fast", "post"]),
        ((80, 15, 0), "/s", "/p", ["fast", "slow"]),
        ((0, 0, 5), "/s", "/p", ["post"]),
        ((0, 15, 5), None, None, []),  # nothing left: see the report (Load refuses an empty mix)
    ],
)
def test_kinds_without_a_path_or_with_weight_zero_are_left_out(
    mix: tuple[float, float, float], slow: str | None, post: str | None, expected: list[str]
) -> None:
    options = RolloutOptions(command=COMMAND, mix=mix, slow_path=slow, post_path=post)
    assert [k.name for k in options.kinds] == expected


def test_an_empty_path_counts_as_no_path() -> None:
    options = RolloutOptions(command=COMMAND, slow_path="", post_path="")
    assert [k.name for k in options.kinds] == ["fast"]


@pytest.mark.parametrize(("lb", "retries"), [("tcp", 0), ("http", 3)])
def test_only_the_ingress_model_retries(lb: Any, retries: int) -> None:
    assert RolloutOptions(command=COMMAND, lb=lb).retries == retries


@pytest.mark.parametrize(
    ("prestop", "text"), [(None, "none"), (0.0, "sleep:0"), (5.0, "sleep:5"), (0.5, "sleep:0.5"), (600.0, "sleep:600")]
)
def test_prestop_text(prestop: float | None, text: str) -> None:
    assert RolloutOptions(command=COMMAND, prestop=prestop).prestop_text == text


def test_a_replica_port_is_its_targets() -> None:
    assert replica("r1", port=1234).port == 1234


# -- lanes -------------------------------------------------------------------------------------------------------


def test_a_replica_goes_starting_serving_removed_terminating_exited() -> None:
    r = replica("r1", exit_code=0, started=0.0, up=1.0, removed=4.0, sigterm=5.0, listener_closed=5.5, exit=7.0)
    assert spans_of(r) == [
        ("starting", 0.0, 1.0),
        ("serving", 1.0, 4.0),
        ("removed", 4.0, 5.0),
        ("terminating", 5.0, 7.0),
        ("exited", 7.0, 20.0),
    ]


def test_removal_after_sigterm_is_shown_as_terminating() -> None:
    r = replica("r1", exit_code=0, started=0.0, up=1.0, sigterm=5.0, removed=6.0, exit=7.0)
    assert spans_of(r) == [
        ("starting", 0.0, 1.0),
        ("serving", 1.0, 5.0),
        ("terminating", 5.0, 7.0),  # removal while terminating does not split the stretch
        ("exited", 7.0, 20.0),
    ]


def test_removal_after_exit_is_not_a_state() -> None:
    r = replica("r1", exit_code=0, started=0.0, up=1.0, sigterm=2.0, exit=3.0, removed=4.0)
    assert spans_of(r) == [
        ("starting", 0.0, 1.0),
        ("serving", 1.0, 2.0),
        ("terminating", 2.0, 3.0),
        ("exited", 3.0, 20.0),
    ]


def test_prestop_is_a_marker_not_a_state() -> None:
    r = replica("r1", exit_code=0, started=0.0, up=1.0, prestop=4.0, removed=4.5, sigterm=9.0, exit=10.0)
    assert [s for s, _, _ in spans_of(r)] == ["starting", "serving", "removed", "terminating", "exited"]
    assert spans_of(r)[2] == ("removed", 4.5, 9.0)


def test_a_killed_replica_ends_killed_not_exited() -> None:
    r = replica("r1", exit_code=-9, started=0.0, up=1.0, removed=3.0, sigterm=2.0, kill=12.0, exit=12.01)
    assert spans_of(r)[-2:] == [("terminating", 2.0, 12.01), ("killed", 12.01, 20.0)]


def test_a_replacement_that_never_came_up_is_starting_until_the_end() -> None:
    assert spans_of(replica("r3", started=6.0)) == [("starting", 6.0, 20.0)]


def test_a_replica_without_events_has_no_spans() -> None:
    assert spans_of(replica("r3")) == []


def test_an_event_after_the_end_gives_an_empty_span_never_a_negative_one() -> None:
    r = replica("r1", exit_code=0, started=0.0, up=1.0, sigterm=5.0, exit=25.0)
    assert spans_of(r, end=20.0)[-1] == ("exited", 25.0, 25.0)


def test_spans_are_never_negative_and_follow_each_other_whatever_the_event_order() -> None:
    rng = random.Random(2024)
    kinds = ["started", "up", "removed", "prestop", "sigterm", "listener-closed", "kill", "exit"]
    for _ in range(500):
        events = {k: ORIGIN + round(rng.uniform(0, 30), 3) for k in kinds if rng.random() < 0.7}
        found = spans_of(Replica("r", Target(COMMAND, port=8000), events), end=20.0)
        for state, start, end in found:
            assert state in LANE_STATES
            assert end >= start, (events, found)
        for before, after in itertools.pairwise(found):
            assert after[1] == before[2], (events, found)  # no gap, no overlap
        assert len(found) <= 5


# -- markers -----------------------------------------------------------------------------------------------------


def test_markers_are_sorted_by_time_across_replicas_and_labelled() -> None:
    r1 = replica("r1", exit_code=0, started=0.0, up=1.0, sigterm=5.0, exit=7.0, removed=6.0)
    r2 = replica("r2", started=5.0, up=6.5)
    markers = report([r1, r2]).markers()
    assert [m["t"] for m in markers] == sorted(m["t"] for m in markers)
    assert [(m["t"], m["kind"], m["lane"], m["label"]) for m in markers] == [
        (0.0, "started", "r1", "started r1"),
        (1.0, "up", "r1", "UP in HAProxy r1"),
        (5.0, "sigterm", "r1", "SIGTERM r1"),
        (5.0, "started", "r2", "started r2"),
        (6.0, "removed", "r1", "endpoint removed r1"),
        (6.5, "up", "r2", "UP in HAProxy r2"),
        (7.0, "exit", "r1", "exit r1"),
    ]


def test_marker_times_are_relative_and_rounded() -> None:
    r = replica("r1", started=1.234567)
    (marker,) = report([r]).markers()
    assert marker["t"] == 1.2346


def test_every_label_names_a_known_marker_kind_and_an_unknown_kind_is_its_own_label() -> None:
    assert set(LABELS) <= set(MARKER_KINDS)
    (marker,) = report([replica("r1", second_signal=3.0)]).markers()
    assert marker["label"] == "second-signal r1"


def test_no_replicas_no_markers() -> None:
    assert report().markers() == []


# -- causes ------------------------------------------------------------------------------------------------------


def terminating_r1() -> Replica:
    return replica("r1", exit_code=0, started=0.0, up=1.0, removed=4.0, sigterm=5.0, listener_closed=5.5, exit=7.0)


def test_a_failure_is_attributed_to_the_last_termination_event_before_it() -> None:
    causes = report([terminating_r1()], [ok(4.9), bad(5.2, Failure.RESET), bad(5.4, Failure.RESET)]).causes()
    assert causes == [
        {"kind": "reset", "after": "SIGTERM", "count": 2, "replicas": ["r1"], "from_s": 0.2, "to_s": 0.4},
    ]


def test_a_failure_is_never_attributed_to_a_replica_starting_or_coming_up() -> None:
    r2 = replica("r2", started=5.6, up=5.8)
    causes = report([terminating_r1(), r2], [bad(6.0, Failure.REFUSED)]).causes()
    assert causes == [
        {"kind": "connect", "after": "listener closed", "count": 1, "replicas": ["r1"], "from_s": 0.5, "to_s": 0.5}
    ]


def test_the_last_event_on_any_replica_wins() -> None:
    r2 = replica("r2", exit_code=0, started=0.0, up=1.0, removed=6.0)
    causes = report([terminating_r1(), r2], [bad(6.25, None, status=502)]).causes()
    assert causes == [
        {"kind": "http 502", "after": "endpoint removed", "count": 1, "replicas": ["r2"], "from_s": 0.25, "to_s": 0.25}
    ]


def test_the_attribution_window_includes_its_edge_and_nothing_beyond() -> None:
    assert ATTRIBUTION_WINDOW == 5.0
    at_edge = report([terminating_r1()], [bad(12.0, Failure.EOF)]).causes()
    assert at_edge[0]["after"] == "exit"
    assert at_edge[0]["to_s"] == 5.0
    beyond = report([terminating_r1()], [bad(12.0 + 2**-10, Failure.EOF)]).causes()
    assert beyond == [
        {"kind": "eof", "after": "no termination event", "count": 1, "replicas": [], "from_s": 0.0, "to_s": 0.0}
    ]


def test_a_failure_before_any_termination_has_no_termination_event() -> None:
    causes = report([terminating_r1()], [bad(2.0, Failure.TIMEOUT)]).causes()
    assert causes == [
        {"kind": "timeout", "after": "no termination event", "count": 1, "replicas": [], "from_s": 0.0, "to_s": 0.0}
    ]


def test_causes_group_by_coarse_kind_and_event_most_frequent_first() -> None:
    r2 = replica("r2", exit_code=-9, started=0.0, up=1.0, removed=10.0, sigterm=10.5, kill=15.0, exit=15.1)
    samples = [
        bad(5.1, Failure.RESET),  # r1 SIGTERM
        bad(5.6, Failure.REFUSED),  # r1 listener closed
        bad(5.7, Failure.CONNECT_RESET),  # r1 listener closed
        bad(5.8, Failure.CONNECT_TIMEOUT),  # r1 listener closed
        bad(10.2, Failure.RESET),  # r2 endpoint removed
        bad(15.05, Failure.RESET),  # r2 SIGKILL
        bad(15.3, Failure.EOF),  # r2 exit
        bad(15.4, Failure.EOF),  # r2 exit
        ok(5.65),
        ok(10.3),
    ]
    causes = report([terminating_r1(), r2], samples).causes()
    assert [(c["kind"], c["after"], c["count"], c["replicas"]) for c in causes] == [
        ("connect", "listener closed", 3, ["r1"]),
        ("eof", "exit", 2, ["r2"]),
        ("reset", "SIGTERM", 1, ["r1"]),
        ("reset", "endpoint removed", 1, ["r2"]),
        ("reset", "SIGKILL", 1, ["r2"]),
    ]
    assert causes[0]["from_s"] == 0.1
    assert causes[0]["to_s"] == 0.3
    assert sum(c["count"] for c in causes) == 8  # every failure once, no success


def test_one_cause_lists_every_replica_it_happened_on_sorted() -> None:
    r2 = replica("r2", exit_code=0, started=0.0, up=1.0, sigterm=10.0, exit=11.0)
    samples = [bad(10.5, Failure.RESET), bad(5.2, Failure.RESET)]
    (cause,) = report([r2, terminating_r1()], samples).causes()
    assert cause["replicas"] == ["r1", "r2"]
    assert cause["count"] == 2
    assert cause["after"] == "SIGTERM"


def test_no_failures_no_causes() -> None:
    assert report([terminating_r1()], [ok(1.0), ok(6.0)]).causes() == []


# -- JSON --------------------------------------------------------------------------------------------------------


def mixed_report(errors: Sequence[str] = ()) -> RolloutReport:
    r1 = terminating_r1()
    r2 = replica("r2", port=8001, exit_code=-9, started=0.0, up=1.0, removed=10.0, sigterm=10.5, kill=15.0, exit=15.1)
    r3 = replica("r3", port=8002, exit_code=0, started=5.0, up=6.0)  # exit code set, but it never exited here
    samples = [ok(0.5 + i * 0.1, label=("fast", "slow", "post")[i % 3]) for i in range(30)]
    samples += [
        bad(5.2, Failure.RESET, label="slow"),
        bad(5.6, Failure.REFUSED),
        bad(10.2, None, status=502, label="post"),
        bad(15.3, Failure.EOF, label="slow"),
    ]
    return report([r1, r2, r3], samples, errors, ended=18.5)


def test_to_json_keys_and_counts() -> None:
    found = mixed_report().to_json()
    assert set(found) == {
        "tool",
        "version",
        "started",
        "command",
        "options",
        "verdict",
        "duration_s",
        "requests",
        "ok",
        "failed",
        "failed_by_kind",
        "failed_by_request",
        "by_request",
        "causes",
        "errors",
        "lb_connect_errors",
        "replicas",
        "timeline",
    }
    assert found["tool"] == "lameduck rollout"
    assert found["version"] == __version__
    assert found["command"] == list(COMMAND)
    assert found["verdict"] == "FAIL"
    assert found["duration_s"] == 18.5
    assert found["requests"] == 34
    assert found["ok"] == 30
    assert found["failed"] == 4
    assert found["failed"] == sum(found["failed_by_kind"].values())
    assert found["ok"] + found["failed"] == found["requests"]
    assert found["failed_by_kind"] == {"reset": 1, "connect": 1, "http 502": 1, "eof": 1}
    assert found["failed_by_request"] == {"slow": 2, "fast": 1, "post": 1}
    assert found["by_request"] == {"fast": 11, "slow": 12, "post": 11}
    assert sum(c["count"] for c in found["causes"]) == found["failed"]
    assert found["errors"] == []
    json.dumps(found)  # plain data all the way down


def test_to_json_options() -> None:
    options = RolloutOptions(
        command=COMMAND, replicas=2, lb="http", propagation=(0.25, 1.5), prestop=3.0, grace=20.0, seed=9, rate=150.0,
        connections=12, mix=(70.0, 30.0, 0.0), slow_path="/slow", post_path="/orders",
    )  # fmt: skip
    found = report(options=options).to_json()["options"]
    assert found == {
        "replicas": 2,
        "lb": "http",
        "propagation": [0.25, 1.5],
        "prestop": "sleep:3",
        "grace": 20.0,
        "seed": 9,
        "rate": 150.0,
        "connections": 12,
        "mix": {"fast": {"request": "GET /", "weight": 70.0}, "slow": {"request": "GET /slow", "weight": 30.0}},
        "retries": 3,
    }


def test_to_json_replicas() -> None:
    r1, r2, r3 = mixed_report().to_json()["replicas"]
    assert r1 == {
        "name": "r1",
        "port": 8000,
        "exit_code": 0,
        "killed": False,
        "events": {"started": 0.0, "up": 1.0, "removed": 4.0, "sigterm": 5.0, "listener-closed": 5.5, "exit": 7.0},
    }
    assert list(r1["events"]) == ["started", "up", "removed", "sigterm", "listener-closed", "exit"]  # by time
    assert r2["exit_code"] == -9
    assert r2["killed"] is True
    assert r3["exit_code"] is None  # never exited during the rollout
    assert r3["killed"] is False
    assert r3["events"] == {"started": 5.0, "up": 6.0}


def test_to_json_timeline() -> None:
    timeline = mixed_report().to_json()["timeline"]
    assert timeline["title"] == "rollout of 2 replicas, --lb tcp, --prestop none, seed 5"
    assert timeline["bucket"] == 1.0
    assert timeline["end"] == 18.5
    assert len(timeline["buckets"]) == 19
    assert [lane["name"] for lane in timeline["lanes"]] == ["r1", "r2", "r3"]
    assert sum(b["ok"] + sum(b["failures"].values()) for b in timeline["buckets"]) == 34
    assert timeline["buckets"][5]["failures"] == {"connect": 1, "reset": 1}  # coarse kinds
    assert timeline["buckets"][10]["failures"] == {"http 502": 1}


def test_a_short_run_still_has_a_one_second_timeline() -> None:
    timeline = report([], [ok(0.1)], ended=0.2).timeline()
    assert timeline["end"] == 1.0
    assert len(timeline["buckets"]) == 1


def test_a_clean_run_is_pass_in_json() -> None:
    found = report([terminating_r1()], [ok(1.0), ok(2.0)]).to_json()
    assert found["verdict"] == "PASS"
    assert found["failed"] == 0
    assert found["failed_by_kind"] == {}
    assert found["failed_by_request"] == {}
    assert found["causes"] == []


# -- passed and the view -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "errors", "passed"),
    [
        ([ok(1.0)], [], True),
        ([ok(1.0), ok(1.5, label="post")], [], True),
        ([], [], False),  # nothing was measured
        ([ok(1.0)], ["r3 did not become UP"], False),
        ([ok(1.0), bad(2.0, Failure.RESET)], [], False),
        ([ok(1.0), bad(2.0, None, status=404)], [], False),
        ([ok(1.0), bad(2.0, None, status=301)], [], True),  # a redirect is served
    ],
)
def test_passed(samples: list[Sample], errors: list[str], passed: bool) -> None:
    assert report([], samples, errors).passed is passed


def table(view: Any, title: str) -> Any:
    (found,) = [t for t in view["tables"] if t["title"] == title]
    return found


def test_a_clean_run_view() -> None:
    samples = [ok(1.0 + i * 0.001, label=("fast", "slow")[i % 2]) for i in range(1234)]
    view = report([terminating_r1()], samples).to_view()
    assert view["title"] == "lameduck rollout"
    assert view["verdict"] == "PASS"
    assert view["headline"] == "0 failed requests out of 1,234 through 2 replacements"
    assert [t["title"] for t in view["tables"]] == ["requests", "replicas"]
    assert table(view, "requests")["rows"] == [
        ["GET /", "617", "617", "0", "-"],
        ["GET /slow", "617", "617", "0", "-"],
        ["POST /orders", "0", "0", "0", "-"],
        ["all", "1,234", "1,234", "0", "-"],
    ]
    assert len(view["timelines"]) == 1


def test_a_failed_run_view() -> None:
    view = mixed_report().to_view()
    assert view["verdict"] == "FAIL"
    assert view["headline"] == "4 of 34 requests failed (reset 1, connect 1, http 502 1, eof 1)"
    assert [t["title"] for t in view["tables"]] == ["requests", "replicas", "where the failures happened"]
    requests = table(view, "requests")
    assert requests["columns"] == ["request", "sent", "ok", "failed", "failures by kind"]
    assert requests["rows"] == [
        ["GET /", "11", "10", "1", "connect 1"],
        ["GET /slow", "12", "10", "2", "reset 1, eof 1"],
        ["POST /orders", "11", "10", "1", "http 502 1"],
        ["all", "34", "30", "4", "reset 1, connect 1, http 502 1, eof 1"],
    ]
    replicas = table(view, "replicas")
    assert replicas["columns"] == [
        "replica",
        "port",
        "up",
        "removed",
        "SIGTERM",
        "listener closed",
        "exit",
        "exit code",
    ]
    assert replicas["rows"] == [
        ["r1", "8000", "1.00 s", "4.00 s", "5.00 s", "5.50 s", "7.00 s", "0"],
        ["r2", "8001", "1.00 s", "10.00 s", "10.50 s", "", "15.10 s (SIGKILL)", "-9"],
        ["r3", "8002", "6.00 s", "", "", "", "", ""],
    ]
    causes = table(view, "where the failures happened")
    assert causes["columns"] == ["failure", "count", "after", "replicas", "delay"]
    assert ["reset", "1", "SIGTERM", "r1", "+0.200 … +0.200 s"] in causes["rows"]
    assert ["eof", "1", "exit", "r2", "+0.200 … +0.200 s"] in causes["rows"]
    assert len(causes["rows"]) == 4


def test_errors_join_the_headline() -> None:
    view = mixed_report(errors=["r4 did not become UP within 30 s"]).to_view()
    assert view["verdict"] == "FAIL"
    assert view["headline"] == (
        "4 of 34 requests failed (reset 1, connect 1, http 502 1, eof 1); r4 did not become UP within 30 s"
    )


def test_an_error_without_failures_is_the_headline() -> None:
    view = report([terminating_r1()], [ok(1.0)], ["haproxy: no such backend", "r2 did not start"]).to_view()
    assert view["verdict"] == "FAIL"
    assert view["headline"] == "haproxy: no such backend; r2 did not start"
    assert [t["title"] for t in view["tables"]] == ["requests", "replicas"]


def test_nothing_sent_is_a_failure_that_says_so() -> None:
    view = report().to_view()
    assert view["verdict"] == "FAIL"
    assert view["headline"] == "no requests were sent"


@pytest.mark.parametrize(("lb", "model", "retries"), [("tcp", "kube-proxy", 0), ("http", "ingress", 3)])
def test_view_meta(lb: Any, model: str, retries: int) -> None:
    options = RolloutOptions(command=COMMAND, lb=lb, prestop=2.5, propagation=(0.5, 2.0), rate=300.0, connections=32)
    meta = dict(report(options=options).to_view()["meta"])
    assert meta["command"] == "serve app:app --port '{port}'"
    assert meta["load balancer"] == f"HAProxy, --lb {lb} ({model} model), retries {retries}"
    assert meta["propagation"] == "0.5..2 s"
    assert meta["preStop"] == "sleep:2.5"
    assert meta["grace"] == "30 s"
    assert meta["load"] == "300 req/s on 32 connections: GET / weight 80"
    assert meta["seed"] == "1"
    assert meta["lameduck"] == __version__
    assert meta["started"] == "2024-05-01T12:00:00+00:00"
