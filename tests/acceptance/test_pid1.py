"""Acceptance: lameduck as PID 1 of a PID namespace (``unshare --fork --pid --mount-proc``), as in a container.

The CLI (``python -m lameduck serve|work``) as PID 1 becomes the init (lameduck.runtime.pid1): the service runs
as its child (PID 2), orphaned zombies are reaped, signals sent to PID 1 from outside the namespace (as containerd
and the kubelet send them) reach the service exactly once, and the service's exit code is the process's. Given a
terminal (a pseudo-terminal, as ``docker run -it`` gives PID 1), the init hands it to the service, which can read
it and gets the terminal's Ctrl-C once, from the kernel. With ``--init off`` the service itself is PID 1; its exit
code still does not depend on that (uvicorn's does: 143, or 0 as PID 1), but nobody reaps zombies: the test that
shows it proves the other tests can fail.
"""

from __future__ import annotations

import os
import pty
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.test_work import CASES, Env
from tests.conftest import REPO, Service, free_port

pytestmark = pytest.mark.acceptance

#: --kill-child: if the test kills unshare (by PID, in teardown), the kernel takes the whole namespace with it.
UNSHARE = ["unshare", "--fork", "--pid", "--mount-proc", "--kill-child"]
LAMEDUCK = [sys.executable, "-m", "lameduck"]
APP = "tests.apps.pid1_app:app"


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--fork", "--pid", "--mount-proc", "true"], capture_output=True, check=False, timeout=30
    )
    return probe.returncode == 0


needs_pid_namespace = pytest.mark.skipif(
    not _unshare_works(), reason="this machine does not allow PID namespaces (unshare --pid)"
)


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMEDUCK_")}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def children_of(pid: int) -> list[int]:
    """Host PIDs whose parent is ``pid`` (from /proc/*/stat: works without CONFIG_PROC_CHILDREN)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def namespace_init(unshare_pid: int, timeout: float = 10.0) -> int:
    """The host PID of the namespace's PID 1: the child ``unshare --fork`` started."""
    deadline = time.monotonic() + timeout
    while not (found := children_of(unshare_pid)):
        assert time.monotonic() < deadline, f"unshare ({unshare_pid}) started no child within {timeout} s"
        time.sleep(0.02)
    return found[0]


def get(port: int, path: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
        return str(response.read().decode())


def wait_states(port: int, pids: str, done: Callable[[list[str]], bool], timeout: float = 5.0) -> list[str]:
    """Poll ``/states`` until ``done(states)``; fail with the last states after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        states = get(port, f"/states?pids={pids}").split(",")
        if done(states):
            return states
        assert time.monotonic() < deadline, f"orphans {pids} still in states {states} after {timeout} s"
        time.sleep(0.05)


def wait_stdout(service: Service, line: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while line not in service.stdout:
        assert time.monotonic() < deadline, f"no {line!r} on stdout within {timeout} s:\n{service.log_text()}"
        time.sleep(0.01)


class Request(threading.Thread):
    """A GET in the background; ``body`` is the answer, or the exception's text."""

    def __init__(self, port: int, path: str) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.body = port, path, ""

    def run(self) -> None:
        try:
            self.body = get(self.port, self.path, timeout=30)
        except Exception as exc:  # the test asserts on the text
            self.body = f"failed: {exc!r}"


@pytest.fixture
def in_namespace(serve: Any) -> Iterator[Callable[..., Service]]:
    """``in_namespace("serve", APP, "--grace", "10")``: ``python -m lameduck ...`` as PID 1 of a new PID namespace,
    JSON logs, port 0. The namespace's PID 1 is ended by PID if still there (then unshare, by the serve fixture)."""
    started: list[Service] = []

    def start(
        *args: str, env: dict[str, str] | None = None, prefix: Sequence[str] = (), launcher: Sequence[str] = LAMEDUCK
    ) -> Service:
        command = [*prefix, *UNSHARE, *launcher, *args, "--port", "0", "--log-format", "json"]
        service: Service = serve("", command=command, env=env)
        started.append(service)
        return service

    try:
        yield start
    finally:
        for service in started:
            if service.proc.poll() is None:  # unshare not reaped yet: its child's PID cannot have been reused
                for pid in children_of(service.pid):
                    os.kill(pid, signal.SIGKILL)


class Terminal:
    """A pseudo-terminal. ``prefix`` makes it the stdin and the controlling terminal of the command it precedes, in
    a session of its own whose process group (unshare's, then the init's) has its foreground: what ``docker run
    -it`` gives PID 1. ``type(b"\\x03")`` presses Ctrl-C at it: the kernel's line discipline sends SIGINT to the
    foreground process group."""

    def __init__(self) -> None:
        self.master, slave = pty.openpty()
        self.path = os.ttyname(slave)
        os.close(slave)  # the command opens it by its path; the terminal lives as long as the master is open

    @property
    def prefix(self) -> tuple[str, ...]:
        # setsid --ctty: a new session (setsid is not a group leader: no fork, so unshare keeps the Popen's PID),
        # with stdin as its controlling terminal.
        return ("sh", "-c", f'exec "$@" <"{self.path}"', "sh", "setsid", "--ctty")

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    tty = Terminal()
    try:
        yield tty
    finally:
        os.close(tty.master)


@needs_pid_namespace
def test_as_pid_1_the_cli_is_the_init_and_reaps_orphaned_zombies(in_namespace: Callable[..., Service]) -> None:
    svc = in_namespace("serve", APP)
    assert get(svc.port, "/pid") == "2"  # the service is the init's child; PID 1 is the init
    (started,) = svc.named("lameduck.init.started")
    assert started["child_pid"] == 2
    init = namespace_init(svc.pid)
    # Lean: the init re-executed itself without the CLI's imports (VmRSS ~13 MB here; ~28 MB in-process), isolated.
    _python, *options, script = Path(f"/proc/{init}/cmdline").read_text().split("\0")[:4]
    assert (options, script) == (["-I", "-S"], str(REPO / "src/lameduck/runtime/pid1.py"))
    assert started["terminal"] is False  # stdin is not a terminal here
    status = dict(line.split(":", 1) for line in Path(f"/proc/{init}/status").read_text().splitlines())
    rss_kb = int(status["VmRSS"].split()[0])
    assert rss_kb < 20_000, f"the init holds {rss_kb} kB"

    for _ in range(3):
        pids = get(svc.port, "/orphans?n=5")
        assert len(pids.split(",")) == 5
        wait_states(svc.port, pids, lambda states: all(s == "-" for s in states))  # exited and reaped
    assert get(svc.port, "/zombies") == "0"
    os.kill(init, signal.SIGTERM)
    assert svc.wait(15) == 0


@needs_pid_namespace
@pytest.mark.parametrize("how", ["flag", "env"])
def test_with_init_off_the_service_is_pid_1_and_zombies_accumulate(
    in_namespace: Callable[..., Service], how: str
) -> None:
    if how == "flag":
        svc = in_namespace("serve", APP, "--init", "off")
    else:
        svc = in_namespace("serve", APP, env={"LAMEDUCK_INIT": "off"})
    assert get(svc.port, "/pid") == "1"
    assert svc.named("lameduck.init.started") == []
    pids = get(svc.port, "/orphans?n=5")
    wait_states(svc.port, pids, lambda states: states == ["Z"] * 5)  # exited, and nobody reaps them
    time.sleep(0.3)
    assert get(svc.port, f"/states?pids={pids}") == "Z,Z,Z,Z,Z"
    assert int(get(svc.port, "/zombies")) >= 5
    os.kill(namespace_init(svc.pid), signal.SIGTERM)  # the service itself as PID 1 handles SIGTERM too
    assert svc.wait(15) == 0


@needs_pid_namespace
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_pid_1_from_outside_reaches_the_service_once_and_it_drains(
    in_namespace: Callable[..., Service], sig: signal.Signals
) -> None:
    svc = in_namespace("serve", APP, "--grace", "10")
    init = namespace_init(svc.pid)
    request = Request(svc.port, "/slow?s=1.5")
    request.start()
    wait_stdout(svc, "slow start")
    os.kill(init, sig)  # what containerd does on `docker stop` / pod deletion: a signal to the container's PID 1
    assert svc.wait(20) == 0, svc.log_text()
    request.join(10)
    assert request.body == "slow done"  # in flight at the signal: it finished
    assert [e["signal"] for e in svc.named("lameduck.init.forwarded")] == [sig.name]
    summary = svc.summary()
    assert (summary["signal"], summary["forced"], summary["exit_code"]) == (sig.name, False, 0)


@needs_pid_namespace
def test_ctrl_c_at_a_terminal_reaches_the_service_once(
    in_namespace: Callable[..., Service], terminal: Terminal
) -> None:
    """The terminal sends SIGINT to its foreground process group: the init gave it the service's, so the service
    gets it from the kernel, and the init (in another group) not at all; two SIGINTs would force the drain."""
    svc = in_namespace("serve", APP, "--grace", "10", prefix=terminal.prefix)
    assert svc.named("lameduck.init.started")[0]["terminal"] is True
    request = Request(svc.port, "/slow?s=1.5")
    request.start()
    wait_stdout(svc, "slow start")
    terminal.type(b"\x03")  # Ctrl-C
    assert svc.wait(20) == 0, svc.log_text()
    request.join(10)
    assert request.body == "slow done"
    assert svc.named("lameduck.init.forwarded") == []
    summary = svc.summary()
    assert (summary["signal"], summary["forced"]) == ("SIGINT", False)


@needs_pid_namespace
def test_at_a_terminal_the_service_can_read_it(in_namespace: Callable[..., Service], terminal: Terminal) -> None:
    """breakpoint() and input() work under ``docker run -it``: a background process group reading its terminal
    would be stopped by SIGTTIN, and the init would wait for it for ever."""
    svc = in_namespace("serve", APP, prefix=terminal.prefix)
    request = Request(svc.port, "/readline")
    request.start()
    terminal.type(b"typed at the terminal\n")
    request.join(10)
    assert request.body == "typed at the terminal", svc.log_text()
    os.kill(namespace_init(svc.pid), signal.SIGTERM)
    assert svc.wait(15) == 0, svc.log_text()
    assert svc.named("lameduck.init.child_stopped") == []


@needs_pid_namespace
def test_a_service_stopped_by_ctrl_z_is_logged_and_continued_by_sigterm(
    in_namespace: Callable[..., Service], terminal: Terminal
) -> None:
    svc = in_namespace("serve", APP, "--grace", "10", prefix=terminal.prefix)
    terminal.type(b"\x1a")  # Ctrl-Z: SIGTSTP to the service's group, which stops it; nobody there continues it
    stopped = svc.wait_event("lameduck.init.child_stopped")
    assert (stopped["signal"], stopped["child_pid"], stopped["level"]) == ("SIGTSTP", 2, "warning")
    (service_pid,) = children_of(namespace_init(svc.pid))
    assert Path(f"/proc/{service_pid}/stat").read_text().rpartition(")")[2].split()[0] == "T"  # stopped
    os.kill(namespace_init(svc.pid), signal.SIGTERM)  # forwarded, then SIGCONT: else only SIGKILL would end it
    assert svc.wait(15) == 0, svc.log_text()
    assert [e["signal"] for e in svc.named("lameduck.init.forwarded")] == ["SIGTERM"]
    assert svc.summary()["signal"] == "SIGTERM"
    assert len(svc.named("lameduck.init.child_stopped")) == 1


@needs_pid_namespace
def test_a_service_stopped_for_touching_the_terminal_it_owns_is_continued(
    in_namespace: Callable[..., Service], terminal: Terminal
) -> None:
    """A stop by SIGTTIN although the service's group has the terminal: what happens when it reads the terminal
    in the instant between its start and the handover. The init continues it (here the service sends itself
    the SIGTTIN, so that the instant is not left to chance)."""
    svc = in_namespace("serve", APP, prefix=terminal.prefix)
    assert get(svc.port, f"/signal?n={int(signal.SIGTTIN)}") == "sent"  # it runs again
    os.kill(namespace_init(svc.pid), signal.SIGTERM)
    assert svc.wait(15) == 0, svc.log_text()
    assert svc.named("lameduck.init.child_stopped") == []


@needs_pid_namespace
def test_a_signal_to_the_inits_process_group_reaches_the_service_once(in_namespace: Callable[..., Service]) -> None:
    """Without a terminal, a signal sent to the init's whole process group (``kill -INT -PGID``, as some process
    managers do) reaches unshare and the init only: the service has a group of its own, so it gets the init's
    forwarded copy only; two SIGINTs would force the drain (exit 1)."""
    svc = in_namespace("serve", APP, "--grace", "10", prefix=("setsid",))  # setsid: unshare leads a new group
    request = Request(svc.port, "/slow?s=1.5")
    request.start()
    wait_stdout(svc, "slow start")
    os.killpg(svc.pid, signal.SIGINT)
    assert svc.wait(20) == 0, svc.log_text()
    request.join(10)
    assert request.body == "slow done"
    assert [e["signal"] for e in svc.named("lameduck.init.forwarded")] == ["SIGINT"]
    assert svc.summary()["forced"] is False


@needs_pid_namespace
def test_pythonpath_cannot_shadow_the_standard_library_in_the_init(
    in_namespace: Callable[..., Service], tmp_path: Path
) -> None:
    """The init runs isolated (``-I``): a PYTHONPATH entry with a logging.py or signal.py of its own does not
    reach it. The CLI here takes the entry off sys.path before it imports anything (and so does its child, the
    same command line), so only the init would import the impostors, and fail."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    for name in ("logging", "signal"):
        (shadow / f"{name}.py").write_text(f"raise SystemExit('PYTHONPATH shadowed {name} in the init')\n")
    code = f"import sys; sys.path.remove({str(shadow)!r}); from lameduck.cli.main import entrypoint; entrypoint()"
    svc = in_namespace("serve", APP, launcher=[sys.executable, "-c", code], env={"PYTHONPATH": str(shadow)})
    assert get(svc.port, "/pid") == "2"
    assert len(svc.named("lameduck.init.started")) == 1
    os.kill(namespace_init(svc.pid), signal.SIGTERM)
    assert svc.wait(15) == 0, svc.log_text()
    assert "shadowed" not in svc.log_text()


@needs_pid_namespace
def test_a_second_sigterm_during_a_long_drain_forces(in_namespace: Callable[..., Service]) -> None:
    svc = in_namespace("serve", APP, "--grace", "60", "--drain-timeout", "40")
    init = namespace_init(svc.pid)
    request = Request(svc.port, "/slow?s=30")
    request.start()
    wait_stdout(svc, "slow start")
    os.kill(init, signal.SIGTERM)
    svc.wait_event("lameduck.phase.closing")
    time.sleep(0.3)  # well into the drain
    second = time.monotonic()
    os.kill(init, signal.SIGTERM)
    assert svc.wait(15) == 1, svc.log_text()  # the slow request was cut: aborted
    assert time.monotonic() - second < 5  # not the 40 s drain
    assert [e["signal"] for e in svc.named("lameduck.init.forwarded")] == ["SIGTERM", "SIGTERM"]
    summary = svc.summary()
    assert summary["forced"] is True
    assert summary["aborted"] == {"request": 1}


@needs_pid_namespace
def test_the_exit_code_of_an_aborted_drain_comes_through_the_init(in_namespace: Callable[..., Service]) -> None:
    svc = in_namespace("serve", APP, "--grace", "6", "--drain-timeout", "0.5")
    request = Request(svc.port, "/slow?s=30")
    request.start()
    wait_stdout(svc, "slow start")
    os.kill(namespace_init(svc.pid), signal.SIGTERM)
    assert svc.wait(15) == 1
    assert svc.summary()["aborted"] == {"request": 1}


@needs_pid_namespace
def test_an_aborted_work_run_exits_1_through_the_init(in_namespace: Callable[..., Service], tmp_path: Path) -> None:
    e = Env(CASES[0], f"sqlite:///{tmp_path}/jobs.sqlite3", f"pid1-{uuid.uuid4().hex[:8]}", tmp_path / "rec.txt")
    e.enqueue([{"n": 0, "seconds": 120}])
    svc = in_namespace(
        "work", "tests.apps.jobs_worker:worker", "--broker", e.url, "--poll-interval", "0.05",
        "--grace", "10", "--drain-timeout", "0.5",
        env={"JOBS_QUEUE": e.queue, "JOBS_RECORD": str(e.record)},
    )  # fmt: skip
    assert len(svc.named("lameduck.init.started")) == 1
    e.wait_lines("start", 1)
    os.kill(namespace_init(svc.pid), signal.SIGTERM)
    assert svc.wait(15) == 1
    assert svc.summary()["aborted"] == {"job": 1}


@needs_pid_namespace
def test_a_service_killed_by_a_signal_exits_128_plus_its_number(in_namespace: Callable[..., Service]) -> None:
    svc = in_namespace("serve", APP)
    (service_pid,) = children_of(namespace_init(svc.pid))
    os.kill(service_pid, signal.SIGKILL)  # what the OOM killer does
    assert svc.wait(15) == 128 + signal.SIGKILL
    (killed,) = svc.named("lameduck.init.child_killed")
    assert (killed["signal"], killed["exit_code"]) == ("SIGKILL", 137)


@needs_pid_namespace
@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--init", "banana"], {}, "lameduck: error: --init: must be auto|off (got 'banana')"),
        ([], {"LAMEDUCK_INIT": "banana"}, "lameduck: error: --init (LAMEDUCK_INIT): must be auto|off (got 'banana')"),
        (["--port", "99999"], {}, "lameduck: error: --port: must be 0..65535 (got '99999')"),
    ],
)
def test_invalid_settings_exit_2_with_one_line_through_the_init(
    args: list[str], env: dict[str, str], message: str
) -> None:
    cmd = [*UNSHARE, *LAMEDUCK, "serve", APP, *args]
    result = subprocess.run(cmd, cwd=REPO, env=_clean_env(env), capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2, result.stderr
    assert "lameduck.init.started" in result.stderr  # the service reported it, and the init passed the code on
    assert result.stderr.strip().splitlines()[-1] == message


@needs_pid_namespace
@pytest.mark.parametrize("args", [["budget", "--grace", "10"], ["--version"], ["serve", "--help"]])
def test_commands_that_run_no_service_run_directly_as_pid_1(args: list[str]) -> None:
    cmd = [*UNSHARE, *LAMEDUCK, *args]
    result = subprocess.run(cmd, cwd=REPO, env=_clean_env(), capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert "init" not in result.stderr
    assert result.stdout


@needs_pid_namespace
@pytest.mark.parametrize(("path", "expected"), [("/", 0), ("/hang", 1)])
def test_exit_code_is_the_same_as_pid_1(path: str, expected: int) -> None:
    """The service itself as PID 1, as with ``--init off`` or ``lameduck.run()`` from one's own script: ``main()``
    is the CLI without the init (only ``entrypoint()`` has it), so this process stays PID 1 and serves."""
    port = free_port()  # the PID namespace shares the host's network, so pick a free port
    cmd = [
        *UNSHARE,
        sys.executable,
        "-c",
        # In the namespace the server is PID 1; it serves once, then gets SIGTERM from itself via os.kill(1).
        "import os, sys, threading, time, urllib.request;"
        "from lameduck.cli.main import main;"
        "assert os.getpid() == 1, os.getpid();"
        "t = threading.Thread(target=lambda: (time.sleep(1.5),"
        f"  threading.Thread(target=lambda: urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=10),"
        "   daemon=True).start(), time.sleep(0.5), os.kill(1, 15)), daemon=True); t.start();"
        f"sys.exit(main(['serve', 'tests.apps.basic:app', '--port', '{port}', '--grace', '6',"
        " '--drain-timeout', '0.5']))",
    ]
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=REPO, env=_clean_env(), capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == expected, result.stderr
    assert time.monotonic() - started < 20
    assert "lameduck.summary" in result.stderr
    assert signal.SIGTERM.name in result.stderr
    assert "lameduck.init" not in result.stderr
