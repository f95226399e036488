"""``lameduck serve`` and ``lameduck budget``: parse, validate, run, exit with the outcome's code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from lameduck._version import __version__
from lameduck.cli import budget as budget_cli
from lameduck.cli import jobs as jobs_cli
from lameduck.cli import k8s as k8s_cli
from lameduck.cli import rollout as rollout_cli
from lameduck.cli import verify as verify_cli
from lameduck.config import HTTP_ONLY, SETTINGS, Setting
from lameduck.core.outcome import ExitCode, Outcome
from lameduck.errors import AppLoadError, ConfigError, StartupError
from lameduck.runtime import events, pid1

_EPILOG = """exit codes: 0 clean; 1 accepted work was aborted or a cleanup hook failed; 2 invalid usage or settings
(nothing was bound); 3 the app failed to start. Every flag also reads LAMEDUCK_<NAME>; the flag wins."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line and exits 2 (its own convention, and ours)."""

    def error(self, message: str) -> NoReturn:
        _fail(message)


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"lameduck: error: {message}\n")
    sys.exit(ExitCode.USAGE)


def _add(parser: argparse.ArgumentParser, setting: Setting) -> None:
    env_help = f"{setting.help} [env {setting.env}; default {setting.shown_default}; {setting.allowed}]"
    if setting.positional:
        parser.add_argument(setting.name, nargs="?", default=None, metavar=setting.flag, help=env_help)
    elif setting.boolean:
        parser.add_argument(
            setting.flag, dest=setting.name, action=argparse.BooleanOptionalAction, default=None, help=env_help
        )
    else:
        parser.add_argument(setting.flag, dest=setting.name, default=None, metavar=setting.metavar, help=env_help)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI; with ``command``, the other subcommands get no arguments (``serve`` stays lean: the
    verify and rollout flags would import their machinery, which a server has no use for)."""
    parser = _Parser(
        prog="lameduck", description="Graceful, bounded shutdown for Python ASGI services.", epilog=_EPILOG
    )
    parser.add_argument("--version", action="version", version=f"lameduck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    serve = sub.add_parser(
        "serve",
        help="serve an ASGI app with the full shutdown contract",
        description="Serve MODULE:ATTR on uvicorn; SIGTERM/SIGINT start a bounded drain.",
        epilog=_EPILOG,
    )
    for setting in SETTINGS:
        _add(serve, setting)
    work = sub.add_parser(
        "work",
        help="run a lameduck.Worker: queue handlers with the same shutdown contract",
        description="Run the Worker at MODULE:ATTR; SIGTERM/SIGINT stop claiming at once, in-flight jobs finish "
        "until the drain deadline, the rest are released. Probes listen on --probe-port, else --port.",
        epilog=_EPILOG,
    )
    work.add_argument("worker", nargs="?", default=None, metavar="WORKER", help="the lameduck.Worker, MODULE:ATTR")
    for setting in SETTINGS:
        if setting.name not in HTTP_ONLY:
            _add(work, setting)
    jobs = sub.add_parser(
        "jobs",
        help="create the job queue's schema, or show its jobs by state",
        usage="lameduck jobs {init,status} [--broker URL] [--queue NAME] [--json]",
        description=jobs_cli.DESCRIPTION,
    )
    jobs_cli.add_arguments(jobs)
    budget = sub.add_parser(
        "budget",
        help="print the shutdown timeline for the given settings",
        description=budget_cli.DESCRIPTION,
    )
    for setting in SETTINGS:
        if setting.name in budget_cli.SETTINGS:
            _add(budget, setting)
    budget_cli.add_arguments(budget)
    # Tools with many flags of their own: only the one being run loads and declares them.
    tools = (
        (
            "k8s",
            k8s_cli,
            "check Kubernetes manifests and Dockerfiles for shutdown problems; render consistent ones",
            "lameduck k8s {check,render,rules} ...",
        ),
        (
            "verify",
            verify_cli,
            "prove a service's graceful shutdown, scenario by scenario",
            "lameduck verify [options] -- COMMAND ...",
        ),
        (
            "rollout",
            rollout_cli,
            "a rolling deploy behind HAProxy, every failed request counted",
            "lameduck rollout [options] -- COMMAND ...",
        ),
    )
    for name, module, help_text, usage in tools:
        tool = sub.add_parser(name, help=help_text, usage=usage, description=module.DESCRIPTION)
        if command in (None, name):
            module.add_arguments(tool)
    return parser


_SUBCOMMANDS = ("serve", "work", "jobs", "budget", "k8s", "verify", "rollout")
#: Subcommands that run another command, given after ``--``.
_WRAPPERS = ("verify", "rollout")


def main(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> int:
    """Run the CLI; returns the exit code (``entrypoint`` passes it to ``sys.exit``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if (
        argv
        and argv[0] in _WRAPPERS
        and not ({"-h", "--help"} & set(argv[: argv.index("--")] if "--" in argv else argv))
    ):
        if "--" not in argv:
            _fail(
                f"{argv[0]}: put the service's command after --, e.g. lameduck {argv[0]} -- uvicorn app:app "
                "--port {port}"
            )
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    args = build_parser(argv[0] if argv and argv[0] in _SUBCOMMANDS else None).parse_args(argv)
    if args.command == "verify":
        return verify_cli.run(args, command, _fail)
    if args.command == "rollout":
        return rollout_cli.run(args, command, _fail)
    environ = dict(os.environ if env is None else env)
    if args.command == "jobs":
        return jobs_cli.run(args, environ, _fail)
    if args.command == "k8s":
        return k8s_cli.run(args, _fail)
    values: dict[str, Any] = {k: v for k, v in vars(args).items() if k != "command" and v is not None}
    if args.command is None:
        build_parser().print_help()
        return int(ExitCode.USAGE)
    if args.command == "serve" and values.get("app") is None and not environ.get("LAMEDUCK_APP"):
        _fail("APP: must be MODULE:ATTR, e.g. lameduck serve app:app (lameduck work runs a worker alone)")
    if args.command == "work":
        environ.pop("LAMEDUCK_APP", None)  # a worker process serves no app, whatever the environment says
        if values.get("worker") is None and not environ.get("LAMEDUCK_WORKER"):
            _fail("WORKER: must be MODULE:ATTR, e.g. lameduck work tasks:worker")
    try:
        if args.command == "budget":
            return budget_cli.run(args, values, environ, _fail)
        from lameduck.serve import run

        # Like uvicorn's default --app-dir ".": MODULE is looked up from the working directory first.
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        return run(env=environ, on_finished=_arm_exit_guard, **values)
    except ConfigError as exc:
        _fail(str(exc))
    except AppLoadError as exc:
        _fail(f"{'WORKER' if args.command == 'work' else 'APP'}: {exc}")
    except StartupError as exc:
        traceback.print_exception(exc.__cause__ or exc, file=sys.stderr)
        sys.stderr.write(f"lameduck: error: {exc}\n")
        return int(ExitCode.STARTUP_FAILED)


#: After the summary line, the interpreter gets this long to exit on its own; then it is ended, so a task that
#: ignores cancellation or a thread stuck in the default executor cannot hold the process past the grace
#: period (it is taken from the budget's margin: the summary is written ≥ 1 s before grace runs out).
EXIT_GUARD = 0.9


def _arm_exit_guard(outcome: Outcome) -> None:
    code = int(outcome.exit_code)

    def force_exit() -> None:
        events.emit(
            "exit.forced", "the interpreter did not exit on its own; ending it", level=logging.ERROR, exit_code=code
        )
        events.flush()
        os._exit(code)

    timer = threading.Timer(EXIT_GUARD, force_exit)
    timer.daemon = True
    timer.start()


def entrypoint() -> NoReturn:
    # As PID 1 in a container without an init, this process becomes the init and runs the service as its child.
    code = pid1.run_if_pid1(sys.argv, os.environ)
    sys.exit(main() if code is None else code)
