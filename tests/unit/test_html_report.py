"""The HTML report is one self-contained page whose embedded JSON is the view, and no string in it can escape.

Pure string tests; tests/integration/test_html_chromium.py checks what a browser draws from the same view.
"""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from lameduck.verify.html import render
from lameduck.verify.view import Bucket, Lane, Marker, Timeline, Verdict, View

HOSTILE = "</script><script>alert(1)</script><!--"


def sample_view() -> View:
    """A rolling deploy of two replicas over 30 one-second buckets, with resets and 502s while r1 drains."""
    buckets: list[Bucket] = []
    for t in range(30):
        failures: dict[str, int] = {}
        if t in (11, 12, 13):
            failures["reset"] = 3 + t - 11
        if t in (12, 14):
            failures["http 502"] = 2
        if t == 20:
            failures["reset"] = 0  # a zero count is not a failure and draws no bar
        ok = 480 if 11 <= t <= 14 else 500
        buckets.append({"t": float(t), "ok": ok, "failures": failures})
    lanes: list[Lane] = [
        {
            "name": "r1",
            "spans": [
                {"state": "serving", "start": 0.0, "end": 10.0},
                {"state": "removed", "start": 10.0, "end": 11.0},
                {"state": "terminating", "start": 11.0, "end": 14.5},
                {"state": "killed", "start": 14.5, "end": 30.0},
            ],
        },
        {
            "name": "r2",
            "spans": [
                {"state": "starting", "start": 8.0, "end": 9.5},
                {"state": "serving", "start": 9.5, "end": 30.0},
            ],
        },
    ]
    markers: list[Marker] = [
        {"t": 8.0, "kind": "started", "lane": "r2", "label": "r2 started"},
        {"t": 9.5, "kind": "up", "lane": "r2", "label": "r2 ready"},
        {"t": 10.0, "kind": "removed", "lane": "r1", "label": "r1 removed from endpoints"},
        {"t": 10.0, "kind": "prestop", "lane": "r1", "label": "preStop r1"},
        {"t": 11.0, "kind": "sigterm", "lane": "r1", "label": "SIGTERM r1"},
        {"t": 11.2, "kind": "listener-closed", "lane": "r1", "label": "r1 closed its listener"},
        {"t": 13.0, "kind": "second-signal", "lane": "r1", "label": "second SIGTERM r1"},
        {"t": 14.5, "kind": "kill", "lane": "r1", "label": "SIGKILL r1"},
        {"t": 14.5, "kind": "exit", "lane": "r1", "label": "r1 exited (137)"},
    ]
    timeline: Timeline = {
        "title": "Rolling deploy r1 \u2192 r2",
        "bucket": 1.0,
        "end": 30.0,
        "buckets": buckets,
        "lanes": lanes,
        "markers": markers,
    }
    return {
        "title": "lameduck rollout",
        "verdict": "FAIL",
        "headline": "9 requests were lost while r1 was terminating (reset 12, http 502 4).",
        "meta": [
            ("command", "lameduck rollout --replicas 2 -- python -m app"),
            ("seed", "42"),
            ("date", "2025-01-01T00:00:00Z"),
        ],
        "tables": [
            {
                "title": "Requests",
                "columns": ["phase", "ok", "lost"],
                "rows": [["before", "5000", "0"], ["during", "1920", "16"], ["after", "7500", "0"]],
                "verdicts": ["PASS", "FAIL", "PASS"],
            },
            {"title": "Failures by kind", "columns": ["kind", "count"], "rows": [["reset", "12"], ["http 502", "4"]]},
        ],
        "timelines": [timeline],
    }


def hostile_view() -> View:
    view = sample_view()
    view["title"] = HOSTILE
    view["headline"] = HOSTILE
    view["meta"].append((HOSTILE, HOSTILE))
    view["tables"][0]["title"] = HOSTILE
    view["tables"][0]["columns"][0] = HOSTILE
    view["tables"][0]["rows"][0][0] = HOSTILE
    timeline = view["timelines"][0]
    timeline["title"] = HOSTILE
    timeline["lanes"][0]["name"] = HOSTILE
    timeline["markers"][0]["label"] = HOSTILE
    timeline["markers"][0]["lane"] = HOSTILE
    timeline["buckets"][5]["failures"][HOSTILE] = 1
    return view


class _Doc(HTMLParser):
    """Collects what the page would make a browser fetch or run."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._in_script: dict[str, str | None] | None = None
        self._script_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = dict(attrs)
            self._script_text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_script is not None:
            self.scripts.append((self._in_script, "".join(self._script_text)))
            self._in_script = None

    def handle_data(self, data: str) -> None:
        if self._in_script is not None:
            self._script_text.append(data)


def parse(page: str) -> _Doc:
    doc = _Doc()
    doc.feed(page)
    doc.close()
    return doc


def embedded_json(page: str) -> Any:
    """The view as the page's own script reads it: the text of the view-data element, parsed."""
    doc = parse(page)
    found = [text for attrs, text in doc.scripts if attrs.get("id") == "view-data"]
    assert len(found) == 1
    assert [attrs.get("type") for attrs, _ in doc.scripts if attrs.get("id") == "view-data"] == ["application/json"]
    return json.loads(found[0])


def as_json(view: View) -> Any:
    return json.loads(json.dumps(view))  # tuples in meta become lists, as in any JSON output


def test_page_is_one_document_and_fetches_nothing() -> None:
    page = render(sample_view())
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<html") == 1
    assert page.rstrip().endswith("</html>")
    doc = parse(page)
    for tag, attrs in doc.tags:
        for name in ("src", "href", "srcset", "action", "data", "poster", "xlink:href"):
            assert attrs.get(name) is None, f"<{tag} {name}=...> would fetch something"
        assert tag not in ("link", "img", "iframe", "object", "embed", "base", "form")
    assert len(doc.scripts) == 2  # the data and the drawing code, both inline
    # The only URL in the page is the SVG namespace, an identifier that is never fetched.
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}
    assert "url(" not in page
    assert "@import" not in page


def test_page_forbids_fetching_and_foreign_scripts() -> None:
    page = render(sample_view())
    csp = [attrs for tag, attrs in parse(page).tags if tag == "meta" and attrs.get("http-equiv")]
    assert len(csp) == 1
    policy = csp[0]["content"] or ""
    assert "default-src 'none'" in policy
    assert "script-src 'sha256-" in policy
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]


def test_embedded_json_is_the_view() -> None:
    view = sample_view()
    assert embedded_json(render(view)) == as_json(view)


def test_header_tables_and_plot_hooks() -> None:
    page = render(sample_view())
    assert '<span class="badge fail">FAIL</span>' in page
    assert "9 requests were lost while r1 was terminating" in page
    assert '<th scope="row">seed</th><td>42</td>' in page
    doc = parse(page)
    verdict_rows = [attrs.get("class") for tag, attrs in doc.tags if tag == "tr" and "data-verdict" in attrs]
    assert verdict_rows == ["pass", "fail", "pass"]
    plots = [attrs for tag, attrs in doc.tags if tag == "div" and attrs.get("class") == "plot"]
    assert [p["data-timeline-index"] for p in plots] == ["0"]


@pytest.mark.parametrize("verdict", ["PASS", "FAIL", "N/A"])
def test_badge_colour_follows_the_verdict(verdict: Verdict) -> None:
    view = sample_view()
    view["verdict"] = verdict
    css = {"PASS": "pass", "FAIL": "fail", "N/A": "na"}[verdict]
    assert f'<span class="badge {css}">{verdict}</span>' in render(view)


def test_hostile_strings_stay_text() -> None:
    view = hostile_view()
    page = render(view)
    # The data block still parses, to exactly the view.
    assert embedded_json(page) == as_json(view)
    # Nothing from the data ended a script or opened one: only our two scripts exist.
    doc = parse(page)
    assert len(doc.scripts) == 2
    assert page.count("<script") == 2
    assert page.count("</script>") == 2
    assert "alert(1)" not in doc.scripts[1][1]
    # The raw sequence never appears; it is escaped as HTML text and as JSON \u003c escapes.
    assert HOSTILE not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;!--" in page
    assert "\\u003c/script\\u003e" in page
    assert "<!--" not in page


def test_no_timelines_no_tables() -> None:
    view = sample_view()
    view["tables"] = []
    view["timelines"] = []
    view["meta"] = []
    view["verdict"] = "N/A"
    page = render(view)
    assert embedded_json(page) == as_json(view)
    assert 'class="plot"' not in page
    assert '<span class="badge na">N/A</span>' in page


def test_render_does_not_change_the_view() -> None:
    view = sample_view()
    before = copy.deepcopy(view)
    render(view)
    assert view == before
