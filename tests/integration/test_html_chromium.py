"""A real browser opens the HTML report and draws the timeline: headless Chromium, DOM dump and screenshot.

The unit tests check the page as a string; only a browser proves the inline script runs under the page's
Content-Security-Policy and draws one mark per datum. Chromium is started in its own session and its whole
process group is killed by PID afterwards, so no browser process outlives a test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lameduck.verify.html import render
from tests.unit.test_html_report import hostile_view, sample_view

CHROMIUM_TIMEOUT = 60.0


def chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if found is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is not installed; .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    return found


def run_chromium(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run headless Chromium with a fresh profile; kill its process group by PID whatever happens."""
    profile = tmp_path / f"profile-{name}"
    profile.mkdir()
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        *args,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish within {CHROMIUM_TIMEOUT} s: {' '.join(cmd)}")
    finally:
        # Renderer and zygote processes are in the browser's process group; none may outlive the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}:\n{err.decode(errors='replace')[-3000:]}"
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


class Element:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Element | None) -> None:
        self.tag = tag
        self.attrs = attrs
        self.parent = parent
        self.children: list[Element] = []
        self.text = ""

    @property
    def classes(self) -> list[str]:
        return (self.attrs.get("class") or "").split()

    def iter(self) -> list[Element]:
        out = [self]
        for child in self.children:
            out.extend(child.iter())
        return out

    def find(self, tag: str, cls: str | None = None) -> list[Element]:
        return [e for e in self.iter() if e.tag == tag and (cls is None or cls in e.classes)]


class _Tree(HTMLParser):
    """Just enough of a DOM for the serialized page Chromium dumps (every element is closed explicitly)."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "source", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {}, None)
        self._at = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Element(tag, dict(attrs), self._at)
        self._at.children.append(node)
        if tag not in self.VOID:
            self._at = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._at.children.append(Element(tag, dict(attrs), self._at))

    def handle_endtag(self, tag: str) -> None:
        node: Element | None = self._at
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self._at = node.parent

    def handle_data(self, data: str) -> None:
        self._at.text += data


def dump_dom(tmp_path: Path, page: str, name: str = "dom") -> Element:
    report = tmp_path / f"{name}.html"
    report.write_text(page, encoding="utf-8")
    done = run_chromium(tmp_path, name, "--dump-dom", report.as_uri())
    tree = _Tree()
    tree.feed(done.stdout.decode("utf-8"))
    tree.close()
    return tree.root


def test_chromium_draws_every_bucket_span_and_marker(tmp_path: Path) -> None:
    view = sample_view()
    dom = dump_dom(tmp_path, render(view))
    assert not dom.find("p", "error"), "the drawing script reported an error"

    svgs = dom.find("svg", "timeline")
    assert [s.attrs.get("data-timeline-index") for s in svgs] == [str(i) for i in range(len(view["timelines"]))]
    for svg, timeline in zip(svgs, view["timelines"], strict=True):
        failures = svg.find("rect", "failure")
        expected = sorted(kind for b in timeline["buckets"] for kind, count in b["failures"].items() if count > 0)
        assert sorted(r.attrs.get("data-kind") or "" for r in failures) == expected
        assert len(failures) == 5  # resets at 11, 12, 13 and 502s at 12 (stacked on the reset) and 14
        assert all(float(r.attrs.get("height") or 0) > 0 for r in failures)

        requests = svg.find("path", "requests")
        assert len(requests) == 1
        d = requests[0].attrs.get("d") or ""
        assert d.startswith("M")
        assert d.count("L") >= 2 * len(timeline["buckets"]) - 1  # two points per bucket: a step line

        markers = svg.find("line", "marker")
        assert [m.attrs.get("data-kind") for m in markers] == [m["kind"] for m in timeline["markers"]]
        for line, marker in zip(markers, timeline["markers"], strict=True):
            titles = line.find("title")
            assert len(titles) == 1
            assert marker["label"] in titles[0].text
        # Each kind is drawn differently from every other kind.
        styles = {
            (m.attrs.get("stroke"), m.attrs.get("stroke-dasharray"), m.attrs.get("stroke-width")) for m in markers
        }
        assert len(styles) == len({m["kind"] for m in timeline["markers"]})

        spans = svg.find("rect", "span")
        assert [s.attrs.get("data-state") for s in spans] == [
            span["state"] for lane in timeline["lanes"] for span in lane["spans"]
        ]
        assert len({s.attrs.get("fill") for s in spans}) == len({s.attrs.get("data-state") for s in spans})

    legend = dom.find("div", "legend")
    assert len(legend) == len(view["timelines"])
    legend_kinds = {e.attrs.get("data-kind") for e in legend[0].find("span", "legend-item")}
    assert {"reset", "http 502", "sigterm", "kill", "exit"} <= legend_kinds
    assert {e.attrs.get("data-state") for e in legend[0].find("span", "legend-item")} >= {"serving", "killed"}


def test_chromium_draws_axes_for_an_empty_timeline_and_keeps_hostile_text_as_text(tmp_path: Path) -> None:
    view = hostile_view()
    view["timelines"].append(
        {"title": "nothing measured", "bucket": 0.1, "end": 0.0, "buckets": [], "lanes": [], "markers": []}
    )
    dom = dump_dom(tmp_path, render(view))
    assert not dom.find("p", "error"), "the drawing script reported an error"
    # The hostile strings created no element: only the page's own two scripts exist.
    assert len(dom.find("script")) == 2
    svgs = dom.find("svg", "timeline")
    assert len(svgs) == 2
    assert len(svgs[0].find("rect", "failure")) == 6  # the sample's five plus the hostile kind's one
    empty = svgs[1]
    assert empty.find("g", "x-axis")
    assert len(empty.find("g", "y-axis")) == 2
    assert not empty.find("rect", "failure")
    assert not empty.find("path", "requests")
    for text in empty.find("text"):
        assert "NaN" not in text.text
        assert "Infinity" not in text.text
    for node in empty.iter():
        assert all("NaN" not in (v or "") for v in node.attrs.values())


def read_png(path: Path) -> tuple[int, int, int, bytes]:
    """(width, height, channels, raw pixel rows) of an 8-bit RGB/RGBA, non-interlaced PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _compression, _filter, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8, f"bit depth {depth}"
            assert interlace == 0
            channels = {2: 3, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * channels
    out = bytearray()
    prev = bytearray(stride)
    for row in range(height):
        start = row * (stride + 1)
        ftype = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if ftype == 0:
                pred = 0
            elif ftype == 1:
                pred = a
            elif ftype == 2:
                pred = b
            elif ftype == 3:
                pred = (a + b) // 2
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            else:
                raise AssertionError(f"PNG filter type {ftype}")
            line[i] = (line[i] + pred) & 0xFF
        out += line
        prev = line
    return width, height, channels, bytes(out)


def test_png_decoder_handles_every_filter_type(tmp_path: Path) -> None:
    width, height, channels = 3, 5, 3
    rows = [
        bytes(v for x in range(width) for v in (17 * (x + y) % 256, 40 * y % 256, 255 - 30 * x)) for y in range(height)
    ]
    encoded = bytearray()
    prev = bytes(width * channels)
    for ftype, row in enumerate(rows):  # one row per filter type 0..4
        filtered = bytearray()
        for i, value in enumerate(row):
            a = row[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            paeth = a if pa <= pb and pa <= pc else b if pb <= pc else c
            pred = [0, a, b, (a + b) // 2, paeth][ftype]
            filtered.append((value - pred) & 0xFF)
        encoded += bytes([ftype]) + filtered
        prev = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = tmp_path / "tiny.png"
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(encoded)))
        + chunk(b"IEND", b"")
    )
    assert read_png(png) == (width, height, channels, b"".join(rows))


def test_chromium_screenshot_shows_the_plot(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text(render(sample_view()), encoding="utf-8")
    shot = tmp_path / "shot.png"
    run_chromium(tmp_path, "shot", f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri())
    assert shot.exists(), "chromium wrote no screenshot"
    width, height, channels, pixels = read_png(shot)
    assert width >= 1000
    assert height >= 1000
    total = width * height
    non_white = serving_green = 0
    for i in range(0, len(pixels), channels):
        r, g, b = pixels[i], pixels[i + 1], pixels[i + 2]
        if r < 240 or g < 240 or b < 240:
            non_white += 1
        if abs(r - 0x22) < 24 and abs(g - 0xC5) < 24 and abs(b - 0x5E) < 24:
            serving_green += 1
    assert non_white > total * 0.03, f"only {non_white} of {total} pixels are not white"
    # The lanes' "serving" colour is only ever drawn by the script: the plot itself is on screen.
    assert serving_green > 2000, f"only {serving_green} pixels of the serving colour"
