"""lameduck.runtime.pid1's pure parts: when to be the init, the child's command line, the exit-code mapping; and
the terminal handover, on a pseudo-terminal.

The init itself (spawn, forward, reap, stops) runs in tests/acceptance/test_pid1.py, in a real PID namespace.
"""

from __future__ import annotations

import os
import pty
import shutil
import signal
import subprocess
import sys

import pytest

from lameduck.config import BY_NAME, Settings
from lameduck.core.outcome import ExitCode
from lameduck.errors import ConfigError
from lameduck.runtime import pid1

SERVE = ["lameduck", "serve", "app:app"]


@pytest.mark.parametrize(
    "argv",
    [
        SERVE,
        ["lameduck", "work", "tasks:worker", "--broker", "sqlite:///jobs.sqlite3"],
        ["/venv/bin/lameduck", "serve"],  # APP from LAMEDUCK_APP: the child reads it
        [*SERVE, "--init", "auto"],
        [*SERVE, "--init=AUTO"],
        [*SERVE, "--init", "banana"],  # invalid: the child rejects it with exit 2, which the init passes on
        [*SERVE, "--init", "off", "--init", "auto"],  # the last one wins, as in argparse
        ["-c", "serve", "app:app"],  # python -c "...": sys.argv[0] is "-c"
    ],
)
def test_pid_1_running_a_service_becomes_the_init(argv: list[str]) -> None:
    assert pid1.wants_init(1, argv, {}) is True


@pytest.mark.parametrize(
    "argv",
    [
        [*SERVE, "--init", "off"],
        [*SERVE, "--init=off"],
        [*SERVE, "--init", " OFF "],
        [*SERVE, "--init", "auto", "--init", "off"],
        ["lameduck"],
        ["lameduck", "--version"],
        ["lameduck", "--help"],
        ["lameduck", "-h", "serve"],
        ["lameduck", "serve", "--help"],
        ["lameduck", "work", "-h"],
        ["lameduck", "budget", "--grace", "10"],
        ["lameduck", "jobs", "status"],
        ["lameduck", "k8s", "check", "deploy.yaml"],
        ["lameduck", "verify", "--", "lameduck", "serve", "app:app"],
        ["lameduck", "rollout", "--", "lameduck", "serve", "app:app"],
    ],
)
def test_pid_1_runs_directly_when_turned_off_or_running_no_service(argv: list[str]) -> None:
    assert pid1.wants_init(1, argv, {}) is False


def test_only_pid_1_becomes_the_init() -> None:
    assert pid1.wants_init(2, SERVE, {}) is False
    assert pid1.wants_init(4242, SERVE, {}) is False


def test_the_child_never_becomes_an_init() -> None:
    assert pid1.wants_init(1, SERVE, {pid1.CHILD_MARKER: "1"}) is False


@pytest.mark.parametrize(
    ("env", "argv", "expected"),
    [
        ({"LAMEDUCK_INIT": "off"}, SERVE, False),
        ({"LAMEDUCK_INIT": " Off"}, SERVE, False),
        ({"LAMEDUCK_INIT": "auto"}, SERVE, True),
        ({"LAMEDUCK_INIT": "off"}, [*SERVE, "--init", "auto"], True),  # the flag wins, as for every setting
        ({"LAMEDUCK_INIT": "auto"}, [*SERVE, "--init", "off"], False),
    ],
)
def test_the_env_var_and_the_flag(env: dict[str, str], argv: list[str], expected: bool) -> None:
    assert pid1.wants_init(1, argv, env) is expected


def test_the_setting_is_a_row_of_the_table_with_the_env_var_the_init_reads() -> None:
    setting = BY_NAME["init"]
    assert (setting.flag, setting.env, setting.default, setting.allowed) == (
        "--init",
        pid1.INIT_ENV,
        "auto",
        "auto|off",
    )
    assert Settings.load().init == "auto"
    assert Settings.load({"init": "OFF"}).init == "off"
    assert Settings.load({}, {"LAMEDUCK_INIT": "off"}).init == "off"
    with pytest.raises(ConfigError, match=r"--init: must be auto\|off \(got 'banana'\)"):
        Settings.load({"init": "banana"})


@pytest.mark.parametrize(
    "orig_argv",
    [
        ["python3", "-m", "lameduck", "serve", "a:b"],  # python -m lameduck
        ["/venv/bin/python", "/venv/bin/lameduck", "work", "t:w"],  # the console script, run by its shebang
        ["python3", "-X", "dev", "-c", "code", "serve"],  # python -c, interpreter options kept
    ],
)
def test_the_child_runs_the_same_command_line_with_the_same_interpreter(orig_argv: list[str]) -> None:
    assert pid1.child_command("/usr/bin/python3", orig_argv) == ["/usr/bin/python3", *orig_argv[1:]]


# Linux wait statuses: exit code N is N << 8; death by signal N is N (| 0x80 with a core dump).
@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (0, 0),
        (1 << 8, 1),
        (2 << 8, 2),
        (3 << 8, 3),
        (255 << 8, 255),
        (int(signal.SIGTERM), 143),
        (int(signal.SIGKILL), 137),
        (int(signal.SIGINT), 130),
        (int(signal.SIGSEGV) | 0x80, 128 + signal.SIGSEGV),
    ],
)
def test_the_exit_code_is_the_childs_or_128_plus_the_signal(status: int, expected: int) -> None:
    assert pid1.exit_code(status) == expected


def test_a_child_that_cannot_start_is_a_startup_failure() -> None:
    assert pid1.SPAWN_FAILED == ExitCode.STARTUP_FAILED


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (SERVE, {}, ("text", "info")),
        ([*SERVE, "--log-format", "json"], {}, ("json", "info")),
        ([*SERVE, "--log-format=JSON", "--log-level", "warning"], {}, ("json", "warning")),
        (SERVE, {"LAMEDUCK_LOG_FORMAT": "json", "LAMEDUCK_LOG_LEVEL": "debug"}, ("json", "debug")),
        ([*SERVE, "--log-format", "text"], {"LAMEDUCK_LOG_FORMAT": "json"}, ("text", "info")),
        ([*SERVE, "--log-format", "yaml", "--log-level", "loud"], {}, ("text", "info")),  # the child reports it
    ],
)
def test_the_init_logs_as_the_service_will(argv: list[str], env: dict[str, str], expected: tuple[str, str]) -> None:
    assert pid1.log_options(argv, env) == expected


def test_every_forwarded_signal_is_also_blocked_and_sigchld_too() -> None:
    assert set(pid1.HANDLED) == {*pid1.FORWARDED, signal.SIGCHLD}
    assert {signal.SIGTERM, signal.SIGINT}.issubset(pid1.FORWARDED)
    assert signal.SIGKILL not in pid1.HANDLED


def test_the_terminal_signals_that_stop_a_background_process_are_blocked_never_taken() -> None:
    assert set(pid1.TERMINAL_STOPS) == {signal.SIGTTIN, signal.SIGTTOU}
    assert not set(pid1.TERMINAL_STOPS) & set(pid1.HANDLED)
    assert set(pid1.ENDING) == {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT}
    assert set(pid1.ENDING).issubset(pid1.FORWARDED)


def test_no_terminal_is_handed_over_when_stdin_is_none_or_not_ours() -> None:
    read, write = os.pipe()
    master, slave = pty.openpty()  # a terminal, but not this process's controlling terminal
    try:
        with open(os.devnull) as devnull:
            for fd in (read, devnull.fileno(), slave, 12345):  # a pipe, /dev/null, someone else's terminal, closed
                assert pid1.hand_terminal(os.getpgrp(), fd) is False
    finally:
        for fd in (read, write, master, slave):
            os.close(fd)


# Run with the pseudo-terminal as its stdin and controlling terminal (setsid --ctty), so its group has the
# foreground; SIGTTOU blocked, as supervise() blocks it.
HANDOVER = """
import os, signal
from lameduck.runtime import pid1
signal.pthread_sigmask(signal.SIG_BLOCK, pid1.TERMINAL_STOPS)
child = os.posix_spawn("/bin/sleep", ["sleep", "30"], dict(os.environ), setpgroup=0)
try:
    print(pid1.hand_terminal(child), os.tcgetpgrp(0) == child, pid1.hand_terminal(os.getpgrp()))
finally:
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
"""


@pytest.mark.skipif(shutil.which("setsid") is None, reason="needs setsid (util-linux)")
def test_a_terminal_whose_foreground_is_the_inits_goes_to_the_childs_group() -> None:
    master, slave = pty.openpty()
    try:
        done = subprocess.run(
            ["setsid", "--ctty", sys.executable, "-c", HANDOVER],
            stdin=slave,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        os.close(slave)
        os.close(master)
    assert done.returncode == 0, done.stderr
    # Handed over; then the caller's group is in the background and cannot take it back (it is not its to give).
    assert done.stdout.split() == ["True", "True", "False"]
