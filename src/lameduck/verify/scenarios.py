"""The conformance scenarios of ``lameduck verify``: each starts the service, loads it, signals it, judges it.

A scenario is a fresh run of the service (a signal ends it), a bounded load that is running when the signal is
sent, and a list of checks with the figures behind them. Nothing here knows how the service is built: it sees
only ports, HTTP answers, signals, exit codes and the clock, as a load balancer and the kubelet would.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from lameduck.runtime.tracking import together
from lameduck.verify.client import Connection, Failure
from lameduck.verify.samples import Sample, buckets, timed
from lameduck.verify.target import HOST, Target
from lameduck.verify.view import Lane, Marker, Span, Timeline, Verdict

#: The load's head start before the signal, so the signal lands on a busy service.
SETTLE = 0.3
#: Requests whose send began this long after the signal are "after the signal": the service needs a moment to
#: run its signal handler (a busy event loop delays it), and verify cannot see inside the service.
SIGNAL_SLACK = 0.05
#: Slice width of a scenario's timeline.
BUCKET = 0.1


@dataclass(frozen=True)
class Options:
    """What verify expects of the service; every limit has a default that fits Kubernetes' 30 s grace."""

    command: tuple[str, ...]
    ready_path: str = "/health/ready"
    live_path: str | None = "/health/live"
    path: str = "/"
    slow_path: str | None = None
    hang_path: str | None = None
    probes: bool = True
    grace: float = 30.0
    lame_duck: float = 0.0
    deadline: float | None = None  # seconds after the signal at which the service cancels what is left
    signal: signal.Signals = signal.SIGTERM
    readiness_limit: float = 1.0
    idle_limit: float = 1.0
    force_limit: float = 3.0
    tolerance: float = 2.0
    connections: int = 16
    idle_connections: int = 200
    in_flight: int = 8
    startup_timeout: float = 30.0
    env: dict[str, str] | None = None

    @property
    def kill_after(self) -> float:
        """How long after the first signal verify waits before it SIGKILLs the service, as the kubelet would."""
        return self.grace + self.tolerance


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class Result:
    name: str
    title: str
    verdict: Verdict = "N/A"
    reason: str = ""  # why N/A, or the error that stopped the scenario
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    timeline: Timeline | None = None

    def check(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append(Check(name, passed, detail))

    def judge(self) -> Result:
        if self.verdict == "N/A" and self.checks:
            self.verdict = "PASS" if all(c.passed for c in self.checks) else "FAIL"
        return self


class Run:
    """One scenario's service, clock and samples; what the scenario bodies share."""

    def __init__(self, options: Options, result: Result) -> None:
        self.options = options
        self.result = result
        self.target = Target(options.command, env=options.env)
        self.samples: list[Sample] = []
        self.origin = 0.0
        self.signal_at: float | None = None
        self.listener_closed_at: float | None = None
        self.markers: list[Marker] = []

    @property
    def port(self) -> int:
        return self.target.port

    def since_signal(self, at: float) -> float:
        assert self.signal_at is not None
        return at - self.signal_at

    def mark(self, kind: str, at: float, label: str) -> None:
        self.markers.append(Marker(t=round(at - self.origin, 4), kind=kind, lane="service", label=label))

    def send_signal(self, sig: signal.Signals | None = None, kind: str = "sigterm") -> float:
        sig = sig or self.options.signal
        at = self.target.send(sig)
        if self.signal_at is None:
            self.signal_at = at
        self.mark(kind, at, f"{sig.name} sent")
        return at

    async def wait_exit(self) -> int | None:
        """Wait until the kubelet would have SIGKILLed the service; ``None`` (and a kill) if it did not exit."""
        assert self.signal_at is not None
        left = self.signal_at + self.options.kill_after - time.perf_counter()
        code = await self.target.wait_exit(left)
        if code is None:
            await self.target.stop()
            assert self.target.exited_at is not None
            self.mark("kill", self.target.exited_at, "SIGKILL (did not exit in time)")
            return None
        assert self.target.exited_at is not None
        self.mark("exit", self.target.exited_at, f"exit {code}")
        return code

    def exit_checks(self, *, clean: bool = True) -> None:
        """The exit every scenario judges: within grace, and with the code that tells the truth."""
        options, target = self.options, self.target
        figures = self.result.figures
        if target.killed or target.exited_at is None:
            figures["exit_after_s"] = None
            figures["exit_code"] = None
            self.result.check(
                "exited within grace",
                False,
                f"still running {options.kill_after:g} s after {options.signal.name}; SIGKILLed",
            )
            return
        after = self.since_signal(target.exited_at)
        figures["exit_after_s"] = round(after, 4)
        figures["exit_code"] = target.exit_code
        self.result.check("exited within grace", after <= options.grace, f"{after:.3f} s ≤ {options.grace:g} s")
        code = describe_exit(target.exit_code)
        if clean:
            self.result.check("exit code 0", target.exit_code == 0, code)
        else:
            self.result.check("non-zero exit code (work was aborted)", target.exit_code != 0, code)

    def timeline(self) -> Timeline:
        end_at = self.target.exited_at or time.perf_counter()
        end = max(BUCKET, round(end_at - self.origin + BUCKET, 3))
        spans: list[Span] = []
        if self.signal_at is not None:
            spans.append(Span(state="serving", start=0.0, end=round(self.signal_at - self.origin, 4)))
            spans.append(
                Span(
                    state="terminating",
                    start=round(self.signal_at - self.origin, 4),
                    end=round(end_at - self.origin, 4),
                )
            )
        if self.listener_closed_at is not None and not any(m["kind"] == "listener-closed" for m in self.markers):
            self.mark("listener-closed", self.listener_closed_at, "first failed connect after the signal")
        return Timeline(
            title=self.result.title,
            bucket=BUCKET,
            end=end,
            buckets=buckets(self.samples, self.origin, BUCKET, end),
            lanes=[Lane(name="service", spans=spans)],
            markers=sorted(self.markers, key=lambda m: m["t"]),
        )


def describe_exit(code: int | None) -> str:
    """``-15`` is how Python reports "ended by SIGTERM"; people know it as 143 from shells and Kubernetes."""
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"exit code {128 - code} (ended by {name}, not by exiting)"
    return f"exit code {code}"


Body = Callable[[Run], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    body: Body
    needs: Callable[[Options], str | None]  # returns why the scenario does not apply, or None


async def _gather(*coros: Coroutine[Any, Any, Any]) -> list[Any]:
    return await together(*coros, name="lameduck.verify.load")


def _exited(run: Run) -> bool:
    return run.target.proc is not None and run.target.proc.returncode is not None


# -- the scenarios ----------------------------------------------------------------------------------------------


async def in_flight(run: Run) -> None:
    """Requests already inside the handler when the signal arrives must complete, and then the process exits."""
    options = run.options
    assert options.slow_path is not None
    conns = [Connection(HOST, run.port) for _ in range(options.in_flight)]

    async def one(conn: Connection) -> Sample:
        sample = await timed(conn, "GET", options.slow_path or "/", timeout=options.kill_after + 1)
        conn.close()
        run.samples.append(sample)
        return sample

    async def signal_after_settle() -> None:
        await asyncio.sleep(SETTLE)
        run.send_signal()

    results, _ = await _gather(_gather(*(one(c) for c in conns)), signal_after_settle())
    code = await run.wait_exit()
    assert run.signal_at is not None
    early = [s for s in results if s.done < run.signal_at]
    ok = [s for s in results if s.ok]
    figures = run.result.figures
    figures["in_flight"] = len(results)
    figures["completed"] = len(ok)
    figures["failures"] = {s.kind: sum(1 for x in results if x.kind == s.kind) for s in results if not s.ok}
    run.result.check(
        "requests were in flight at the signal",
        not early,
        f"{len(early)} of {len(results)} answered before the signal" + ("; use a slower --slow-path" if early else ""),
    )
    run.result.check("every in-flight request completed", len(ok) == len(results), f"{len(ok)}/{len(results)} 2xx")
    if ok and code is not None and run.target.exited_at is not None:
        last = max(s.done for s in ok)
        figures["exit_after_last_response_s"] = round(run.target.exited_at - last, 4)
    run.exit_checks()


async def idle_keepalive(run: Run) -> None:
    """Hundreds of idle keep-alive connections must not hold the process up."""
    options = run.options
    conns = [Connection(HOST, run.port) for _ in range(options.idle_connections)]
    gate = asyncio.Semaphore(64)

    async def prime(conn: Connection) -> bool:
        async with gate:
            sample = await timed(conn, "GET", options.path, timeout=10)
            run.samples.append(sample)
            return sample.ok and conn.open

    try:
        await _gather(*(prime(c) for c in conns))
        await asyncio.sleep(SETTLE)  # idle, not between two requests
        # Open means open now: a server with a short keep-alive timeout may have closed them meanwhile.
        opened = sum(1 for c in conns if c.open and c.reader is not None and not c.reader.at_eof())
        run.result.figures["idle_connections"] = opened
        run.send_signal()
        await run.wait_exit()
    finally:
        for conn in conns:
            conn.close()
    run.result.check(
        "idle connections were open at the signal",
        opened >= options.idle_connections * 0.9,
        f"{opened}/{options.idle_connections} still open {SETTLE:g} s after their first request",
    )
    limit = options.lame_duck + options.idle_limit
    exited_at = run.target.exited_at
    if exited_at is not None and not run.target.killed:
        after = run.since_signal(exited_at)
        run.result.check("idle connections did not delay exit", after <= limit, f"{after:.3f} s ≤ {limit:g} s")
    run.exit_checks()


async def busy_keepalive(run: Run) -> None:
    """Clients looping on keep-alive connections through the signal lose nothing and are told to close."""
    options = run.options
    stop_at = time.perf_counter() + SETTLE + options.lame_duck + options.kill_after

    async def client() -> None:
        conn = Connection(HOST, run.port)
        try:
            while time.perf_counter() < stop_at and not _exited(run):
                sample = await timed(conn, "GET", options.path, timeout=5)
                run.samples.append(sample)
                if sample.failure in (Failure.REFUSED, Failure.CONNECT_RESET, Failure.CONNECT_TIMEOUT):
                    if run.signal_at is not None:
                        run.listener_closed_at = run.listener_closed_at or sample.done
                        return
                    await asyncio.sleep(0.01)
        finally:
            conn.close()

    async def signal_after_settle() -> None:
        await asyncio.sleep(SETTLE)
        run.send_signal()
        await run.wait_exit()

    await _gather(*(client() for _ in range(options.connections)), signal_after_settle())
    assert run.signal_at is not None
    signal_at = run.signal_at
    answered = [s for s in run.samples if s.answered and s.done >= signal_at]
    lost = [s for s in run.samples if s.lost]
    # The service needs a moment to run its signal handler (longer on a busy machine), and verify cannot see
    # inside it: the window starts at the first response that says Connection: close; every response to a
    # request sent after that one must say it too, and that first one must come promptly.
    first = min((s for s in answered if s.closes), key=lambda s: s.began, default=None)
    later = [s for s in answered if first is not None and s.began >= first.began]
    closing = [s for s in later if s.closes]
    figures = run.result.figures
    figures["requests"] = len(run.samples)
    figures["answered_after_signal"] = len(answered)
    figures["lost"] = len(lost)
    figures["lost_by_kind"] = {k: sum(1 for s in lost if s.kind == k) for k in sorted({s.kind for s in lost})}
    figures["connection_close_share"] = round(len(closing) / len(later), 4) if later else None
    figures["connection_close_after_s"] = round(first.began - signal_at, 4) if first else None
    run.result.check(
        "no request lost after being sent",
        not lost,
        f"{len(lost)} lost of {len(run.samples)}" + (f" ({figures['lost_by_kind']})" if lost else ""),
    )
    if answered:
        if first is None:
            run.result.check(
                "responses after the signal carry Connection: close",
                False,
                f"none of the {len(answered)} responses after the signal did",
            )
        else:
            delay = first.began - signal_at
            run.result.check(
                "responses after the signal carry Connection: close",
                len(closing) == len(later) and delay <= options.readiness_limit,
                f"{len(closing)}/{len(later)} ({100 * len(closing) / len(later):.1f} %) from "
                f"{max(0.0, delay) * 1000:.1f} ms after the signal (≤ {options.readiness_limit:g} s)",
            )
    run.exit_checks()


async def readiness(run: Run) -> None:
    """Readiness turns 503 at once; liveness stays OK; the app still serves in the lame-duck window."""
    options = run.options
    stop_at = time.perf_counter() + SETTLE + options.lame_duck + options.kill_after
    ready: list[Sample] = []
    live: list[Sample] = []
    served: list[Sample] = []

    async def poll(path: str, into: list[Sample], every: float) -> None:
        while time.perf_counter() < stop_at and not _exited(run):
            conn = Connection(HOST, run.port)
            sample = await timed(conn, "GET", path, timeout=2)
            conn.close()
            into.append(sample)
            run.samples.append(sample)
            if sample.failure in (Failure.REFUSED, Failure.CONNECT_TIMEOUT) and run.signal_at is not None:
                run.listener_closed_at = run.listener_closed_at or sample.done
                return
            await asyncio.sleep(every)

    async def signal_after_settle() -> None:
        await asyncio.sleep(SETTLE)
        run.send_signal()
        await run.wait_exit()

    polls = [poll(options.ready_path, ready, 0.005), poll(options.path, served, 0.02)]
    if options.live_path:
        polls.append(poll(options.live_path, live, 0.02))
    await _gather(*polls, signal_after_settle())
    assert run.signal_at is not None
    signal_at = run.signal_at
    figures = run.result.figures
    before = [s for s in ready if s.done < signal_at]
    run.result.check(
        "ready before the signal",
        bool(before) and all(s.ok for s in before),
        f"{sum(s.ok for s in before)}/{len(before)} readiness answers 2xx",
    )
    flipped = next((s for s in ready if s.began >= signal_at and not s.ok), None)
    # With no lame-duck window the listener closes at once, and a refused probe is what the kubelet sees as
    # not-ready. With a window, readiness must *answer* non-2xx while the app still serves.
    refused_counts = options.lame_duck == 0 and flipped is not None and flipped.failure is Failure.REFUSED
    if flipped is None or (not flipped.answered and not refused_counts):
        how = "the service exited first" if flipped is None else f"it answered {flipped.kind} instead"
        figures["readiness_flip_s"] = None
        run.result.check("readiness turned not-ready", False, f"never answered non-2xx after the signal; {how}")
    else:
        latency = flipped.done - signal_at  # the answer's arrival: an upper bound on the flip
        figures["readiness_flip_s"] = round(latency, 4)
        figures["readiness_status"] = flipped.status if flipped.answered else "refused"
        what = f"HTTP {flipped.status}" if flipped.answered else "refused (listener closed; --lame-duck 0)"
        run.result.check(
            "readiness turned not-ready",
            latency <= options.readiness_limit,
            f"{what} {latency * 1000:.1f} ms after the signal (≤ {options.readiness_limit:g} s)",
        )
        relapsed = [s for s in ready if s.began > flipped.done and s.ok]
        run.result.check(
            "readiness stays not-ready",
            not relapsed,
            f"{len(relapsed)} readiness answers 2xx after it first turned" if relapsed else "yes",
        )
    if options.live_path:
        draining = [s for s in live if s.began >= signal_at + SIGNAL_SLACK and s.answered]
        figures["liveness_ok_while_draining"] = f"{sum(s.ok for s in draining)}/{len(draining)}"
        # With no lame-duck window the listener closes at once: there is nothing to ask liveness.
        if draining or options.lame_duck > 0:
            run.result.check(
                "liveness stays OK while draining",
                bool(draining) and all(s.ok for s in draining),
                f"{sum(s.ok for s in draining)}/{len(draining)} liveness answers 2xx after the signal",
            )
    if options.lame_duck > 0:
        window = [s for s in served if signal_at <= s.began <= signal_at + options.lame_duck * 0.8]
        figures["served_in_lame_duck_window"] = f"{sum(s.ok for s in window)}/{len(window)}"
        run.result.check(
            "serves during the lame-duck window",
            bool(window) and all(s.ok for s in window),
            f"{sum(s.ok for s in window)}/{len(window)} requests 2xx in the first {options.lame_duck * 0.8:g} s",
        )
    run.exit_checks()


async def listener_close(run: Run) -> None:
    """After the listener closes, new connections are refused cleanly, never accepted and then reset."""
    options = run.options
    stop_at = time.perf_counter() + SETTLE + options.kill_after + 1

    async def prober() -> None:
        while time.perf_counter() < stop_at:
            done = _exited(run)
            conn = Connection(HOST, run.port)
            sample = await timed(conn, "GET", options.path, timeout=3)
            conn.close()
            run.samples.append(sample)
            if sample.failure is Failure.REFUSED and run.signal_at is not None:
                run.listener_closed_at = min(run.listener_closed_at or sample.done, sample.done)
                if done:
                    return
            await asyncio.sleep(0.01)

    async def signal_after_settle() -> None:
        await asyncio.sleep(SETTLE)
        run.send_signal()
        await run.wait_exit()

    held: list[Sample] = []
    probes = [prober() for _ in range(4)]
    if options.slow_path:  # keeps the process alive after its listener closes, so the refusal is its own
        probes.append(_hold(run, options.slow_path, held))
    await _gather(*probes, signal_after_settle())
    assert run.signal_at is not None
    after = [s for s in run.samples if s.began >= run.signal_at and s not in held]
    kinds: dict[str, int] = {}
    for s in after:
        key = "served" if s.answered else s.kind
        kinds[key] = kinds.get(key, 0) + 1
    resets = {k: v for k, v in kinds.items() if k in (Failure.RESET, Failure.EOF, Failure.CONNECT_RESET)}
    figures = run.result.figures
    figures["new_connections_after_signal"] = kinds
    if run.listener_closed_at is not None:
        figures["listener_closed_after_s"] = round(run.since_signal(run.listener_closed_at), 4)
    run.result.check(
        "new connections refused, never reset",
        not resets,
        ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "no connections",
    )
    exited_at = run.target.exited_at
    alive_refusals = [s for s in after if s.failure is Failure.REFUSED and (exited_at is None or s.done < exited_at)]
    if options.slow_path:
        run.result.check(
            "listener closed while the process still served",
            bool(alive_refusals),
            f"{len(alive_refusals)} connects refused before the process exited",
        )
    run.exit_checks()


async def _hold(run: Run, path: str, into: list[Sample]) -> None:
    conn = Connection(HOST, run.port)
    sample = await timed(conn, "GET", path, timeout=run.options.kill_after + 2)
    conn.close()
    into.append(sample)
    run.samples.append(sample)


async def hung(run: Run) -> None:
    """A request that never finishes must not hold the process past grace; the exit code says work was lost."""
    options = run.options
    assert options.hang_path is not None
    held: list[Sample] = []

    async def signal_after_settle() -> None:
        await asyncio.sleep(SETTLE)
        run.send_signal()
        await run.wait_exit()

    await _gather(_hold(run, options.hang_path, held), signal_after_settle())
    assert run.signal_at is not None
    request = held[0] if held else None
    run.result.figures["hung_request_ended_as"] = request.kind if request else None
    run.result.check(
        "the request was still hanging at the signal",
        request is not None and request.done > run.signal_at,
        "yes" if request and request.done > run.signal_at else f"it ended before: {request.kind if request else '-'}",
    )
    exited_at = run.target.exited_at
    if exited_at is not None and not run.target.killed:
        after = run.since_signal(exited_at)
        if options.deadline is not None:
            run.result.check(
                "exited at the drain deadline",
                options.deadline - 0.05 <= after <= options.deadline + options.tolerance,
                f"{after:.3f} s; deadline {options.deadline:g} s (+{options.tolerance:g} s to cancel and clean up)",
            )
        else:
            run.result.check(
                "held the request through the lame-duck window",
                after >= options.lame_duck,
                f"exit {after:.3f} s after the signal, window {options.lame_duck:g} s (give --deadline to check more)",
            )
    run.exit_checks(clean=False)


async def second_signal(run: Run) -> None:
    """A second signal ends the drain now: the process exits promptly instead of waiting for the deadline."""
    options = run.options
    path = options.hang_path or options.slow_path
    assert path is not None
    held: list[Sample] = []
    second_at: list[float] = []

    async def signals() -> None:
        await asyncio.sleep(SETTLE)
        run.send_signal()
        await asyncio.sleep(0.5)
        if not _exited(run) and not held:
            second_at.append(run.send_signal(kind="second-signal"))
        await run.wait_exit()

    await _gather(_hold(run, path, held), signals())
    figures = run.result.figures
    if not second_at:
        run.result.reason = (
            f"the request to {path} finished (or the service exited) before the second signal was due; "
            "use --hang-path or a slower --slow-path"
        )
        return
    exited_at = run.target.exited_at
    if second_at and exited_at is not None and not run.target.killed:
        after = exited_at - second_at[0]
        figures["exit_after_second_signal_s"] = round(after, 4)
        run.result.check(
            "second signal forces a prompt exit",
            after <= options.force_limit,
            f"{after:.3f} s after the second signal (≤ {options.force_limit:g} s)",
        )
    run.exit_checks(clean=False)


def _needs_slow(options: Options) -> str | None:
    return None if options.slow_path else "needs --slow-path (a request that takes ~1-5 s)"


def _needs_hang(options: Options) -> str | None:
    return None if options.hang_path else "needs --hang-path (a request that never finishes)"


def _needs_probes(options: Options) -> str | None:
    return None if options.probes else "the service has no readiness probe (--no-probes)"


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("in-flight", "in-flight requests complete", in_flight, _needs_slow),
    Scenario("idle-keepalive", "idle keep-alive connections do not delay exit", idle_keepalive, lambda o: None),
    Scenario("busy-keepalive", "busy keep-alive connections lose nothing", busy_keepalive, lambda o: None),
    Scenario("readiness", "readiness flips, app serves in the lame-duck window", readiness, _needs_probes),
    Scenario("listener-close", "new connections refused, not reset", listener_close, lambda o: None),
    Scenario("hung", "a hung request ends at the deadline", hung, _needs_hang),
    Scenario(
        "second-signal",
        "a second signal forces",
        second_signal,
        lambda o: None if (o.hang_path or o.slow_path) else "needs --hang-path or --slow-path",
    ),
)
NAMES = tuple(s.name for s in SCENARIOS)


async def run_scenario(scenario: Scenario, options: Options) -> Result:
    """Run one scenario on a fresh service; a service that cannot start raises ``TargetError``."""
    result = Result(scenario.name, scenario.title)
    reason = scenario.needs(options)
    if reason:
        result.reason = reason
        return result
    run = Run(options, result)
    try:
        await run.target.start()
        await run.target.wait_ready(options.ready_path, options.startup_timeout)
        run.origin = time.perf_counter()
        await scenario.body(run)
    finally:
        await run.target.stop()
        result.figures.setdefault("exit_code", run.target.exit_code)
        if result.verdict == "N/A" and result.checks and not all(c.passed for c in result.checks):
            result.reason = run.target.tail(8)
        run.target.discard()
    result.timeline = run.timeline()
    return result.judge()
