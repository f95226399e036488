"""Samples classify every way a request can end, and buckets count them by when they ended.

Pure data: no sockets, no clock. Times are made-up ``perf_counter``-like floats.
"""

from __future__ import annotations

import pytest

from lameduck.verify.client import Failure
from lameduck.verify.samples import Sample, buckets, by_kind

ORIGIN = 1000.0


def answered(status: int, done: float = ORIGIN, label: str = "GET /") -> Sample:
    return Sample(label, began=done - 0.01, done=done, status=status)


def failed(failure: Failure, done: float = ORIGIN, label: str = "GET /") -> Sample:
    return Sample(label, began=done - 0.01, done=done, failure=failure)


# -- one sample ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "kind", "lb_kind", "lost"),
    [
        (Failure.REFUSED, "refused", "connect", False),
        (Failure.CONNECT_RESET, "connect-reset", "connect", False),
        (Failure.CONNECT_TIMEOUT, "connect-timeout", "connect", False),
        (Failure.RESET, "reset", "reset", True),
        (Failure.EOF, "eof", "eof", True),
        (Failure.TIMEOUT, "timeout", "timeout", True),
        (Failure.PROTOCOL, "protocol", "protocol", True),
    ],
)
def test_a_failure_is_its_kind_never_ok_and_lost_only_after_sending(
    failure: Failure, kind: str, lb_kind: str, lost: bool
) -> None:
    sample = failed(failure)
    assert sample.kind == kind
    assert sample.lb_kind == lb_kind
    assert sample.lost is lost
    assert sample.ok is False
    assert sample.answered is False


def test_every_failure_is_covered_by_the_table_above() -> None:
    assert {f.value for f in Failure} == {
        "refused",
        "connect-reset",
        "connect-timeout",
        "reset",
        "eof",
        "timeout",
        "protocol",
    }


@pytest.mark.parametrize(
    ("status", "kind", "ok"),
    [
        (200, "ok", True),
        (204, "ok", True),
        (301, "ok", True),
        (399, "ok", True),
        (199, "http 199", False),
        (400, "http 400", False),
        (404, "http 404", False),
        (502, "http 502", False),
        (503, "http 503", False),
    ],
)
def test_an_answer_is_ok_for_2xx_and_3xx_and_otherwise_its_status(status: int, kind: str, ok: bool) -> None:
    sample = answered(status)
    assert sample.kind == kind
    assert sample.lb_kind == kind  # the coarse kinds only merge connect failures
    assert sample.ok is ok
    assert sample.answered is True
    assert sample.lost is False  # an error status is an answer, not a lost request


def test_a_sample_is_frozen() -> None:
    sample = answered(200)
    with pytest.raises(AttributeError):
        sample.status = 500  # type: ignore[misc]


# -- buckets ---------------------------------------------------------------------------------------------------


def test_no_samples_give_empty_buckets_covering_the_span() -> None:
    found = buckets([], ORIGIN, 0.5, 2.0)
    assert found == [
        {"t": 0.0, "ok": 0, "failures": {}},
        {"t": 0.5, "ok": 0, "failures": {}},
        {"t": 1.0, "ok": 0, "failures": {}},
        {"t": 1.5, "ok": 0, "failures": {}},
    ]


@pytest.mark.parametrize(
    ("end", "width", "count"),
    [
        (0.0, 1.0, 1),  # at least one bucket
        (0.2, 1.0, 1),
        (1.0, 1.0, 1),
        (1.5, 1.0, 2),  # a partial last slice gets its own bucket
        (3.0, 1.0, 3),
        (1.0, 0.1, 10),  # 1.0 / 0.1 is not exactly 10 in floats; still 10 buckets
        (0.3, 0.1, 3),
        (2.5, 0.25, 10),
    ],
)
def test_bucket_count_is_the_span_rounded_up(end: float, width: float, count: int) -> None:
    found = buckets([], ORIGIN, width, end)
    assert len(found) == count
    assert [b["t"] for b in found] == [round(i * width, 3) for i in range(count)]


def test_bucket_start_times_are_rounded_to_milliseconds() -> None:
    found = buckets([], ORIGIN, 0.1, 1.0)
    assert [b["t"] for b in found] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def test_a_sample_on_a_bucket_edge_belongs_to_the_bucket_it_starts() -> None:
    # Widths and offsets that are exact in binary floating point, so the edge is exactly the edge.
    samples = [
        answered(200, ORIGIN + 0.0),
        answered(200, ORIGIN + 0.25),  # first instant of bucket 1
        answered(200, ORIGIN + 0.5 - 2**-20),  # last moment of bucket 1
        answered(200, ORIGIN + 0.5),  # first instant of bucket 2
        answered(200, ORIGIN + 0.75),  # first instant of the last bucket
    ]
    found = buckets(samples, ORIGIN, 0.25, 1.0)
    assert [b["ok"] for b in found] == [1, 2, 1, 1]


def test_samples_are_placed_by_when_they_ended_not_when_they_began() -> None:
    sample = Sample("GET /slow", began=ORIGIN + 0.1, done=ORIGIN + 2.2, status=200)
    found = buckets([sample], ORIGIN, 1.0, 3.0)
    assert [b["ok"] for b in found] == [0, 0, 1]


def test_samples_at_or_after_the_end_are_clamped_into_the_last_bucket() -> None:
    samples = [answered(200, ORIGIN + 2.0), answered(200, ORIGIN + 2.5), failed(Failure.RESET, ORIGIN + 99.0)]
    found = buckets(samples, ORIGIN, 1.0, 2.0)
    assert len(found) == 2
    assert found[0] == {"t": 0.0, "ok": 0, "failures": {}}
    assert found[1] == {"t": 1.0, "ok": 2, "failures": {"reset": 1}}


def test_samples_before_the_origin_are_clamped_into_the_first_bucket() -> None:
    samples = [answered(200, ORIGIN - 0.5), failed(Failure.EOF, ORIGIN - 5.0), answered(200, ORIGIN - 1.5)]
    found = buckets(samples, ORIGIN, 1.0, 2.0)
    assert found[0] == {"t": 0.0, "ok": 2, "failures": {"eof": 1}}
    assert found[1] == {"t": 1.0, "ok": 0, "failures": {}}


def test_fine_kinds_keep_connect_failures_apart_and_coarse_kinds_merge_them() -> None:
    samples = [
        failed(Failure.REFUSED, ORIGIN + 0.1),
        failed(Failure.CONNECT_RESET, ORIGIN + 0.2),
        failed(Failure.CONNECT_TIMEOUT, ORIGIN + 0.3),
        failed(Failure.RESET, ORIGIN + 0.4),
        answered(502, ORIGIN + 0.5),
        answered(404, ORIGIN + 0.6),
        answered(200, ORIGIN + 0.7),
        answered(301, ORIGIN + 0.8),
    ]
    fine = buckets(samples, ORIGIN, 1.0, 1.0)
    coarse = buckets(samples, ORIGIN, 1.0, 1.0, coarse=True)
    assert fine == [
        {
            "t": 0.0,
            "ok": 2,
            "failures": {
                "connect-reset": 1,
                "connect-timeout": 1,
                "http 404": 1,
                "http 502": 1,
                "refused": 1,
                "reset": 1,
            },
        }
    ]
    assert coarse == [{"t": 0.0, "ok": 2, "failures": {"connect": 3, "http 404": 1, "http 502": 1, "reset": 1}}]


def test_failure_kinds_in_a_bucket_are_sorted_by_name() -> None:
    samples = [failed(Failure.TIMEOUT), failed(Failure.EOF), answered(503), failed(Failure.RESET)]
    (bucket,) = buckets(samples, ORIGIN, 1.0, 1.0)
    assert list(bucket["failures"]) == ["eof", "http 503", "reset", "timeout"]


def test_every_sample_is_counted_exactly_once() -> None:
    samples = [answered(200 if i % 3 else 502, ORIGIN + i * 0.037) for i in range(200)]
    samples += [failed(Failure.RESET, ORIGIN + i * 0.05 - 1.0) for i in range(100)]
    found = buckets(samples, ORIGIN, 0.1, 5.0)
    total = sum(b["ok"] + sum(b["failures"].values()) for b in found)
    assert total == len(samples)


def test_buckets_accept_any_iterable_once() -> None:
    found = buckets((answered(200, ORIGIN + 0.5) for _ in range(3)), ORIGIN, 1.0, 1.0)
    assert found[0]["ok"] == 3


# -- by_kind ---------------------------------------------------------------------------------------------------


def test_by_kind_is_empty_without_failures() -> None:
    assert by_kind([]) == {}
    assert by_kind([answered(200), answered(302)]) == {}


def test_by_kind_leaves_successes_out_and_orders_most_frequent_first() -> None:
    samples = [
        answered(200),
        failed(Failure.EOF),
        answered(502),
        answered(502),
        failed(Failure.RESET),
        failed(Failure.RESET),
        failed(Failure.RESET),
        answered(200),
    ]
    found = by_kind(samples)
    assert found == {"reset": 3, "http 502": 2, "eof": 1}
    assert list(found) == ["reset", "http 502", "eof"]


def test_by_kind_breaks_ties_by_first_appearance() -> None:
    samples = [failed(Failure.TIMEOUT), answered(503), failed(Failure.EOF), failed(Failure.EOF), answered(503)]
    found = by_kind(samples)
    assert found == {"http 503": 2, "eof": 2, "timeout": 1}
    assert list(found) == ["http 503", "eof", "timeout"]  # 503 was seen before eof


def test_by_kind_coarse_merges_connect_failures() -> None:
    samples = [
        failed(Failure.REFUSED),
        failed(Failure.CONNECT_RESET),
        failed(Failure.RESET),
        failed(Failure.CONNECT_TIMEOUT),
        failed(Failure.RESET),
    ]
    assert by_kind(samples) == {"reset": 2, "refused": 1, "connect-reset": 1, "connect-timeout": 1}
    assert list(by_kind(samples, coarse=True).items()) == [("connect", 3), ("reset", 2)]
