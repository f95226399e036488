"""Benchmark 8: ``lameduck serve`` as PID 1 of a fresh PID namespace (a container without an init), with its init
(the default when it is PID 1) against ``--init off`` (the service itself is PID 1) and a bare Python as PID 1.

Every run is ``unshare --fork --pid --mount-proc --kill-child CMD`` (pinned to the servers' CPU when taskset and
two CPUs exist); the namespace's PID 1 is found from outside as unshare's only child. The app is ``app`` below
(plain ASGI: ``/pid``, ``/orphans``, ``/states``, ``/zombies``, as in tests/apps/pid1_app.py but with orphans
released on cue), served with ``--lame-duck 0 --log-format json``. Measured:

1. **RSS of PID 1**: VmRSS of the init (``lameduck/runtime/pid1.py``, re-executed lean) 1 s after the service
   answered, against ``python -c 'import time; time.sleep(60)'`` as PID 1 started the same way (the least a Python
   PID 1 holds). The service's own VmRSS is reported beside it.
2. **SIGTERM → exit** of the whole container, idle service: ``os.kill(PID 1, SIGTERM)`` from outside (as containerd
   sends it) until ``waitpid`` on unshare returns (a thread blocked in it, as in ``sigterm_exit``); init vs
   ``--init off``, trials rotating. The init's cost: the difference of the medians, and their ratio.
3. **Signal forwarding**: from the same ``kill`` to the arrival of the service's ``lameduck.phase.draining`` line on
   the stderr pipe (read by a thread, each chunk timestamped as ``os.read`` returns), init vs ``--init off``;
   and, with the init, to its ``lameduck.init.forwarded`` line.
4. **Zombie reaping**: ``GET /orphans?n=N&fifo=PATH`` starts N ``cat FIFO`` processes behind a shell that exits at
   once (so they are re-parented to PID 1) and answers once each of them has the FIFO open. The benchmark holds the
   FIFO's only writer; closing it releases all N at the same instant (EOF). From that instant it polls ``/states``
   every 5 ms until every orphan is gone from /proc (reaped). With ``--init off`` they exit and stay zombies: the
   time until all have exited, and the zombie count 1 s after the release (the baseline that shows the measurement
   can fail).

Every process is started here and ended by PID in ``finally``; every wait is bounded in time and count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import common
from bench.common import BenchError, ExitWatch, Result

NAME = "pid1"
APP = "bench.pid1:app"
UNSHARE = ("unshare", "--fork", "--pid", "--mount-proc", "--kill-child")
SERVE_FLAGS = ("--lame-duck", "0", "--log-format", "json")
SLEEP_SCRIPT = "import time; time.sleep(60)"

INIT = "init"
OFF = "off"
SLEEP = "sleep"
LABELS = {
    INIT: "lameduck serve as PID 1 (init auto)",
    OFF: "lameduck serve --init off (the service is PID 1)",
    SLEEP: "python sleep as PID 1",
}

#: VmRSS of the init ÷ a bare ``python -c 'import time; time.sleep(60)'`` PID 1. The lean init is that interpreter
#: plus logging, json and lameduck's events module (measured ~1.45x: 12.6 vs 8.6 MiB); 1.6 leaves ~10 % margin.
TARGET_RSS_RATIO = 1.6
#: What the init may add to SIGTERM → exit (difference of the medians): one sigtimedwait wake-up, one kill, one more
#: process to reap, one small interpreter's exit. Measured +4..7 ms on a figure whose samples spread 28..68 ms
#: (interpreter and namespace teardown); 15 ms leaves room for that spread, and is nothing to a grace period.
TARGET_EXIT_ADDED_MS = 15.0
#: What the init may add to SIGTERM → the service's draining line (difference of the medians): one sigtimedwait
#: return and one kill, tens of microseconds; measured +0.1..0.5 ms, samples spread 0.6..1.7 ms (the pipe reader's
#: wake-up), hence 2 ms.
TARGET_FORWARD_ADDED_MS = 2.0
#: Every orphan reaped this soon after its release...
TARGET_REAP_S = 1.0
#: ...and the median no later than this after the median time the same orphans take just to exit without an init
#: (PID 1 reaps on each SIGCHLD: reaping should add nothing but the poll's resolution, 5 ms plus one request).
TARGET_REAP_ADDED_MS = 25.0

#: Pause between "the service answered" and the VmRSS reading (and the SIGTERM): startup's garbage settles.
SETTLE = 1.0
EXIT_TIMEOUT = 15.0
POLL = 0.005
#: Longest wait for every orphan to be reaped (init), or to have exited (--init off).
ZOMBIE_TIMEOUT = 5.0


def unshare_problem() -> str | None:
    """Why PID namespaces cannot be used here, or None when ``unshare --fork --pid --mount-proc true`` works."""
    if shutil.which("unshare") is None:
        return "unshare is not on PATH (util-linux)"
    try:
        probe = subprocess.run([*UNSHARE[:4], "true"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unshare failed: {exc}"
    if probe.returncode != 0:
        return f"this machine does not allow PID namespaces: {probe.stderr.strip() or probe.returncode}"
    return None


# -- a PID namespace and its output -----------------------------------------------------------------------------


class Output(threading.Thread):
    """Reads a pipe until EOF with ``os.read``; each line is stored with the ``perf_counter`` instant it arrived."""

    def __init__(self, fd: int) -> None:
        super().__init__(name=f"pid1-output-{fd}", daemon=True)
        self.fd = fd
        self.lines: list[tuple[float, str]] = []
        self._partial = b""
        self.start()

    def run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            now = time.perf_counter()
            if not chunk:
                return
            *done, self._partial = (self._partial + chunk).split(b"\n")
            self.lines.extend((now, line.decode(errors="replace")) for line in done)

    def arrival(self, event: str, after: float) -> float | None:
        """When the first JSON line of ``event`` arrived at or after ``after``."""
        for at, line in list(self.lines):
            if at < after or not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError):
                if json.loads(line).get("event") == event:
                    return at
        return None

    def tail(self, limit: int = 2000) -> str:
        return "\n".join(line for _, line in self.lines)[-limit:]


@dataclass
class Namespace:
    variant: str
    proc: subprocess.Popen[bytes]
    output: Output
    port: int | None
    command: list[str]
    pid1: int = 0
    service: int | None = None  # host PID of the service, when it is not PID 1


def children_of(pid: int) -> list[int]:
    """Host PIDs whose parent is ``pid`` (from /proc/*/stat)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        with contextlib.suppress(ValueError, IndexError):
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry))
    return sorted(found)


def vmrss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def namespace_command(variant: str, port: int) -> list[str]:
    if variant == SLEEP:
        inner = [sys.executable, "-c", SLEEP_SCRIPT]
    else:
        extra = ("--init", "off") if variant == OFF else ()
        inner = [*common.lameduck_executable(), "serve", APP, "--host", common.HOST, "--port", str(port)]
        inner += [*SERVE_FLAGS, *extra]
    return [*common.pin(common.SERVER_CPU), *UNSHARE, *inner]


def shown_command(variant: str) -> str:
    if variant == SLEEP:
        return f"{' '.join(UNSHARE)} python -c {shlex.quote(SLEEP_SCRIPT)}"
    extra = " --init off" if variant == OFF else ""
    return f"{' '.join(UNSHARE)} lameduck serve {APP} --host {common.HOST} --port P {' '.join(SERVE_FLAGS)}{extra}"


def get(port: int, path: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(f"http://{common.HOST}:{port}{path}", timeout=timeout) as response:
        return str(response.read().decode())


def _spawn(variant: str) -> Namespace:
    port = common.free_port()
    command = namespace_command(variant, port)
    proc = subprocess.Popen(
        command, cwd=common.REPO, env=common.child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    return Namespace(variant, proc, Output(proc.stdout.fileno()), None if variant == SLEEP else port, command)


def _wait_ready(ns: Namespace) -> None:
    """Until the namespace's PID 1 runs what it should (and the service answers ``/pid``); bounded."""
    deadline = time.monotonic() + common.READY_TIMEOUT
    while True:
        if ns.proc.poll() is not None:
            raise BenchError(f"{ns.variant}: unshare exited with {ns.proc.returncode}: {ns.output.tail()}")
        if time.monotonic() > deadline:
            raise BenchError(f"{ns.variant}: not ready within {common.READY_TIMEOUT:g} s: {ns.output.tail()}")
        kids = children_of(ns.proc.pid)
        if kids:
            ns.pid1 = kids[0]
        # unshare's forked child has unshare's command line until it execs: wait for the interpreter's own
        if ns.pid1 and ns.port is None and cmdline(ns.pid1).startswith(f"{sys.executable} -c "):
            return
        if ns.pid1 and ns.port is not None:
            try:
                answer = get(ns.port, "/pid", timeout=1.0)
            except (OSError, urllib.error.URLError):
                answer = ""
            if answer:
                expected = "2" if ns.variant == INIT else "1"
                if answer != expected:
                    raise BenchError(f"{ns.variant}: the service is PID {answer} in the namespace, not {expected}")
                if ns.variant == INIT:
                    if "lameduck/runtime/pid1.py" not in cmdline(ns.pid1):
                        raise BenchError(f"PID 1 is not the lean init: {cmdline(ns.pid1)!r}")
                    service = children_of(ns.pid1)
                    if len(service) != 1:
                        raise BenchError(f"the init has children {service}, not one service")
                    ns.service = service[0]
                return
        time.sleep(0.02)


def _stop(ns: Namespace) -> None:
    """SIGKILL the namespace's PID 1 and unshare by PID if still running, reap unshare, end the reader."""
    try:
        if ns.proc.poll() is None:  # unshare not reaped: its children's PIDs cannot have been reused
            for pid in children_of(ns.proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                ns.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            ns.proc.wait(timeout=common.REAP_TIMEOUT)
    finally:
        ns.output.join(common.REAP_TIMEOUT)
        if ns.proc.stdout is not None:
            ns.proc.stdout.close()


@contextlib.contextmanager
def namespace(variant: str) -> Iterator[Namespace]:
    """A fresh PID namespace running ``variant``, ready; killed by PID on the way out."""
    last: Exception | None = None
    for _attempt in range(3):  # a free port can be taken before the bind: retry a few times
        ns = _spawn(variant)
        try:
            _wait_ready(ns)
        except BenchError as exc:
            last = exc
            _stop(ns)
            continue
        try:
            yield ns
        finally:
            _stop(ns)
        return
    raise BenchError(f"could not start {variant}: {last}")


# -- the app the namespace serves (``lameduck serve bench.pid1:app``) -------------------------------------------


def _state(pid: str) -> str:
    """The state letter of ``pid`` in /proc (the namespace's, with --mount-proc); ``-`` once it is reaped."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return "-"


def _zombies() -> int:
    return sum(1 for pid in os.listdir("/proc") if pid.isdigit() and _state(pid) == "Z")


def _holds(pid: str, path: str) -> bool:
    """Whether ``pid`` has ``path`` open."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                return True
    return False


def _orphans(n: int, fifo: str, timeout: float = 10.0) -> str:
    """Start ``n`` ``cat FIFO`` orphans (their shell exits at once; nothing reaps them but PID 1); return their PIDs
    once every one has the FIFO open, i.e. is blocked reading it until its last writer closes."""
    script = 'i=0; while [ "$i" -lt "$1" ]; do cat "$2" </dev/null >/dev/null 2>&1 & echo $!; i=$((i + 1)); done'
    done = subprocess.run(
        ["sh", "-c", script, "sh", str(n), fifo], capture_output=True, text=True, check=True, timeout=timeout
    )
    pids = done.stdout.split()
    deadline = time.monotonic() + timeout
    waiting = list(pids)
    while waiting:
        waiting = [pid for pid in waiting if not _holds(pid, fifo)]
        if waiting and time.monotonic() > deadline:
            raise RuntimeError(f"{len(waiting)} orphans did not open {fifo} within {timeout:g} s")
        if waiting:
            time.sleep(0.005)
    return ",".join(pids)


async def _text(send: Any, status: int, body: str) -> None:
    data = body.encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    query = {k: v[0] for k, v in urllib.parse.parse_qs(scope.get("query_string", b"").decode()).items()}
    path = scope["path"]
    if path == "/pid":
        await _text(send, 200, str(os.getpid()))
    elif path == "/orphans":
        pids = await asyncio.to_thread(_orphans, int(query.get("n", "1")), query["fifo"])
        await _text(send, 200, pids)
    elif path == "/states":
        await _text(send, 200, ",".join(_state(pid) for pid in query.get("pids", "").split(",") if pid))
    elif path == "/zombies":
        await _text(send, 200, str(_zombies()))
    else:
        await _text(send, 404, "not found")


# -- measurements -----------------------------------------------------------------------------------------------


@dataclass
class Trial:
    pid1_mib: float
    service_mib: float | None = None
    exit_ms: float | None = None
    draining_ms: float | None = None
    forwarded_ms: float | None = None
    returncode: int | None = None


def measure_once(variant: str, *, settle: float = SETTLE) -> Trial:
    """One namespace: VmRSS of PID 1 after ``settle``; for the service variants also SIGTERM → exit."""
    with namespace(variant) as ns:
        time.sleep(settle)
        trial = Trial(vmrss_kib(ns.pid1) / 1024)
        if ns.service is not None:
            trial.service_mib = vmrss_kib(ns.service) / 1024
        elif variant == OFF:
            trial.service_mib = trial.pid1_mib
        if variant == SLEEP:
            return trial
        watch = ExitWatch(ns.proc)
        sent = time.perf_counter()
        os.kill(ns.pid1, signal.SIGTERM)
        if not watch.join(EXIT_TIMEOUT) or watch.exited_at is None:
            raise BenchError(f"{variant}: no exit within {EXIT_TIMEOUT:g} s of SIGTERM: {ns.output.tail()}")
        trial.exit_ms = (watch.exited_at - sent) * 1000
        trial.returncode = watch.returncode
        ns.output.join(common.REAP_TIMEOUT)  # EOF: every writer of the pipe has exited
        draining = ns.output.arrival("lameduck.phase.draining", sent)
        forwarded = ns.output.arrival("lameduck.init.forwarded", sent)
        trial.draining_ms = None if draining is None else (draining - sent) * 1000
        trial.forwarded_ms = None if forwarded is None else (forwarded - sent) * 1000
        if draining is None:
            raise BenchError(f"{variant}: no lameduck.phase.draining line after SIGTERM: {ns.output.tail()}")
        return trial


@dataclass
class Reaping:
    orphans: int
    exited_s: float | None = None  # --init off: release → every orphan a zombie (exited, not reaped)
    reaped_s: float | None = None  # init: release → every orphan gone from /proc
    max_zombies_seen: int = 0
    zombies_after: int | None = None  # /zombies at the end (init: once all were reaped; off: 1 s after the release)
    polls: int = 0
    poll_ms: float = 0.0  # the longest /states request: the figure's resolution, with POLL


def reap_once(variant: str, *, orphans: int) -> Reaping:
    """``orphans`` orphans released at one instant (see the module doc); how long until PID 1 has reaped them all."""
    with tempfile.TemporaryDirectory(prefix="lameduck-bench-pid1-") as tmp, namespace(variant) as ns:
        assert ns.port is not None
        fifo = os.path.realpath(os.path.join(tmp, "release"))
        os.mkfifo(fifo)
        writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # the only writer: the orphans wait on it
        hold: int | None = writer
        try:
            pids = get(ns.port, f"/orphans?n={orphans}&fifo={urllib.parse.quote(fifo)}", timeout=30.0)
            out = Reaping(orphans=len(pids.split(",")))
            if out.orphans != orphans:
                raise BenchError(f"{variant}: asked for {orphans} orphans, got {out.orphans}")
            released = time.perf_counter()
            os.close(writer)  # EOF for every orphan at once
            hold = None
            while True:  # bounded: ZOMBIE_TIMEOUT
                asked = time.perf_counter()
                states = get(ns.port, f"/states?pids={pids}").split(",")
                now = time.perf_counter()
                out.polls += 1
                out.poll_ms = max(out.poll_ms, (now - asked) * 1000)
                out.max_zombies_seen = max(out.max_zombies_seen, states.count("Z"))
                if all(state == "-" for state in states):
                    out.reaped_s = now - released
                    break
                if variant == OFF and all(state in ("Z", "-") for state in states):
                    out.exited_s = now - released
                    break  # all have exited; nobody will reap them
                if now - released > ZOMBIE_TIMEOUT:
                    break
                time.sleep(POLL)
            if variant == OFF:
                time.sleep(max(0.0, released + TARGET_REAP_S - time.perf_counter()))
            out.zombies_after = int(get(ns.port, "/zombies"))
            return out
        finally:
            if hold is not None:
                os.close(hold)


# -- the benchmark ----------------------------------------------------------------------------------------------


def _ms(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def run(*, trials: int = 9, zombie_trials: int = 3, orphans: int = 200, log=print) -> Result:
    began = time.perf_counter()
    problem = unshare_problem()
    if problem is not None:
        raise BenchError(f"cannot run: {problem}")
    results: dict[str, list[Trial]] = {INIT: [], OFF: [], SLEEP: []}
    rotations = [(INIT, OFF, SLEEP), (OFF, SLEEP, INIT), (SLEEP, INIT, OFF)]
    for i in range(trials):
        for variant in rotations[i % 3]:
            t = measure_once(variant)
            results[variant].append(t)
            extra = (
                "" if t.exit_ms is None else f", SIGTERM → exit {t.exit_ms:.1f} ms, → draining {t.draining_ms:.1f} ms"
            )
            log(f"  pid1 trial {i + 1}/{trials} {variant:>5}: PID 1 VmRSS {t.pid1_mib:.1f} MiB{extra}")
    reaping: dict[str, list[Reaping]] = {INIT: [], OFF: []}
    for i in range(zombie_trials):
        for variant in (INIT, OFF) if i % 2 == 0 else (OFF, INIT):
            r = reap_once(variant, orphans=orphans)
            reaping[variant].append(r)
            shown = (
                f"all reaped {r.reaped_s * 1000:.1f} ms after the release"
                if r.reaped_s is not None
                else (
                    f"all exited {r.exited_s * 1000:.1f} ms after the release, none reaped"
                    if r.exited_s is not None
                    else "NOT all exited or reaped"
                )
            )
            log(f"  pid1 zombies {i + 1}/{zombie_trials} {variant:>5}: {shown}; {r.zombies_after} zombies after")

    def med(variant: str, attr: str) -> float:
        values = [getattr(t, attr) for t in results[variant] if getattr(t, attr) is not None]
        if not values:
            raise BenchError(f"{variant}: no {attr} measured")
        return common.median(values)

    rss = {v: med(v, "pid1_mib") for v in results}
    service_rss = med(INIT, "service_mib")
    exit_ms = {v: med(v, "exit_ms") for v in (INIT, OFF)}
    exits = {v: [t.exit_ms for t in results[v] if t.exit_ms is not None] for v in (INIT, OFF)}
    drain_ms = {v: med(v, "draining_ms") for v in (INIT, OFF)}
    forwarded = [t.forwarded_ms for t in results[INIT] if t.forwarded_ms is not None]
    r_rss = common.ratio(rss[INIT], rss[SLEEP])
    exit_added = exit_ms[INIT] - exit_ms[OFF]
    drain_added = drain_ms[INIT] - drain_ms[OFF]
    reaped = [r.reaped_s for r in reaping[INIT]]
    reap_worst = max((r for r in reaped if r is not None), default=None)
    all_reaped = (
        bool(reaped) and all(r is not None for r in reaped) and all(r.zombies_after == 0 for r in reaping[INIT])
    )
    left = [r.zombies_after for r in reaping[OFF]]
    exited = [r.exited_s for r in reaping[OFF] if r.exited_s is not None]
    counted = [n for n in left if n is not None]
    codes = {v: sorted({t.returncode for t in results[v] if t.returncode is not None}) for v in (INIT, OFF)}

    ok_rss = r_rss is not None and r_rss <= TARGET_RSS_RATIO
    ok_exit = exit_added <= TARGET_EXIT_ADDED_MS
    ok_forward = drain_added <= TARGET_FORWARD_ADDED_MS
    reap_med_ms = 1000 * common.median([r for r in reaped if r is not None]) if reap_worst is not None else None
    exit_med_ms = 1000 * common.median(exited) if exited else None
    ok_reap = (
        all_reaped
        and reap_worst is not None
        and reap_worst <= TARGET_REAP_S
        and reap_med_ms is not None
        and exit_med_ms is not None
        and reap_med_ms - exit_med_ms <= TARGET_REAP_ADDED_MS
    )
    baseline_valid = bool(left) and all(n is not None and n >= orphans for n in left)
    clean_exits = codes[INIT] == [0] and codes[OFF] == [0]

    commands = {
        "init": shown_command(INIT),
        "init off": shown_command(OFF),
        "python sleep": shown_command(SLEEP),
        "signal": "kill -TERM <host PID of the namespace's PID 1>",
        "orphans": f"GET /orphans?n={orphans}&fifo=F (starts {orphans} orphans running cat F), close the only writer "
        f"of F, then GET /states?pids=... every {POLL * 1000:g} ms, then GET /zombies",
    }
    rows = [
        {
            "measure": "VmRSS of PID 1 (the lean init), 1 s after the service answered",
            "lameduck": f"{rss[INIT]:.1f} MiB (the service beside it: {service_rss:.1f} MiB)",
            "baseline": f"python sleep as PID 1: {rss[SLEEP]:.1f} MiB",
            "ratio": r_rss,
            "target": f"≤ {TARGET_RSS_RATIO:g}x: the lean init is that interpreter plus logging and lameduck's events "
            "module, nothing else",
            "passed": ok_rss,
            "commands": ["init", "python sleep"],
        },
        {
            "measure": "SIGTERM to PID 1 from outside → unshare exits (idle service, --lame-duck 0)",
            "lameduck": f"{exit_ms[INIT]:.1f} ms (init adds {exit_added:+.1f} ms)",
            "baseline": f"--init off: {exit_ms[OFF]:.1f} ms",
            "ratio": common.ratio(exit_ms[INIT], exit_ms[OFF]),
            "target": f"init adds ≤ {TARGET_EXIT_ADDED_MS:g} ms: one wake-up, one kill, one more process to reap",
            "passed": ok_exit,
            "commands": ["init", "init off", "signal"],
        },
        {
            "measure": "SIGTERM to PID 1 → the service's lameduck.phase.draining line arrives",
            "lameduck": f"{drain_ms[INIT]:.2f} ms (init adds {drain_added:+.2f} ms; its init.forwarded line: "
            f"{common.median(forwarded) if forwarded else float('nan'):.2f} ms)",
            "baseline": f"--init off: {drain_ms[OFF]:.2f} ms",
            "ratio": common.ratio(drain_ms[INIT], drain_ms[OFF]),
            "target": f"init adds ≤ {TARGET_FORWARD_ADDED_MS:g} ms: forwarding is one sigtimedwait return and one kill",
            "passed": ok_forward,
            "commands": ["init", "init off", "signal"],
        },
        {
            "measure": f"{orphans} orphans released at one instant → every one reaped (0 zombies)",
            "lameduck": (
                f"all reaped {reap_med_ms:.1f} ms median, {1000 * reap_worst:.1f} ms worst, after the release; "
                f"zombies after: {[r.zombies_after for r in reaping[INIT]]}"
                if reap_worst is not None and reap_med_ms is not None
                else f"NOT all reaped within {ZOMBIE_TIMEOUT:g} s"
            ),
            "baseline": f"--init off: all exited {common.fmt(exit_med_ms, 1)} ms median after the release, none "
            f"reaped: {left} zombies {TARGET_REAP_S:g} s after it",
            "ratio": common.ratio(reap_med_ms, exit_med_ms),
            "target": f"worst ≤ {TARGET_REAP_S:g} s, 0 left, median ≤ the orphans' own exit time without an init + "
            f"{TARGET_REAP_ADDED_MS:g} ms: PID 1 reaps on every SIGCHLD (resolution: a {POLL * 1000:g} ms pause plus "
            "one /states request, see the notes)",
            "passed": ok_reap,
            "commands": ["init", "init off", "orphans"],
        },
    ]
    notes = [
        f"{trials} trials per variant for RSS, exit and forwarding (fresh namespace each, order rotating), "
        f"{zombie_trials} zombie trials per variant; app {APP}; "
        + (
            f"everything in the namespace on CPU {common.SERVER_CPU} (taskset)"
            if common.pinning_available()
            else "unpinned"
        ),
        f"VmRSS of PID 1 samples (MiB): init {_ms([t.pid1_mib for t in results[INIT]])}; --init off (the service) "
        f"{_ms([t.pid1_mib for t in results[OFF]])}; python sleep {_ms([t.pid1_mib for t in results[SLEEP]])}; "
        f"the service with the init (PID 2) {_ms([t.service_mib or 0 for t in results[INIT]])}",
        f"the container with the init holds {rss[INIT] + service_rss:.1f} MiB (init + service) against "
        f"{rss[OFF]:.1f} MiB with --init off: the init's cost is {rss[INIT]:.1f} MiB, "
        f"{100 * rss[INIT] / rss[OFF]:.0f} % of the service's own",
        f"SIGTERM → exit samples (ms): init {_ms(exits[INIT])}; --init off {_ms(exits[OFF])}; p90 init "
        f"{common.p90(exits[INIT]):.1f}, --init off {common.p90(exits[OFF]):.1f}",
        f"SIGTERM → draining line samples (ms): init {_ms([t.draining_ms or 0 for t in results[INIT]])}; --init off "
        f"{_ms([t.draining_ms or 0 for t in results[OFF]])}; → init.forwarded line {_ms(forwarded)} (the line "
        "arrival includes the pipe and the reader thread's wake-up, the same for both)",
        f"exit codes: init {codes[INIT]}, --init off {codes[OFF]}",
        "zombie trials: "
        + "; ".join(
            f"init: all reaped {1000 * (r.reaped_s if r.reaped_s is not None else float('nan')):.1f} ms after the "
            f"release ({r.polls} polls of up to {r.poll_ms:.1f} ms each, at most {r.max_zombies_seen} zombies seen "
            "in one)"
            for r in reaping[INIT]
        )
        + "; "
        + "; ".join(
            f"--init off: all exited {1000 * (r.exited_s if r.exited_s is not None else float('nan')):.1f} ms after "
            f"the release ({r.polls} polls of up to {r.poll_ms:.1f} ms each), {r.max_zombies_seen} of {r.orphans} "
            f"zombies seen by /states, {r.zombies_after} in the namespace 1 s after the release"
            for r in reaping[OFF]
        ),
    ]
    if not baseline_valid:
        notes.append(f"UNEXPECTED: with --init off fewer than {orphans} zombies remained: {left}")
    if not clean_exits:
        notes.append(f"UNEXPECTED exit codes: {codes}")
    result = Result(
        name=NAME,
        title=f"lameduck serve as a container's PID 1: init RSS, SIGTERM → exit, signal forwarding, {orphans} orphans",
        target=f"RSS ≤ {TARGET_RSS_RATIO:g}x python; exit +≤ {TARGET_EXIT_ADDED_MS:g} ms; forward +≤ "
        f"{TARGET_FORWARD_ADDED_MS:g} ms; reaped ≤ {TARGET_REAP_S:g} s and ≤ exit + {TARGET_REAP_ADDED_MS:g} ms",
        unit="MiB",
        lameduck=rss[INIT],
        bare=rss[SLEEP],
        ratio=r_rss,
        passed=ok_rss and ok_exit and ok_forward and ok_reap and baseline_valid and clean_exits,
        lameduck_cell=(
            f"init {rss[INIT]:.1f} MiB; exit {exit_ms[INIT]:.0f} ms ({exit_added:+.1f}); "
            f"forward {drain_added:+.2f} ms; "
            + (f"{orphans} reaped ≤ {1000 * reap_worst:.0f} ms" if reap_worst is not None else "NOT reaped")
        ),
        bare_cell=f"python sleep {rss[SLEEP]:.1f} MiB; --init off: exit {exit_ms[OFF]:.0f} ms, "
        f"{min(counted, default=0)} zombies left",
        samples={
            "init exit ms": exits[INIT],
            "off exit ms": exits[OFF],
        },
        notes=notes,
        commands=commands,
        details={
            "rows": rows,
            "trials": {v: [t.__dict__ for t in ts] for v, ts in results.items()},
            "reaping": {v: [r.__dict__ for r in rs] for v, rs in reaping.items()},
        },
    )
    result.seconds = time.perf_counter() - began
    return result
