"""A minimal init for when lameduck is PID 1 in a container that has none (tini and ``docker run --init`` style).

PID 1 has duties nobody else has. Orphaned processes are re-parented to it, and when they exit they stay zombies
until it reaps them: Python reaps nobody, so a service whose code or libraries start subprocesses slowly fills the
process table. And the kernel delivers PID 1 only the signals it has a handler for (a Python PID 1 ignores SIGTERM
until someone installs one). What no init in lameduck can fix: with a shell-form ``CMD`` the shell is PID 1 and
may keep SIGTERM to itself; use the exec form.

So when ``lameduck serve`` or ``lameduck work`` finds itself PID 1, it does not run the service itself. The CLI
calls ``run_if_pid1`` before it parses anything; this process then

1. blocks the signals it handles (``HANDLED``) *before* starting anything, so none is lost or acted on early;
2. re-executes itself as a lean, isolated interpreter running this file (``python -I -S .../pid1.py``): the init
   lives as long as the container, and need not keep the CLI's imports in memory (VmRSS ~28 MB in-process, ~13 MB
   lean); ``-I`` keeps ``PYTHONPATH`` and this directory off ``sys.path`` (nothing there may shadow the standard
   library's modules in the init), ``-S`` keeps site-packages off; it needs only the standard library and
   events.py, which it loads from its file, next to this one;
3. starts the very same command line as its child (``sys.executable`` + ``sys.orig_argv[1:]``, so the console
   script, ``python -m lameduck`` and ``python -c`` all work) with ``LAMEDUCK_INIT_CHILD=1`` (and the
   environment, ``PYTHONPATH`` included, as it was), nothing blocked, the handled signals at their defaults, in a
   process group of its own;
4. if its stdin is a terminal whose foreground process group is the init's (``docker run -it``), hands the
   terminal's foreground to the child's group, as tini does: the service may then read the terminal
   (``breakpoint()``, ``input()``) instead of being stopped by SIGTTIN, and the terminal's Ctrl-C (SIGINT),
   Ctrl-\\ (SIGQUIT) and Ctrl-Z (SIGTSTP) go to the service's group directly, not to the init, so the service gets
   a Ctrl-C once, never twice (twice means "force" to lameduck);
5. waits for signals (``sigtimedwait``; the timeout is a safety net, not a poll): each of ``FORWARDED`` sent to
   the init goes to the child exactly once, to the child only (not to its group: the service's own subprocesses
   are the service's business), and each SIGCHLD reaps every zombie there is, orphans included. A child stopped
   by a signal (Ctrl-Z) is logged (``init.child_stopped``), and continued (SIGCONT to its group) after a
   forwarded signal that asks it to end (``ENDING``), as a shell's ``kill`` does for a stopped job;
6. returns the child's exit code once the child has exited (128 + N when signal N ended it), for the CLI to exit
   with. PID 1 exiting ends the PID namespace: the kernel sends SIGKILL to whatever is left in it, the service's
   own subprocesses included unless the service stopped them before it exited.

``auto`` (the default) never acts unless lameduck is PID 1: under tini, ``docker run --init`` or a Kubernetes pod
with ``shareProcessNamespace``, lameduck is not PID 1 and runs the service itself. ``--init off`` /
``LAMEDUCK_INIT=off`` is for when you want the service itself as PID 1 even so (to debug it, or when something
inspects PID 1 directly); nobody then reaps orphaned zombies. Only the serve and work subcommands need an init.

This module imports only a few standard modules; lameduck.runtime.events, which it needs anyway, loads logging.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType

#: In the child's environment: it is the service, never an init (it is not PID 1 either; this makes sure).
CHILD_MARKER = "LAMEDUCK_INIT_CHILD"
#: The environment variable of the ``init`` setting (lameduck.config derives the same name from its table).
INIT_ENV = "LAMEDUCK_INIT"
#: Subcommands that run a service for the life of the container. The others (budget, jobs, k8s, verify, rollout,
#: --help, --version) finish quickly and run directly.
SERVICE_COMMANDS = frozenset({"serve", "work"})
#: Forwarded to the child, each exactly once. SIGKILL and SIGSTOP cannot be caught: the kernel's own business.
FORWARDED: tuple[signal.Signals, ...] = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)
#: Forwarded to a stopped child, these are followed by SIGCONT to its group (bash's ``kill`` does so for SIGTERM
#: and SIGHUP): they ask it to end, and a stopped service would otherwise sit on them until SIGKILL.
ENDING: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
#: Blocked in the init and taken with sigtimedwait. Blocked signals are never discarded, even SIGCHLD and
#: SIGWINCH (ignored by default) and SIGTERM to a namespace's PID 1 (dropped when it has no handler).
HANDLED: tuple[signal.Signals, ...] = (*FORWARDED, signal.SIGCHLD)
#: Blocked in the init for good, never taken. The terminal sends them to a background process that reads it,
#: writes it (with ``stty tostop``) or hands its foreground on, and they would stop the init; blocked, the kernel
#: lets the write or the handover through (and a read fails with EIO; the init reads nothing). The child gets an
#: empty mask.
TERMINAL_STOPS: tuple[signal.Signals, ...] = (signal.SIGTTIN, signal.SIGTTOU)
#: Seconds. The init sleeps in sigtimedwait; it wakes up this often anyway and reaps, in case a SIGCHLD was
#: consumed elsewhere. A safety net, not the mechanism: every reap normally follows a SIGCHLD.
SAFETY_NET = 5.0
#: When the child cannot be started at all: ExitCode.STARTUP_FAILED (lameduck.core.outcome; not imported here,
#: since the lean init must not load the lameduck package).
SPAWN_FAILED = 3


def _option(args: Sequence[str], flag: str) -> str | None:
    """The value of ``flag VALUE`` or ``flag=VALUE`` in ``args``; the last one wins, as in argparse."""
    value: str | None = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg[len(flag) + 1 :]
    return value


def wants_init(pid: int, argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether this process should become the init; pure. ``argv`` is ``sys.argv`` (``argv[0]`` is the program).

    Yes only for PID 1 running ``serve`` or ``work`` with the ``init`` setting not ``off`` (the flag wins over
    ``LAMEDUCK_INIT``, as for every setting) and no ``LAMEDUCK_INIT_CHILD`` marker. A value that is neither
    ``auto`` nor ``off`` counts as ``auto`` here: the service then rejects it with the usual one-line error and
    exit 2, which the init passes on.
    """
    if pid != 1 or environ.get(CHILD_MARKER):
        return False
    args = list(argv[1:])
    if not args or args[0] not in SERVICE_COMMANDS or {"-h", "--help", "--version"} & set(args):
        return False
    flag = _option(args, "--init")
    value = flag if flag is not None else environ.get(INIT_ENV, "auto")
    return value.strip().lower() != "off"


def exit_code(wait_status: int) -> int:
    """The exit code a shell would report for a ``waitpid`` status: the child's own, or 128 + N for signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return code if code >= 0 else 128 - code


def child_command(executable: str, orig_argv: Sequence[str]) -> list[str]:
    """The command line that started this interpreter, run again by the same interpreter."""
    return [executable, *orig_argv[1:]]


def log_options(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[str, str]:
    """``(log_format, log_level)`` for the init's own lines, read as the service will read them (flag, then env);
    an invalid value gives the default here (the service reports it)."""
    args = argv[1:]
    fmt = (_option(args, "--log-format") or environ.get("LAMEDUCK_LOG_FORMAT") or "").strip().lower()
    level = (_option(args, "--log-level") or environ.get("LAMEDUCK_LOG_LEVEL") or "").strip().lower()
    return (
        fmt if fmt in ("text", "json") else "text",
        level if level in ("debug", "info", "warning", "error") else "info",
    )


def run_if_pid1(argv: Sequence[str], environ: Mapping[str, str]) -> int | None:
    """Become the init if ``wants_init`` says so, and return the service's exit code; else return None at once
    (the caller runs the command itself). Call it first thing, before anything else is started or imported.

    Does not return when it can re-execute itself lean: the lean init's exit code is then the process's.
    """
    if not wants_init(os.getpid(), argv, environ) or not sys.executable:
        return None
    command = child_command(sys.executable, sys.orig_argv)
    log_format, log_level = log_options(argv, environ)
    # From here on a SIGTERM waits, pending, for the init's loop. The mask and pending signals survive exec.
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    here = os.path.abspath(__file__)
    if here.endswith(".py") and os.path.isfile(here) and os.path.isfile(_events_path()):  # not in a zip, not .pyc
        # -I (isolated: -E -P -s): neither PYTHONPATH nor this directory on sys.path, so nothing there shadows a
        # standard module (logging, signal) in the init; PYTHON* variables are ignored in the init, and passed on
        # to the child as they are. -S: no site-packages; the init needs only the standard library and events.py,
        # which it loads from its file, next to this one.
        lean = [sys.executable, "-I", "-S", here, log_format, log_level, *command]
        with contextlib.suppress(OSError):  # else be the init in this process, the CLI's imports and all
            os.execve(sys.executable, lean, dict(environ))
    return supervise(command, environ, load_events(log_format, log_level, lean=False))


def supervise(command: Sequence[str], environ: Mapping[str, str], events: ModuleType) -> int:
    """Start ``command`` as the child and be its init until it exits; return its exit code (``exit_code``).

    Hands the terminal on stdin to the child's process group if the init's group has it (``hand_terminal``),
    forwards every signal of ``FORWARDED`` to the child once, reaps every zombie on each SIGCHLD, logs a stopped
    child, and returns after the child has exited and been reaped. Blocks ``HANDLED`` and ``TERMINAL_STOPS`` in
    the calling thread (the only one). Logs through ``events`` (lameduck.runtime.events, configured).
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, (*HANDLED, *TERMINAL_STOPS))
    env = {**environ, CHILD_MARKER: "1"}
    try:
        child = os.posix_spawn(
            command[0],
            list(command),
            env,
            setpgroup=0,  # its own group, given the terminal (if any): the terminal's Ctrl-C reaches it once
            setsigmask=(),  # nothing blocked, whatever the init blocks
            setsigdef=HANDLED,  # defaults, even if the init inherited some of them ignored (a shell's `cmd &`)
        )
    except OSError as exc:
        events.emit("init.failed", f"cannot start the service: {exc}", level=logging.ERROR, command=command[0])
        return SPAWN_FAILED
    terminal = hand_terminal(child)
    events.emit(
        "init.started",
        "lameduck is PID 1: running the service as its child, reaping zombies, forwarding signals",
        child_pid=child,
        forwarded=[s.name for s in FORWARDED],
        terminal=terminal,
    )
    status: int | None = None
    stopped = False
    while status is None:
        info = signal.sigtimedwait(HANDLED, SAFETY_NET)
        if info is not None and info.si_signo != signal.SIGCHLD:
            name = signal.Signals(info.si_signo).name
            try:
                os.kill(child, info.si_signo)
            except ProcessLookupError:  # gone already: its SIGCHLD is pending and ends the loop
                continue
            events.emit("init.forwarded", f"{name} forwarded to the service", signal=name, child_pid=child)
            if stopped and info.si_signo in ENDING:
                _continue(child)
                stopped = False
            continue
        status, stop = reap(child)
        if status is not None or stop is None:
            continue
        if stop in TERMINAL_STOPS and _foreground() == child:
            # It touched the terminal in the instant between its start and the handover; it has it now.
            _continue(child)
            continue
        stopped = True
        name = signal.Signals(stop).name
        message = f"the service was stopped by {name}: it does nothing until continued (SIGCONT, or SIGTERM to PID 1)"
        events.emit("init.child_stopped", message, level=logging.WARNING, signal=name, child_pid=child)
    code = exit_code(status)
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        message = f"the service was killed by {name}"
        events.emit("init.child_killed", message, level=logging.WARNING, signal=name, exit_code=code)
    return code


def reap(child: int) -> tuple[int | None, int | None]:
    """Reap every zombie child there is (``waitpid(-1, WNOHANG | WUNTRACED)`` until none is left); return
    ``(status, stop)``: ``child``'s wait status if it exited, the signal that stopped it if it was stopped (the
    kernel reports each stop once; other children's stops are ignored)."""
    status: int | None = None
    stop: int | None = None
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG | os.WUNTRACED)
        except ChildProcessError:  # no children at all
            return status, stop
        if pid == 0:  # children left, none of them a zombie or newly stopped
            return status, stop
        if pid != child:
            continue
        if os.WIFSTOPPED(wait_status):
            stop = os.WSTOPSIG(wait_status)
        else:
            status = wait_status


def hand_terminal(pgid: int, fd: int = 0) -> bool:
    """Give the foreground of the terminal on ``fd`` to process group ``pgid``, as tini does, if ``fd`` is a
    terminal whose foreground group is the caller's (``docker run -it``); return whether it did. Else, or on any
    error (not a terminal: ENOTTY; not the caller's controlling terminal), leave it and return False.

    SIGTTOU must be blocked or ignored in the caller (``supervise`` blocks it): the caller is then in the
    background, and would be stopped by its next write to the terminal if ``tostop`` is set.
    """
    try:
        if os.tcgetpgrp(fd) != os.getpgrp():
            return False
        os.tcsetpgrp(fd, pgid)
    except OSError:
        return False
    return True


def _foreground(fd: int = 0) -> int | None:
    """The foreground process group of the terminal on ``fd``, or None (not a terminal, or not ours)."""
    try:
        return os.tcgetpgrp(fd)
    except OSError:
        return None


def _continue(child: int) -> None:
    """SIGCONT to ``child``'s process group (a terminal's Ctrl-Z stops the whole group), unless it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child, signal.SIGCONT)


def load_events(log_format: str, log_level: str, *, lean: bool) -> ModuleType:
    """lameduck.runtime.events, configured; ``lean``: loaded from its file, without the lameduck package."""
    if not lean:
        from lameduck.runtime import events

        events.configure(log_format, log_level)
        return events
    # The lean init runs this file as __main__ without the lameduck package (importing it costs ~17 MB RSS);
    # events.py imports only the standard library, so it loads on its own.
    import importlib.util

    path = _events_path()
    spec = importlib.util.spec_from_file_location("lameduck_init_events", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.configure(log_format, log_level)
    return module


def _events_path() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "events.py")


def _lean_main(args: Sequence[str]) -> int:
    log_format, log_level, *command = args
    return supervise(command, os.environ, load_events(log_format, log_level, lean=True))


if __name__ == "__main__":  # the lean init: run_if_pid1 re-executes this file
    sys.exit(_lean_main(sys.argv[1:]))
