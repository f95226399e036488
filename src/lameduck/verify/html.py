"""The HTML report: one self-contained page a person can open from disk, attach to a ticket or archive with CI.

The page fetches nothing (no CDN, fonts or images) so it renders the same offline and years later; a
Content-Security-Policy in the page itself enforces that. Text parts (header, meta, tables) are laid out here;
the timelines are drawn as SVG by inline JavaScript from the view's JSON, which is embedded verbatim so the
page carries exactly the data the terminal and JSON outputs show, and nothing can drift between them.

Every string in a view may come from the user (a command line, a URL, a replica name), so text is escaped
here and inserted with ``textContent`` in the script, never parsed as markup.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json

from lameduck.verify.view import Table, Verdict, View

__all__ = ["render"]

_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: #111827; background: #ffffff; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 12px 16px; margin-bottom: 8px; }
h1 { font-size: 22px; margin: 0; }
h2 { font-size: 17px; margin: 28px 0 8px; }
.badge { display: inline-block; padding: 2px 12px; border-radius: 999px; font-weight: 700; letter-spacing: .04em;
  color: #ffffff; }
.badge.pass { background: #15803d; }
.badge.fail { background: #b91c1c; }
.badge.na { background: #6b7280; }
.headline { font-size: 16px; margin: 4px 0 16px; }
table { border-collapse: collapse; margin: 4px 0 12px; }
th, td { border: 1px solid #d1d5db; padding: 4px 10px; text-align: left; vertical-align: top; }
thead th { background: #f3f4f6; }
table.meta th { background: #f9fafb; font-weight: 600; }
table.meta td, table.meta th { border-color: #e5e7eb; }
tr.pass td { background: #dcfce7; }
tr.fail td { background: #fee2e2; }
tr.na td { background: #f3f4f6; }
td, th { overflow-wrap: anywhere; }
.plot svg.timeline { display: block; width: 100%; max-width: 1200px; height: auto; }
svg.timeline text { font: 11px system-ui, -apple-system, "Segoe UI", sans-serif; fill: #374151; }
svg.timeline text.panel-label { font-weight: 600; }
svg.timeline text.empty { fill: #9ca3af; font-style: italic; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 18px; margin: 6px 0 0; max-width: 1200px; font-size: 12px; }
.legend-group { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 10px; }
.legend-group > b { font-weight: 600; }
.legend-item { display: inline-flex; align-items: center; gap: 4px; }
.legend-item svg { display: block; }
.error { color: #b91c1c; }
"""

# Drawn from the embedded JSON rather than in Python so the plot can be read (hover titles, a responsive
# viewBox) without a server; it uses only createElementNS/setAttribute/textContent on data.
_JS = r"""
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const W = 1000, ML = 96, MR = 24, PW = W - ML - MR;
  const TOP = 18, REQ_H = 150, FAIL_H = 90, GAP = 22, LANE_H = 18, LANE_GAP = 6, AXIS_H = 42;
  const STATE_COLOURS = {
    starting: "#93c5fd", serving: "#22c55e", removed: "#facc15",
    terminating: "#fb923c", exited: "#9ca3af", killed: "#7f1d1d"
  };
  const STATE_ORDER = ["starting", "serving", "removed", "terminating", "exited", "killed"];
  const MARKER_STYLES = {
    "started": {colour: "#6b7280", dash: "2 3", width: 1.5},
    "up": {colour: "#15803d", dash: "", width: 1.5},
    "removed": {colour: "#b45309", dash: "6 3", width: 1.5},
    "prestop": {colour: "#7c3aed", dash: "5 2 1 2", width: 1.5},
    "sigterm": {colour: "#dc2626", dash: "", width: 2},
    "listener-closed": {colour: "#0891b2", dash: "8 3", width: 1.5},
    "second-signal": {colour: "#be123c", dash: "2 2", width: 2},
    "kill": {colour: "#111827", dash: "", width: 2.5},
    "exit": {colour: "#2563eb", dash: "1 3", width: 2}
  };
  const MARKER_ORDER = Object.keys(MARKER_STYLES);
  const OTHER_MARKER = {colour: "#9ca3af", dash: "3 3", width: 1.5};
  const FAILURE_PALETTE = ["#dc2626", "#f97316", "#a855f7", "#db2777", "#ca8a04", "#0d9488", "#64748b", "#7c2d12"];
  const REQUEST_COLOUR = "#2563eb";

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const key of Object.keys(attrs)) node.setAttribute(key, String(attrs[key]));
    if (parent) parent.appendChild(node);
    return node;
  }
  function label(parent, x, y, str, attrs) {
    const node = el("text", Object.assign({x: x, y: y}, attrs || {}), parent);
    node.textContent = str;
    return node;
  }
  function title(parent, str) {
    el("title", {}, parent).textContent = str;
  }
  function num(v) {
    return typeof v === "number" && isFinite(v) ? v : 0;
  }
  function str(v) {
    return v === undefined || v === null ? "" : String(v);
  }
  function niceStep(range, count) {
    if (!(range > 0) || !isFinite(range)) return 1;
    const raw = range / count, mag = Math.pow(10, Math.floor(Math.log10(raw))), n = raw / mag;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * mag;
  }
  function fmt(v, step) {
    const digits = step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step) - 1e-9));
    return (Math.abs(v) < step / 1e6 ? 0 : v).toFixed(digits);
  }
  function fmtRate(v) {
    return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  }
  function ticks(lo, hi, count) {
    const step = niceStep(hi - lo, count), out = [];
    for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(v);
    return {step: step, values: out};
  }

  function swatch(kind, draw) {
    const box = document.createElementNS(NS, "svg");
    box.setAttribute("width", "22");
    box.setAttribute("height", "12");
    box.setAttribute("viewBox", "0 0 22 12");
    draw(box);
    return box;
  }
  function legendGroup(container, heading) {
    const group = document.createElement("div");
    group.className = "legend-group";
    const b = document.createElement("b");
    b.textContent = heading;
    group.appendChild(b);
    container.appendChild(group);
    return group;
  }
  function legendItem(group, text, attr, value, draw) {
    const item = document.createElement("span");
    item.className = "legend-item";
    item.setAttribute(attr, value);
    item.appendChild(swatch(value, draw));
    const t = document.createElement("span");
    t.textContent = text;
    item.appendChild(t);
    group.appendChild(item);
  }

  function draw(tl, index, host, legend) {
    const bucket = num(tl.bucket) > 0 ? num(tl.bucket) : 1;
    const buckets = (Array.isArray(tl.buckets) ? tl.buckets : []).slice().sort((a, b) => num(a.t) - num(b.t));
    const lanes = Array.isArray(tl.lanes) ? tl.lanes : [];
    const markers = Array.isArray(tl.markers) ? tl.markers : [];

    // Time domain: everything the timeline mentions, so no mark falls off the plot.
    let t0 = 0, t1 = num(tl.end);
    for (const b of buckets) { t0 = Math.min(t0, num(b.t)); t1 = Math.max(t1, num(b.t) + bucket); }
    for (const lane of lanes) for (const s of (lane.spans || [])) {
      t0 = Math.min(t0, num(s.start)); t1 = Math.max(t1, num(s.end));
    }
    for (const m of markers) { t0 = Math.min(t0, num(m.t)); t1 = Math.max(t1, num(m.t)); }
    if (!(t1 > t0)) t1 = t0 + 1;
    const x = (t) => ML + (num(t) - t0) / (t1 - t0) * PW;

    // Failure kinds, most frequent first, each with a fixed colour.
    const totals = new Map();
    for (const b of buckets) for (const [kind, n] of Object.entries(b.failures || {})) {
      if (num(n) > 0) totals.set(kind, (totals.get(kind) || 0) + num(n));
    }
    const byName = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
    const kinds = Array.from(totals.keys()).sort((a, b) => totals.get(b) - totals.get(a) || byName(a, b));
    const kindColour = new Map(kinds.map((k, i) => [k, FAILURE_PALETTE[i % FAILURE_PALETTE.length]]));

    let reqMax = 0, failMax = 0;
    for (const b of buckets) {
      reqMax = Math.max(reqMax, num(b.ok) / bucket);
      let sum = 0;
      for (const k of kinds) sum += Math.max(0, num((b.failures || {})[k]));
      failMax = Math.max(failMax, sum / bucket);
    }

    const reqTop = TOP, reqBottom = TOP + REQ_H;
    const failTop = reqBottom + GAP, failBottom = failTop + FAIL_H;
    const lanesTop = failBottom + GAP;
    const lanesBottom = lanesTop + lanes.length * (LANE_H + LANE_GAP);
    const height = lanesBottom + AXIS_H;

    const svg = el("svg", {
      "class": "timeline", "data-timeline-index": index, viewBox: "0 0 " + W + " " + height,
      role: "img", preserveAspectRatio: "xMinYMin meet"
    });
    el("title", {}, svg).textContent = str(tl.title);
    host.appendChild(svg);

    // x axis: gridlines through the rate panels, ticks and labels under the lanes.
    const xt = ticks(t0, t1, 10);
    const grid = el("g", {"class": "grid", stroke: "#e5e7eb", "stroke-width": 1}, svg);
    const axis = el("g", {"class": "x-axis"}, svg);
    el("line", {x1: ML, x2: ML + PW, y1: lanesBottom + 4, y2: lanesBottom + 4, stroke: "#6b7280"}, axis);
    for (const v of xt.values) {
      const px = x(v);
      el("line", {x1: px, x2: px, y1: reqTop, y2: reqBottom}, grid);
      el("line", {x1: px, x2: px, y1: failTop, y2: failBottom}, grid);
      el("line", {x1: px, x2: px, y1: lanesBottom + 4, y2: lanesBottom + 9, stroke: "#6b7280"}, axis);
      label(axis, px, lanesBottom + 22, fmt(v, xt.step), {"text-anchor": "middle"});
    }
    label(axis, ML + PW, lanesBottom + 38, "seconds since the load started", {"text-anchor": "end"});

    function yPanel(top, bottom, max, name, unit) {
      // Round the scale up to a whole tick so the highest value never sits on the panel's edge.
      const scaleMax = max > 0 ? max : 1;
      const step = niceStep(scaleMax, 4);
      const yt = ticks(0, Math.ceil(scaleMax / step - 1e-9) * step, 4);
      const top2 = Math.max(scaleMax, yt.values[yt.values.length - 1]);
      const y = (v) => bottom - v / top2 * (bottom - top);
      const g = el("g", {"class": "y-axis"}, svg);
      el("line", {x1: ML, x2: ML, y1: top, y2: bottom, stroke: "#6b7280"}, g);
      el("line", {x1: ML, x2: ML + PW, y1: bottom, y2: bottom, stroke: "#6b7280"}, g);
      for (const v of yt.values) {
        el("line", {x1: ML, x2: ML + PW, y1: y(v), y2: y(v)}, grid);
        el("line", {x1: ML - 5, x2: ML, y1: y(v), y2: y(v), stroke: "#6b7280"}, g);
        label(g, ML - 8, y(v) + 4, fmt(v, yt.step), {"text-anchor": "end"});
      }
      label(g, ML + 6, top - 5, name, {"class": "panel-label"});
      label(g, 4, top + (bottom - top) / 2, unit, {"class": "unit"});
      return y;
    }

    // Requests answered per second, as a step line (a bucket is a constant rate over its width).
    const yReq = yPanel(reqTop, reqBottom, reqMax, "answered requests (2xx/3xx) per second", "req/s");
    if (buckets.length) {
      let line = "", area = "";
      for (const b of buckets) {
        const xa = x(b.t).toFixed(2), xb = x(num(b.t) + bucket).toFixed(2), yv = yReq(num(b.ok) / bucket).toFixed(2);
        line += (line ? " L" : "M") + xa + " " + yv + " L" + xb + " " + yv;
      }
      const first = x(buckets[0].t).toFixed(2), last = x(num(buckets[buckets.length - 1].t) + bucket).toFixed(2);
      area = "M" + first + " " + reqBottom + " L" + line.slice(1) + " L" + last + " " + reqBottom + " Z";
      el("path", {"class": "requests-area", d: area, fill: REQUEST_COLOUR, "fill-opacity": 0.12, stroke: "none"}, svg);
      const path = el("path", {
        "class": "requests", d: line, fill: "none", stroke: REQUEST_COLOUR, "stroke-width": 1.8,
        "stroke-linejoin": "round"
      }, svg);
      title(path, "answered requests per second (peak " + fmtRate(reqMax) + "/s)");
    } else {
      label(svg, ML + PW / 2, reqTop + REQ_H / 2, "no requests recorded", {"class": "empty", "text-anchor": "middle"});
    }

    // Failures per second, stacked by kind.
    const yFail = yPanel(failTop, failBottom, failMax, "failures per second, by kind", "fail/s");
    const bars = el("g", {"class": "failures"}, svg);
    for (const b of buckets) {
      let acc = 0;
      const xa = x(b.t), w = Math.max(1, x(num(b.t) + bucket) - xa - 1);
      for (const k of kinds) {
        const n = num((b.failures || {})[k]);
        if (!(n > 0)) continue;
        const lo = acc, hi = acc + n / bucket;
        acc = hi;
        const rect = el("rect", {
          "class": "failure", "data-kind": k, x: (xa + 0.5).toFixed(2), width: w.toFixed(2),
          y: yFail(hi).toFixed(2), height: Math.max(0.5, yFail(lo) - yFail(hi)).toFixed(2), fill: kindColour.get(k)
        }, bars);
        title(rect, fmt(num(b.t), 0.01) + "\u2013" + fmt(num(b.t) + bucket, 0.01) + " s: " + n + " \u00d7 " + k);
      }
    }
    if (!kinds.length) {
      label(svg, ML + PW / 2, failTop + FAIL_H / 2, "no failures", {"class": "empty", "text-anchor": "middle"});
    }

    // One lane per replica (or the service), coloured by state.
    const laneY = new Map();
    lanes.forEach((lane, i) => {
      const top = lanesTop + i * (LANE_H + LANE_GAP);
      const name = str(lane.name);
      laneY.set(name, top);
      const g = el("g", {"class": "lane", "data-lane": name}, svg);
      el("rect", {"class": "lane-bg", x: ML, y: top, width: PW, height: LANE_H, fill: "#f3f4f6"}, g);
      const shown = name.length > 14 ? name.slice(0, 13) + "\u2026" : name;
      const text = label(g, ML - 8, top + LANE_H / 2 + 4, shown, {"text-anchor": "end"});
      title(text, name);
      for (const s of (lane.spans || [])) {
        const state = str(s.state), xa = x(s.start), xb = x(s.end);
        const rect = el("rect", {
          "class": "span", "data-state": state, x: xa.toFixed(2), y: top, width: Math.max(0, xb - xa).toFixed(2),
          height: LANE_H, fill: STATE_COLOURS[state] || "#d1d5db"
        }, g);
        title(rect, name + ": " + state + " " + fmt(num(s.start), 0.01) + "\u2013" + fmt(num(s.end), 0.01) + " s");
      }
    });

    // Markers across the whole plot, thicker within their own lane; a wide invisible line makes hovering easy.
    const marks = el("g", {"class": "markers"}, svg);
    for (const m of markers) {
      const kind = str(m.kind), style = MARKER_STYLES[kind] || OTHER_MARKER, px = x(m.t).toFixed(2);
      const text = str(m.label) || kind;
      const line = el("line", {
        "class": "marker", "data-kind": kind, "data-lane": str(m.lane), x1: px, x2: px, y1: reqTop, y2: lanesBottom,
        stroke: style.colour, "stroke-width": style.width, "stroke-dasharray": style.dash
      }, marks);
      title(line, text + " (" + fmt(num(m.t), 0.001) + " s)");
      const laneTop = laneY.get(str(m.lane));
      if (laneTop !== undefined) {
        el("line", {
          "class": "marker-lane", x1: px, x2: px, y1: laneTop - 2, y2: laneTop + LANE_H + 2,
          stroke: style.colour, "stroke-width": style.width + 2
        }, marks);
      }
      const hit = el("line", {
        "class": "marker-hit", x1: px, x2: px, y1: reqTop, y2: lanesBottom, stroke: "transparent", "stroke-width": 8
      }, marks);
      title(hit, text + " (" + fmt(num(m.t), 0.001) + " s)");
    }

    // Legends, in HTML so they wrap with the page.
    const reqGroup = legendGroup(legend, "Requests");
    legendItem(reqGroup, "answered/s", "data-series", "requests", (box) => {
      el("line", {x1: 1, x2: 21, y1: 6, y2: 6, stroke: REQUEST_COLOUR, "stroke-width": 2}, box);
    });
    if (kinds.length) {
      const group = legendGroup(legend, "Failures");
      for (const k of kinds) {
        legendItem(group, k + " (" + totals.get(k) + ")", "data-kind", k, (box) => {
          el("rect", {x: 3, y: 1, width: 16, height: 10, fill: kindColour.get(k)}, box);
        });
      }
    }
    const states = new Set();
    for (const lane of lanes) for (const s of (lane.spans || [])) states.add(str(s.state));
    if (states.size) {
      const group = legendGroup(legend, "States");
      const ordered = STATE_ORDER.filter((s) => states.has(s)).concat(
        Array.from(states).filter((s) => !STATE_ORDER.includes(s)).sort());
      for (const s of ordered) {
        legendItem(group, s, "data-state", s, (box) => {
          el("rect", {x: 3, y: 1, width: 16, height: 10, fill: STATE_COLOURS[s] || "#d1d5db"}, box);
        });
      }
    }
    const present = new Set(markers.map((m) => str(m.kind)));
    if (present.size) {
      const group = legendGroup(legend, "Markers");
      const ordered = MARKER_ORDER.filter((k) => present.has(k)).concat(
        Array.from(present).filter((k) => !MARKER_ORDER.includes(k)).sort());
      for (const k of ordered) {
        const style = MARKER_STYLES[k] || OTHER_MARKER;
        legendItem(group, k, "data-kind", k, (box) => {
          el("line", {
            x1: 1, x2: 21, y1: 6, y2: 6, stroke: style.colour, "stroke-width": style.width,
            "stroke-dasharray": style.dash
          }, box);
        });
      }
    }
  }

  let view;
  try {
    view = JSON.parse(document.getElementById("view-data").textContent);
  } catch (err) {
    view = {timelines: []};
  }
  const timelines = Array.isArray(view.timelines) ? view.timelines : [];
  document.querySelectorAll(".plot[data-timeline-index]").forEach((host) => {
    const index = Number(host.getAttribute("data-timeline-index"));
    const legend = host.parentNode.querySelector(".legend");
    try {
      draw(timelines[index] || {}, index, host, legend);
    } catch (err) {
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = "could not draw this timeline: " + String(err);
      host.appendChild(p);
    }
  });
})();
"""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_JS.encode("utf-8")).digest()).decode("ascii")

# default-src 'none' makes "self-contained" a property the browser enforces, not just a habit: nothing is
# fetched, and only the script whose hash is listed here can run.
_CSP = (
    "default-src 'none'; "
    "style-src 'unsafe-inline'; "
    f"script-src 'sha256-{_SCRIPT_HASH}'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)

_VERDICT_CLASS: dict[str, str] = {"PASS": "pass", "FAIL": "fail", "N/A": "na"}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _json_for_script(view: View) -> str:
    """JSON that cannot end the <script> element it sits in, whatever strings the view holds.

    Escaping every ``<``, ``>`` and ``&`` as ``\\u00XX`` keeps it valid JSON (``JSON.parse`` reads them back)
    while leaving no ``</script`` or ``<!--`` for the HTML parser to act on.
    """
    text = json.dumps(view, ensure_ascii=False, allow_nan=False, indent=1)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _badge(verdict: Verdict | str) -> str:
    return f'<span class="badge {_VERDICT_CLASS.get(verdict, "na")}">{_e(verdict)}</span>'


def _table(table: Table) -> str:
    verdicts: list[Verdict] = list(table.get("verdicts", []))
    head = "".join(f'<th scope="col">{_e(c)}</th>' for c in table["columns"])
    rows: list[str] = []
    for i, row in enumerate(table["rows"]):
        cells = "".join(f"<td>{_e(c)}</td>" for c in row)
        if i < len(verdicts):
            v = verdicts[i]
            rows.append(f'<tr class="{_VERDICT_CLASS.get(v, "na")}" data-verdict="{_e(v)}">{cells}</tr>')
        else:
            rows.append(f"<tr>{cells}</tr>")
    return (
        f'<section class="table-section">\n<h2>{_e(table["title"])}</h2>\n'
        f'<table class="data">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + "\n</tbody>\n</table>\n</section>"
    )


def render(view: View) -> str:
    """The whole page as one string; write it to a ``.html`` file as UTF-8."""
    meta_rows = "\n".join(f'<tr><th scope="row">{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in view["meta"])
    meta = f'<table class="meta">\n<tbody>\n{meta_rows}\n</tbody>\n</table>' if view["meta"] else ""
    tables = "\n".join(_table(t) for t in view["tables"])
    timelines = "\n".join(
        f'<section class="timeline-section">\n<h2>{_e(tl["title"])}</h2>\n'
        f'<div class="plot" data-timeline-index="{i}"></div>\n<div class="legend"></div>\n</section>'
        for i, tl in enumerate(view["timelines"])
    )
    noscript = (
        "<noscript><p>The timelines are drawn by JavaScript from the data embedded in this page.</p></noscript>"
        if view["timelines"]
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="lameduck">
<title>{_e(view["title"])} \u2014 {_e(view["verdict"])}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{_e(view["title"])}</h1>
{_badge(view["verdict"])}
</header>
<p class="headline">{_e(view["headline"])}</p>
{meta}
{tables}
{timelines}
{noscript}
<script type="application/json" id="view-data">
{_json_for_script(view)}
</script>
<script>{_JS}</script>
</body>
</html>
"""
