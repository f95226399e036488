"""What a report shows, as plain data: one shape for ``verify`` and ``rollout``, for rich, JSON and HTML alike.

The commands measure; they then describe what they measured as a :class:`View`. The renderers (terminal, HTML)
only lay it out, so the three outputs cannot disagree, and the HTML page embeds exactly the view's JSON.

Times on a timeline are seconds from the timeline's start (``t = 0`` is when the load began).
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

Verdict = Literal["PASS", "FAIL", "N/A"]

#: Marker kinds a timeline may carry, in the order a replica goes through them.
MARKER_KINDS = ("started", "up", "removed", "prestop", "sigterm", "listener-closed", "second-signal", "kill", "exit")
#: Replica states drawn as lanes; colours are chosen by the renderer.
LANE_STATES = ("starting", "serving", "removed", "terminating", "exited", "killed")


class Bucket(TypedDict):
    """One slice of the timeline (``Timeline.bucket`` seconds wide) starting at ``t``."""

    t: float
    ok: int  # requests that completed with a 2xx/3xx answer in this slice
    failures: dict[str, int]  # failure kind (e.g. "reset", "eof", "http 502") -> count in this slice


class Span(TypedDict):
    state: str  # one of LANE_STATES
    start: float
    end: float


class Lane(TypedDict):
    name: str  # e.g. "r1" or "service"
    spans: list[Span]


class Marker(TypedDict):
    t: float
    kind: str  # one of MARKER_KINDS
    lane: str  # the lane it belongs to
    label: str  # what a person reads on hover, e.g. "SIGTERM r1"


class Timeline(TypedDict):
    title: str
    bucket: float  # seconds per bucket (1.0 for rollout, 0.1 for a verify scenario)
    end: float  # seconds covered
    buckets: list[Bucket]
    lanes: list[Lane]
    markers: list[Marker]


class Table(TypedDict):
    title: str
    columns: list[str]
    rows: list[list[str]]
    verdicts: NotRequired[list[Verdict]]  # per row, when the table's rows pass or fail
    detail: NotRequired[bool]  # a long table for the HTML page and JSON; the terminal already printed it


class View(TypedDict):
    title: str  # e.g. "lameduck rollout"
    verdict: Verdict
    headline: str  # one sentence: what was proved or what failed
    meta: list[tuple[str, str]]  # command, options, seed, date...
    tables: list[Table]
    timelines: list[Timeline]
