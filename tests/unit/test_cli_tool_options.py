"""The value types of ``lameduck verify`` and ``lameduck rollout`` flags: what each accepts, and the exact
one-line message for what it refuses (argparse prints it as ``lameduck: error: argument --flag: MESSAGE``).
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lameduck.cli import options as opt
from lameduck.cli.main import build_parser
from lameduck.cli.rollout import _lb, _mix, _prestop, _range

BAD_NUMBERS = ["", " ", "x", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e309", "1,5", "0x10", "1 2"]


def refused(parse: Callable[[str], Any], raw: str) -> str:
    """The message ``parse`` refuses ``raw`` with (it must be one line)."""
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        parse(raw)
    message = str(caught.value)
    assert "\n" not in message
    return message


# -- seconds -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"), [("0", 0.0), ("60", 60.0), ("0.5", 0.5), ("1e1", 10.0), (" 5 ", 5.0), ("30.", 30.0)]
)
def test_seconds_accepts_finite_numbers_in_range(raw: str, value: float) -> None:
    assert opt.seconds(0, 60)(raw) == value


@pytest.mark.parametrize("raw", [*BAD_NUMBERS, "-1", "-0.001", "60.0001", "61", "1e3"])
def test_seconds_refuses_anything_else_in_one_line(raw: str) -> None:
    assert refused(opt.seconds(0, 60), raw) == f"must be seconds in 0..60 (got {raw!r})"


@pytest.mark.parametrize(
    ("lo", "hi", "raw", "message"),
    [
        (0.01, 60, "0", "must be seconds in 0.01..60 (got '0')"),
        (1, 3600, "0.5", "must be seconds in 1..3600 (got '0.5')"),
        (0.1, 10, "nan", "must be seconds in 0.1..10 (got 'nan')"),
        (1, 20000, "-5", "must be seconds in 1..20000 (got '-5')"),
    ],
)
def test_seconds_names_its_range(lo: float, hi: float, raw: str, message: str) -> None:
    assert refused(opt.seconds(lo, hi), raw) == message


def test_seconds_range_ends_are_inclusive() -> None:
    parse = opt.seconds(0.01, 60)
    assert parse("0.01") == 0.01
    assert parse("60") == 60.0


# -- integer -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "value"), [("1", 1), ("20", 20), (" 7 ", 7), ("+3", 3), ("007", 7)])
def test_integer_accepts_whole_numbers_in_range(raw: str, value: int) -> None:
    assert opt.integer(1, 20)(raw) == value


@pytest.mark.parametrize("raw", [*BAD_NUMBERS, "0", "21", "-1", "1.0", "1.5", "2e1"])
def test_integer_refuses_anything_else_in_one_line(raw: str) -> None:
    assert refused(opt.integer(1, 20), raw) == f"must be a whole number in 1..20 (got {raw!r})"


def test_integer_refuses_non_numbers_even_when_zero_is_allowed() -> None:
    assert refused(opt.integer(0, 5), "x") == "must be a whole number in 0..5 (got 'x')"
    assert refused(opt.integer(0, 2**31 - 1), "2147483648") == (
        "must be a whole number in 0..2147483647 (got '2147483648')"
    )
    assert opt.integer(0, 5)("0") == 0


# -- paths, signals, files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["/", "/health/ready", "/sleep?ms=300", "/a%20b", "//x"])
def test_url_path_accepts_paths(raw: str) -> None:
    assert opt.url_path(raw) == raw


@pytest.mark.parametrize("raw", ["", "health", "http://x/", " /x", "/a b", "/a\tb", "/x\n", "none"])
def test_url_path_refuses_others_in_one_line(raw: str) -> None:
    message = refused(opt.url_path, raw)
    assert message == f"must be a URL path starting with / and without spaces (got {raw!r})"


@pytest.mark.parametrize("raw", ["", "none", "None", "NONE", "  ", " none "])
def test_optional_url_path_switches_the_check_off(raw: str) -> None:
    assert opt.optional_url_path(raw) is None


def test_optional_url_path_otherwise_is_a_url_path() -> None:
    assert opt.optional_url_path("/health/live") == "/health/live"
    assert (
        refused(opt.optional_url_path, "live") == "must be a URL path starting with / and without spaces (got 'live')"
    )


@pytest.mark.parametrize(
    ("raw", "sig"),
    [
        ("TERM", signal.SIGTERM),
        ("term", signal.SIGTERM),
        ("SIGTERM", signal.SIGTERM),
        ("sigterm", signal.SIGTERM),
        (" INT ", signal.SIGINT),
        ("SigInt", signal.SIGINT),
    ],
)
def test_signal_name_accepts_term_and_int(raw: str, sig: signal.Signals) -> None:
    assert opt.signal_name(raw) is sig


@pytest.mark.parametrize("raw", ["", "KILL", "SIGKILL", "HUP", "15", "SIGSIGTERM", "TERMINATE"])
def test_signal_name_refuses_others_in_one_line(raw: str) -> None:
    assert refused(opt.signal_name, raw) == f"must be TERM or INT (got {raw!r})"


def test_output_file_in_an_existing_folder(tmp_path: Path) -> None:
    assert opt.output_file(str(tmp_path / "report.json")) == tmp_path / "report.json"
    assert opt.output_file("report.html") == Path("report.html")  # the working directory exists


def test_output_file_refuses_a_missing_folder(tmp_path: Path) -> None:
    raw = str(tmp_path / "missing" / "report.json")
    assert refused(opt.output_file, raw) == f"folder {str(tmp_path / 'missing')!r} does not exist (for {raw!r})"


def test_output_file_refuses_a_folder(tmp_path: Path) -> None:
    assert refused(opt.output_file, str(tmp_path)) == f"{str(tmp_path)!r} is a folder; give a file name"


# -- rollout: --propagation --------------------------------------------------------------------------------------

RANGE = "must be MIN..MAX seconds with 0 ≤ MIN ≤ MAX ≤ 60 (got {!r})"


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("0.5..2.0", (0.5, 2.0)),
        ("0..0", (0.0, 0.0)),
        ("0..60", (0.0, 60.0)),
        ("1..1", (1.0, 1.0)),
        ("1.5", (1.5, 1.5)),  # one number: a fixed delay
        ("0", (0.0, 0.0)),
        (" 1 .. 2 ", (1.0, 2.0)),
    ],
)
def test_range_accepts_ordered_bounds(raw: str, value: tuple[float, float]) -> None:
    assert _range(raw) == value


@pytest.mark.parametrize(
    "raw",
    [
        *BAD_NUMBERS,
        "2..1",
        "-1..2",
        "0..61",
        "61",
        "-1",
        "nan..1",
        "0..nan",
        "0..inf",
        "-inf..1",
        "1..",
        "..1",
        "..",
        "1...2",
        "1..2..3",
        "1-2",
    ],
)
def test_range_refuses_others_in_one_line(raw: str) -> None:
    assert refused(_range, raw) == RANGE.format(raw)


# -- rollout: --prestop ------------------------------------------------------------------------------------------

PRESTOP = "must be none or sleep:S with 0 ≤ S ≤ 600 (got {!r})"


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("none", None),
        ("None", None),
        (" NONE ", None),
        ("sleep:0", 0.0),
        ("sleep:5", 5.0),
        ("sleep:0.25", 0.25),
        ("sleep:600", 600.0),
        ("SLEEP:3", 3.0),
        ("sleep: 3", 3.0),
        ("sleep:1e2", 100.0),
    ],
)
def test_prestop_accepts_none_or_a_sleep(raw: str, value: float | None) -> None:
    assert _prestop(raw) == value


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "sleep",
        "sleep:",
        "sleep:x",
        "sleep:-1",
        "sleep:600.5",
        "sleep:601",
        "sleep:nan",
        "sleep:inf",
        "sleep:-inf",
        "5",
        "sleep 5",
        "sleep=5",
        "exec:/bin/true",
        "nothing",
    ],
)
def test_prestop_refuses_others_in_one_line(raw: str) -> None:
    assert refused(_prestop, raw) == PRESTOP.format(raw)


# -- rollout: --mix ----------------------------------------------------------------------------------------------

MIX = "must be FAST/SLOW/POST weights, each 0..1000, e.g. 80/15/5 (got {!r})"


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("80/15/5", (80.0, 15.0, 5.0)),
        ("1/0/0", (1.0, 0.0, 0.0)),
        ("0/0/0.5", (0.0, 0.0, 0.5)),
        ("1000/1000/1000", (1000.0, 1000.0, 1000.0)),
        ("1e3/0/0", (1000.0, 0.0, 0.0)),
        (" 80 / 15 / 5 ", (80.0, 15.0, 5.0)),
    ],
)
def test_mix_accepts_three_weights(raw: str, value: tuple[float, float, float]) -> None:
    assert _mix(raw) == value


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "80",
        "80/15",
        "80/15/5/0",
        "80//5",
        "0/0/0",
        "-1/50/50",
        "1001/0/0",
        "nan/1/1",
        "1/nan/1",
        "inf/1/1",
        "1/1/-inf",
        "a/b/c",
        "80,15,5",
    ],
)
def test_mix_refuses_others_in_one_line(raw: str) -> None:
    assert refused(_mix, raw) == MIX.format(raw)


# -- rollout: --lb -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["tcp", "http"])
def test_lb_accepts_tcp_and_http(raw: str) -> None:
    assert _lb(raw) == raw


@pytest.mark.parametrize("raw", ["", "TCP", "Http", " tcp", "https", "udp", "kube-proxy"])
def test_lb_refuses_others_in_one_line(raw: str) -> None:
    assert refused(_lb, raw) == f"must be tcp (kube-proxy) or http (ingress) (got {raw!r})"


# -- through the parser ------------------------------------------------------------------------------------------


def test_rollout_defaults_go_through_the_same_types() -> None:
    args = build_parser().parse_args(["rollout"])
    assert args.replicas == 3
    assert args.lb == "tcp"
    assert args.propagation == (0.5, 2.0)
    assert args.prestop is None
    assert args.grace == 30.0
    assert args.seed == 1
    assert args.rate == 300.0
    assert args.connections == 32
    assert args.mix == (80.0, 15.0, 5.0)
    assert args.path == "/"
    assert args.slow_path is None
    assert args.post_path is None
    assert args.post_bytes == 512
    assert args.ready_path == "/health/ready"
    assert args.json is None
    assert args.html is None


def test_rollout_values_are_parsed() -> None:
    args = build_parser().parse_args(
        ["rollout", "--lb", "http", "--propagation", "0..1", "--prestop", "sleep:5", "--mix", "50/50/0", "--seed", "0"]
    )
    assert (args.lb, args.propagation, args.prestop, args.mix, args.seed) == ("http", (0.0, 1.0), 5.0, (50, 50, 0), 0)


def test_verify_defaults_go_through_the_same_types() -> None:
    args = build_parser().parse_args(["verify"])
    assert args.signal is signal.SIGTERM
    assert args.live_path == "/health/live"
    assert args.ready_path == "/health/ready"
    assert args.grace == 30.0
    assert args.lame_duck == 0.0
    assert args.scenario == []
    assert args.probes is True


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rollout", "--mix", "nan/1/1"], "argument --mix: " + MIX.format("nan/1/1")),
        (["rollout", "--propagation", "2..1"], "argument --propagation: " + RANGE.format("2..1")),
        (["rollout", "--prestop", "sleep:-1"], "argument --prestop: " + PRESTOP.format("sleep:-1")),
        (["rollout", "--lb", "udp"], "argument --lb: must be tcp (kube-proxy) or http (ingress) (got 'udp')"),
        (["rollout", "--grace", "inf"], "argument --grace: must be seconds in 1..3600 (got 'inf')"),
        (["rollout", "--replicas", "0"], "argument --replicas: must be a whole number in 1..20 (got '0')"),
        (["verify", "--signal", "KILL"], "argument --signal: must be TERM or INT (got 'KILL')"),
        (["verify", "--lame-duck", "-1"], "argument --lame-duck: must be seconds in 0..600 (got '-1')"),
        (["verify", "--path", "x"], "argument --path: must be a URL path starting with / and without spaces (got 'x')"),
    ],
)
def test_a_bad_value_is_one_line_and_exit_code_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert caught.value.code == 2
    assert capsys.readouterr().err == f"lameduck: error: {message}\n"
