"""A minimal init for when lameduck is PID 1 in a container that has none (tini and ``docker run --init`` style).

PID 1 has duties nobody else has. Orphaned processes are re-parented to it, and when they exit they stay zombies
until it reaps them: Python reaps nobody, so a service whose code or libraries start subprocesses slowly fills the
process table. And the kernel delivers PID 1 only the signals it has a handler for (a Python PID 1 ignores SIGTERM
until someone installs one). What no init in lameduck can fix: with a shell-form ``CMD`` the shell is PID 1 and
may keep SIGTERM to itself; use the exec form.

So when ``lameduck serve`` or ``lameduck work`` finds itself PID 1, it does not run the service itself. The CLI
calls ``run_if_pid1`` before it parses anything; this process then

1. blocks the signals it handles (``HANDLED``) *before* starting anything, so none is lost or acted on early;
2. re-executes itself as a lean interpreter running this file (``python -P -S .../pid1.py``): the init lives as
   long as the container, and need not keep the CLI's imports in memory (VmRSS ~28 MB in-process, ~13 MB lean);
3. starts the very same command line as its child (``sys.executable`` + ``sys.orig_argv[1:]``, so the console
   script, ``python -m lameduck`` and ``python -c`` all work) with ``LAMEDUCK_INIT_CHILD=1``, nothing blocked,
   the handled signals at their defaults, in a process group of its own: a terminal's Ctrl-C reaches only the
   init, which forwards it once, so the service never sees it twice (twice means "force" to lameduck);
4. waits for signals (``sigtimedwait``; the timeout is a safety net, not a poll): each of ``FORWARDED`` goes to
   the child exactly once, and each SIGCHLD reaps every zombie there is, orphans included;
5. returns the child's exit code once the child has exited (128 + N when signal N ended it), for the CLI to exit
   with. The kernel then kills whatever is left in the namespace.

Off with ``--init off`` / ``LAMEDUCK_INIT=off`` when the container already has an init (tini, ``docker run
--init``, Kubernetes ``shareProcessNamespace``). Only the serve and work subcommands need one.

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
#: Blocked in the init and taken with sigtimedwait. Blocked signals are never discarded, even SIGCHLD and
#: SIGWINCH (ignored by default) and SIGTERM to a namespace's PID 1 (dropped when it has no handler).
HANDLED: tuple[signal.Signals, ...] = (*FORWARDED, signal.SIGCHLD)
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
        # -P: this directory stays off sys.path (its modules must not shadow the standard library's). -S: no
        # site-packages; the init needs only the standard library and events.py, next to this file.
        lean = [sys.executable, "-P", "-S", here, log_format, log_level, *command]
        with contextlib.suppress(OSError):  # else be the init in this process, the CLI's imports and all
            os.execve(sys.executable, lean, dict(environ))
    return supervise(command, environ, load_events(log_format, log_level, lean=False))


def supervise(command: Sequence[str], environ: Mapping[str, str], events: ModuleType) -> int:
    """Start ``command`` as the child and be its init until it exits; return its exit code (``exit_code``).

    Forwards every signal of ``FORWARDED`` to the child once, reaps every zombie on each SIGCHLD, and returns
    after the child has exited and been reaped. Blocks ``HANDLED`` in the calling thread (the only one). Logs
    through ``events`` (lameduck.runtime.events, configured).
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    env = {**environ, CHILD_MARKER: "1"}
    try:
        child = os.posix_spawn(
            command[0],
            list(command),
            env,
            setpgroup=0,  # its own group: a terminal's Ctrl-C reaches the init only, which forwards it once
            setsigmask=(),  # nothing blocked, whatever the init blocks
            setsigdef=HANDLED,  # defaults, even if the init inherited some of them ignored (a shell's `cmd &`)
        )
    except OSError as exc:
        events.emit("init.failed", f"cannot start the service: {exc}", level=logging.ERROR, command=command[0])
        return SPAWN_FAILED
    events.emit(
        "init.started",
        "lameduck is PID 1: running the service as its child, reaping zombies, forwarding signals",
        child_pid=child,
        forwarded=[s.name for s in FORWARDED],
    )
    status: int | None = None
    while status is None:
        info = signal.sigtimedwait(HANDLED, SAFETY_NET)
        if info is not None and info.si_signo != signal.SIGCHLD:
            name = signal.Signals(info.si_signo).name
            try:
                os.kill(child, info.si_signo)
            except ProcessLookupError:  # gone already: its SIGCHLD is pending and ends the loop
                continue
            events.emit("init.forwarded", f"{name} forwarded to the service", signal=name, child_pid=child)
            continue
        status = reap(child)
    code = exit_code(status)
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        message = f"the service was killed by {name}"
        events.emit("init.child_killed", message, level=logging.WARNING, signal=name, exit_code=code)
    return code


def reap(child: int) -> int | None:
    """Reap every zombie child there is (``waitpid(-1, WNOHANG)`` until none is left); return ``child``'s wait
    status if it was among them."""
    status: int | None = None
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # no children at all
            return status
        if pid == 0:  # children left, none of them a zombie
            return status
        if pid == child:
            status = wait_status


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
