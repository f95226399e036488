"""``lameduck k8s check Dockerfile``: who is PID 1 in the image a Dockerfile builds, and which signal stops it.

``check_dockerfile`` reads the file as BuildKit does (``dockerfile_syntax``), replays its stages into the image config
(``dockerfile_image``) and reports:

``dockerfile-shell-form``
    PID 1 is a shell that does not exec the service: shell-form ENTRYPOINT, shell-form CMD (not started with exec),
    ``["sh", "-c", script]`` whose last command is not exec'd, or a script a heredoc in the file wrote that does not.
``dockerfile-stopsignal``
    STOPSIGNAL is not a signal at all; or it is not SIGTERM or SIGINT and the image runs lameduck (in the command line,
    through sh -c, an init or python -m, in a script a heredoc here wrote, or configured by ENV LAMEDUCK_*). Only a
    warning when the file does not show what runs (a script it does not hold, Python code, the base image's CMD);
    nothing when the command visibly runs another program (nginx's graceful stop is SIGQUIT).
``dockerfile-entrypoint-script``
    The command runs a wrapper script the file does not show: it must end with exec "$@".
``lameduck-settings``
    The command runs lameduck with settings (flags, or ENV LAMEDUCK_*) it would refuse.

No init is asked for: ``lameduck serve|work`` as PID 1 acts as its own (``lameduck.runtime.pid1``), so the exec form
``CMD ["lameduck", "serve", …]`` alone is what the checks want. The command line is judged by
``lameduck.k8s.command``, exactly like a manifest's. Values an external base image decides are never guessed: a file
with no ENTRYPOINT or CMD has nothing to say about PID 1. Input that is not a Dockerfile ``docker build`` would accept
raises ``ManifestError``; nothing else is ever raised.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from lameduck.config import SETTINGS
from lameduck.k8s.command import (
    SHELLS,
    AppSettings,
    ShellRun,
    app_settings,
    find_lameduck,
    preview,
    script_execs,
    shell_run,
)
from lameduck.k8s.dockerfile_image import Command, Image, resolve_image
from lameduck.k8s.dockerfile_syntax import Instruction, parse_dockerfile
from lameduck.k8s.findings import RULES, Finding, Location, Severity

__all__ = ["check_dockerfile", "is_dockerfile_name", "parse_signal"]

# -- file names ---------------------------------------------------------------------------------------------------

_NOT_DOCKERFILES = (".dockerignore", ".yaml", ".yml", ".json", ".md")


def is_dockerfile_name(name: str) -> bool:
    """Whether a file name (or path) names a Dockerfile: ``Dockerfile``, ``Containerfile``, ``Dockerfile.prod``,
    ``api.Dockerfile`` (any case). ``Dockerfile.dockerignore`` and ``Dockerfile.yaml`` are not."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if base.endswith(_NOT_DOCKERFILES):
        return False
    return any(
        base == stem or base.startswith(stem + ".") or base.endswith("." + stem)
        for stem in ("dockerfile", "containerfile")
    )


# -- signals ------------------------------------------------------------------------------------------------------

_LINUX_SIGNALS = (
    "HUP INT QUIT ILL TRAP ABRT BUS FPE KILL USR1 SEGV USR2 PIPE ALRM TERM STKFLT CHLD CONT STOP TSTP TTIN TTOU URG "
    "XCPU XFSZ VTALRM PROF WINCH IO PWR SYS"
)
#: Names Linux gives a second time; the report uses the first name.
_ALIASES = {"IOT": 6, "CLD": 17, "POLL": 29}
_SIGNAL_NAMES: Mapping[int, str] = {
    **dict(enumerate(_LINUX_SIGNALS.split(), start=1)),
    34: "RTMIN",
    **{34 + k: f"RTMIN+{k}" for k in range(1, 16)},
    **{64 - k: f"RTMAX-{k}" for k in range(1, 15)},
    64: "RTMAX",
}
#: Linux signal numbers by name, as Docker parses STOPSIGNAL (moby/sys/signal: SIG prefix optional, any case).
SIGNALS: Mapping[str, int] = {**{name: number for number, name in _SIGNAL_NAMES.items()}, **_ALIASES}
#: lameduck starts its drain on these (lameduck.runtime.signals.STOP_SIGNALS).
_DRAIN_SIGNALS = frozenset({"TERM", "INT"})
_SUSPENDS = frozenset({"STOP", "TSTP", "TTIN", "TTOU"})
#: Ignored by default, or ignored by Python itself at startup (SIGPIPE, SIGXFSZ).
_IGNORED = frozenset({"CHLD", "CONT", "URG", "WINCH", "PIPE", "XFSZ"})


def parse_signal(raw: str) -> str | None:
    """A STOPSIGNAL value as its canonical name without SIG (``TERM``), or None when it is not a Linux signal."""
    if re.fullmatch(r"[+-]?[0-9]+", raw):
        return _SIGNAL_NAMES.get(int(raw)) if len(raw) < 19 else None  # Go's Atoi overflows: not a signal
    name = raw.upper().removeprefix("SIG")
    return _SIGNAL_NAMES[SIGNALS[name]] if name in SIGNALS else None


def _stop_signal(image: Image, source: str, out: list[Finding]) -> None:
    """``dockerfile-stopsignal``: an error when the image runs lameduck, a warning when the file does not show what
    it runs, nothing when it visibly runs another program (nginx's SIGQUIT is that program's graceful stop)."""
    if image.stop_signal is None:
        return
    raw, ins = image.stop_signal
    if raw is None:
        return  # a build argument without default decides it
    name = parse_signal(raw)
    fix = "remove STOPSIGNAL (the default is SIGTERM) or write STOPSIGNAL SIGTERM"
    if name is None:  # whatever runs: docker build refuses it
        out.append(
            _finding(
                "dockerfile-stopsignal",
                ins,
                source,
                f"STOPSIGNAL {raw!r} is not a Linux signal (a name such as SIGTERM, or a number from 1 to 64): "
                "docker build refuses it, or the container cannot be stopped",
                fix,
            )
        )
        return
    if name in _DRAIN_SIGNALS:
        return
    runs = _what_runs(image)
    if runs.kind == "other":
        return  # its stop signal is that program's business
    shown = f"{raw} (SIG{name})" if not raw.upper().endswith(name) else f"SIG{name}"
    if name == "KILL":
        effect = "SIGKILL cannot be caught: the service dies at once, mid-request, and nothing drains"
    elif name in _SUSPENDS:
        effect = f"SIG{name} suspends the process: it freezes mid-request until SIGKILL at the end of the grace period"
    elif name in _IGNORED:
        effect = f"Python ignores SIG{name}: the service keeps serving until SIGKILL at the end of the grace period"
    else:
        effect = f"SIG{name}'s default action ends the process at once, cutting every request in flight"
    if runs.kind == "lameduck":
        message = (
            f"STOPSIGNAL {shown}: docker stop and the kubelet send it instead of SIGTERM, and lameduck drains only on "
            f"SIGTERM or SIGINT; {effect}"
        )
        out.append(_finding("dockerfile-stopsignal", ins, source, message, fix))
        return
    message = (
        f"STOPSIGNAL {shown}: docker stop and the kubelet send it instead of SIGTERM, and this file does not show "
        f"what the image runs ({runs.why}); in case it runs lameduck: lameduck drains only on SIGTERM or SIGINT, "
        f"and {effect}"
    )
    if name in ("KILL", "STOP"):  # cannot be caught: no program stops gracefully on it
        fix = f"{fix}: no program can stop gracefully on SIG{name}"
    else:
        fix = (
            f"if the image runs lameduck, {fix}; if it runs a program whose graceful stop is SIG{name}, keep it and "
            "ignore this warning"
        )
    out.append(_finding("dockerfile-stopsignal", ins, source, message, fix, severity=Severity.WARNING))


# -- PID 1 --------------------------------------------------------------------------------------------------------

#: Inits that forward signals to one child and reap zombies; what follows them is the service (or its wrapper).
_INITS = frozenset({"tini", "tini-static", "dumb-init", "catatonit", "docker-init"})
_INIT_VALUE_OPTIONS = frozenset({"-p", "-e", "-r", "--rewrite"})  # tini -p SIG / -e CODE, dumb-init -r s:r
#: PID 1 programs that are not wrapper scripts however they are named.
_NOT_SCRIPTS = _INITS | {"lameduck"}
_SHELL_SYNTAX = frozenset(";&|<>()$`\\*?[]{}~#!\n")


def _after_init(argv: Sequence[str]) -> int:
    """Index of the first word after any init (``tini --``, ``dumb-init``) at the front of ``argv``."""
    i = 0
    while i < len(argv) and posixpath.basename(argv[i]) in _INITS:
        i += 1
        while i < len(argv) and argv[i].startswith("-"):
            if argv[i] == "--":
                i += 1
                break
            i += 2 if argv[i] in _INIT_VALUE_OPTIONS else 1
    return min(i, len(argv))


def _is_script(word: str) -> bool:
    base = posixpath.basename(word)
    if base in _NOT_SCRIPTS:
        return False
    return base.endswith((".sh", ".bash")) or ("entrypoint" in base.lower() and "." not in base)


def _script_file(words: Sequence[str]) -> str:
    """The file a shell runs in ``sh [options] FILE`` (after ``env`` or ``busybox``)."""
    i = 0
    if posixpath.basename(words[0]) == "env":
        i = 1
        while i < len(words) and (words[i].startswith("-") or "=" in words[i]):
            i += 1
    if i < len(words) and posixpath.basename(words[i]) == "busybox":
        i += 1
    i += 1
    while i < len(words) and words[i].startswith(("-", "+")) and words[i] not in ("-", "+"):
        if words[i] == "--":
            return words[i + 1] if i + 1 < len(words) else ""
        i += 2 if words[i][1:2] != "-" and words[i].endswith(("o", "O")) else 1  # bash -o pipefail, -O extglob
    return words[i] if i < len(words) else ""


def _simple_words(script: str) -> list[str] | None:
    """The words of a shell-form command that is one plain command (no variables, globs, redirections, separators
    or assignments), split as sh would; None otherwise."""
    if not script.strip() or any(ch in _SHELL_SYNTAX for ch in script):
        return None
    try:
        words = shlex.split(script)
    except ValueError:
        return None
    if not words or re.match(r"[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        return None
    return words


#: One word of a would-be JSON array, with what separates it from the previous one.
_ITEM = re.compile(r"([\t ,]*)(?:\"([^\"\\]*)\"|'([^'\\]*)')")


@dataclass(frozen=True, slots=True)
class _Typo:
    """A shell-form argument meant as exec form: the words it was meant to hold and what keeps it from being JSON."""

    words: list[str]
    why: str


def _json_typo(script: str) -> _Typo | None:
    """``['uvicorn', 'app:app']``, ``["uvicorn" "app:app"]``, ``["uvicorn"]  # a comment`` or ``["uvicorn",
    "app:app"`` (no closing bracket): meant as exec form, read as shell form because it is not a JSON array of strings
    as written. None for anything else (a script that merely starts with ``[``, such as ``[ -f x ] && …``)."""
    body = script.strip()
    if not body.startswith("["):
        return None
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        pass
    else:
        return None  # valid JSON is exec form (or refused by the parser): never a typo
    words: list[str] = []
    why: list[str] = []
    pos = 1
    while (m := _ITEM.match(body, pos)) is not None:
        if m.group(3) is not None and "single quotes" not in why:
            why.append("single quotes")
        if words and "," not in m.group(1) and "a missing comma" not in why:
            why.append("a missing comma")
        words.append(m.group(2) if m.group(2) is not None else m.group(3))
        pos = m.end()
    rest = body[pos:].lstrip("\t ")
    if rest.startswith(","):
        why.append("a comma after the last word")
        rest = rest[1:].lstrip("\t ")
    if not rest:
        why.append("no closing ]")
    elif rest[0] != "]":
        return None
    elif rest[1:].strip():
        if rest[1:].strip()[0] != "#":
            return None
        why.append("a comment after it")
    return _Typo(words, ", ".join(why) or "a tab or control character inside a string") if words else None


def _exec_line(keyword: str, words: Sequence[str]) -> str:
    return f"{keyword} {json.dumps(list(words), ensure_ascii=False)}"


def _short(script: str, limit: int = 40) -> str:
    """``'uvicorn app:app --host 0.0.0.0'``, cut at ``limit`` characters: how a message quotes a script."""
    text = " ".join(script.split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"'{text}'" if "'" not in text else f'"{text}"'  # for reading, not for pasting into a shell


def _exec_fix(command: Command, run: ShellRun, ep: Command | None) -> str:
    """The line to write instead of a shell that does not exec its service."""
    keyword = command.instruction.keyword
    script = run.script or ""
    simple = _simple_words(script)
    under_shell = command.script is None and ep is not None and command is not ep  # ENTRYPOINT ["sh", "-c"]
    typo = _json_typo(script) if command.script is not None else None
    if typo is not None:
        return (
            f"it is not a JSON array as written ({typo.why}), so Docker runs it through a shell: write "
            f"{_exec_line(keyword, typo.words)}"
        )
    if simple is not None and not under_shell:
        how = "write it in exec form" if command.script is not None else "run it without the shell"
        return f"{how}: {_exec_line(keyword, simple)}"
    if command.script is not None and run.last and not any(ch in script for ch in ";&|\n()"):
        shown = script.strip() if any(q in script for q in "'\"") else " ".join(script.split())
        return f"start it with exec (the shell then hands PID 1 to the service): {keyword} exec {shown}"
    if run.last:
        return f"put exec in front of the last command ({preview(run.last)} → exec {preview(run.last)})"
    return "put exec in front of the last command"


@dataclass(frozen=True, slots=True)
class _Program:
    """The program PID 1 ends up running: its name as written, the instruction that names it, how it is reached
    (``PID 1 is``, ``tini runs``, ``sh execs``) and whether it is looked up in PATH (exec) or opened (``sh FILE``)."""

    name: str
    where: Command
    who: str
    path: bool


#: Where exec looks for a bare program name (the PATH of the official images).
_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
#: A script whose last command ends a compound command (``fi``, ``done`` …) may exec inside it: not judged.
_COMPOUND_END = frozenset({"fi", "done", "esac", "}", "then", "else", "do"})


def _command(image: Image, source: str, out: list[Finding]) -> tuple[list[tuple[str, ...]], Command | None]:
    """The PID 1 rules. Returns the command lines a lameduck call may be in (the full command line, then the words
    of the last command of each shell script it runs) and the instruction that runs the service."""
    ep = None if "ENTRYPOINT" in image.unknown else image.entrypoint
    cmd = None if "CMD" in image.unknown else image.cmd
    if ep is None and cmd is None:
        return [], None  # nothing in the file says what runs: the base image decides
    full = (ep.argv if ep else ()) + (cmd.argv if cmd else ())
    parts = [c for c in (ep, cmd) if c is not None]

    def owner(index: int) -> Command:
        return parts[0] if ep is None or index < len(ep.argv) or cmd is None else parts[1]

    lines: list[tuple[str, ...]] = [full]
    off = _after_init(full)
    run = shell_run(full[off:]) if off < len(full) else None
    holder: Command | None = None
    program: _Program | None = None
    who = f"{posixpath.basename(full[0])} runs" if off else "PID 1 is"
    if run is not None and run.script is not None:
        holder = ep if ep is not None and (ep.script is not None or _has_script(ep.argv[off:])) else cmd
        lines.append(run.last)
        if holder is not None and not run.execs and run.script.strip():
            out.append(_shell_finding(holder, run, ep, cmd, source))
        elif holder is not None and run.execs and _after_init(run.last) < len(run.last):
            program = _Program(run.last[_after_init(run.last)], holder, f"{run.shell} execs", path=True)
    elif run is not None:  # sh start.sh: the shell runs a script file
        program = _Program(_script_file(full[off:]), owner(off), f"{who} {run.shell} running", path=False)
    elif off < len(full):
        program = _Program(full[off], owner(off), who, path=True)
        if ep is not None and cmd is not None and cmd.script is not None and off < len(ep.argv):
            # An exec ENTRYPOINT wrapper that ends with exec "$@" hands PID 1 to the shell-form CMD's shell.
            inner = shell_run(cmd.argv)
            if inner is not None and inner.script is not None and _is_script(full[off]):
                holder = cmd
                lines.append(inner.last)
                if not inner.execs and inner.script.strip():
                    out.append(_shell_finding(cmd, inner, ep, cmd, source))
    if program is not None:
        last = _script(image, program, source, out)
        if last and find_lameduck(last) is not None:  # lameduck started by a script this file wrote
            lines.append(last)
            holder = program.where
    return lines, _lameduck_holder(ep, cmd, holder)


def _written(image: Image, name: str, *, path: bool) -> tuple[str, Instruction] | None:
    """The text of the program ``name`` when a heredoc in this Dockerfile wrote it; ``path``: exec looks it up in
    PATH (``sh FILE`` opens it relative to WORKDIR)."""
    if name.startswith("/"):
        candidates = [name]
    elif "/" in name or not path:
        candidates = [posixpath.join(image.workdir, name)] if image.workdir is not None else []
    else:
        candidates = [posixpath.join(d, name) for d in _PATH]
    for candidate in candidates:
        found = image.files.get(posixpath.normpath(candidate))
        if found is not None:
            return found
    return None


def _script(image: Image, program: _Program, source: str, out: list[Finding]) -> tuple[str, ...]:
    """``dockerfile-entrypoint-script`` for a wrapper script we cannot see; ``dockerfile-shell-form`` for one a heredoc
    wrote that does not exec its last command. Returns the words of that script's last command."""
    name = program.name
    written = _written(image, name, path=program.path)
    if written is not None:
        text, copy = written
        interpreter = _interpreter(text)
        if program.path and interpreter is not None and posixpath.basename(interpreter) not in SHELLS:
            return ()  # a Python (or other) script: not a shell wrapper
        execs, last = script_execs(text)
        if execs or (last and last[0] in _COMPOUND_END):
            return last
        runs = program.where.instruction
        fix = 'end it with exec "$@" (or exec the service)'
        if last:
            fix = f"put exec in front of its last command ({preview(last)} → exec {preview(last)})"
        out.append(
            _finding(
                "dockerfile-shell-form",
                copy,
                source,
                f"{program.who} the script {name} ({runs.path} at line {runs.line}), written here, whose last "
                "command is not exec'd: the shell running it does not forward SIGTERM, so the service is killed at "
                "the end of the grace period without draining",
                fix,
                extra={"script": name},
            )
        )
        return last
    if _is_script(name) or not program.path:  # sh FILE: whatever its name, a script
        out.append(
            _finding(
                "dockerfile-entrypoint-script",
                program.where.instruction,
                source,
                f'{program.who} the script {name}, which lameduck cannot see into: unless it ends with exec "$@" (or '
                "execs the service), the script stays in front of the service and the service never gets SIGTERM",
                f'make sure {name} ends with exec "$@" (or execs the service), or run the service directly',
                extra={"script": name},
            )
        )
    return ()


def _interpreter(text: str) -> str | None:
    """The program a ``#!`` line names (``/usr/bin/env python3`` → ``python3``), or None without one."""
    if not text.startswith("#!"):
        return None
    words = text[2:].split("\n", 1)[0].split()
    if words and posixpath.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
    return words[0] if words else None


def _has_script(words: Sequence[str]) -> bool:
    run = shell_run(words) if words else None
    return run is not None and bool(run.script)


def _shell_finding(holder: Command, run: ShellRun, ep: Command | None, cmd: Command | None, source: str) -> Finding:
    keyword = holder.instruction.keyword
    if holder.script is not None:
        shell = f"{' '.join(holder.argv[:-1])} {_short(holder.script)}"
        if holder is cmd and ep is not None:
            message = (
                f"CMD in shell form is handed to ENTRYPOINT as {shell}: the service runs under {run.shell}, which "
                "does not forward SIGTERM, so it is killed at the end of the grace period without draining"
            )
        else:
            ignored = " (a shell-form ENTRYPOINT also ignores CMD)" if holder is ep and cmd is not None else ""
            message = (
                f"{keyword} in shell form: PID 1 is {shell}, which does not forward SIGTERM; the service is "
                f"killed at the end of the grace period without draining{ignored}"
            )
    else:
        message = (
            f"PID 1 is {run.shell} running a script whose last command is not exec'd: {run.shell} does not forward "
            "SIGTERM, so the service is killed at the end of the grace period without draining"
        )
    return _finding(
        "dockerfile-shell-form",
        holder.instruction,
        source,
        message,
        _exec_fix(holder, run, ep),
        extra={"command": list(holder.argv)},
    )


def _lameduck_holder(ep: Command | None, cmd: Command | None, holder: Command | None) -> Command | None:
    for command in (ep, cmd):
        if command is None:
            continue
        if find_lameduck(command.argv) is not None:
            return command
        run = shell_run(command.argv[_after_init(command.argv) :])
        if run is not None and run.last and find_lameduck(run.last) is not None:
            return command
    return holder


# -- what the image runs ------------------------------------------------------------------------------------------

#: Python runs code this file does not show, which may start lameduck itself (``lameduck.run()``).
_PYTHON = re.compile(r"(?:python|pypy)[0-9.]*\Z")
#: ``uv run gunicorn …``: project runners that exec the program after ``run``.
_RUNNERS = frozenset({"uv", "poetry", "pipenv", "pdm", "hatch", "rye"})
#: lameduck started anywhere in a script (not only by its last command), or imported by a Python script.
_LAMEDUCK_IN_SCRIPT = re.compile(
    r"(?<![\w.-])lameduck\s+(?:serve|work)\b|-m\s*lameduck\s+(?:serve|work)\b|^\s*(?:import|from)\s+lameduck\b",
    re.MULTILINE,
)
_EXEC_ARGS = frozenset({"$@", "${@}", "$*", "${*}"})
_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class _Runs:
    """What the image's command runs, as far as STOPSIGNAL cares: ``lameduck`` (in the command line, a script this
    file writes, or configured by ENV LAMEDUCK_*), ``other`` (visibly another program, ``why`` names it) or
    ``unknown`` (``why`` says what the file does not show)."""

    kind: Literal["lameduck", "other", "unknown"]
    why: str = ""


_LAMEDUCK = _Runs("lameduck")


def _meant(command: Command | None) -> tuple[str, ...]:
    """The command line an instruction means: a JSON typo (``CMD ["lameduck", "serve", "a:b"`` with no closing
    bracket) stands for the array it was meant to be, not for the shell that fails to run it."""
    if command is None:
        return ()
    typo = _json_typo(command.script) if command.script is not None else None
    return tuple(typo.words) if typo is not None else command.argv


def _what_runs(image: Image) -> _Runs:
    """What the image's ENTRYPOINT + CMD run. An ENTRYPOINT the base image decides is taken to be a wrapper that
    runs CMD (the official images' docker-entrypoint.sh ends with exec "$@"); a CMD it decides is not shown."""
    ep = None if "ENTRYPOINT" in image.unknown else image.entrypoint
    cmd = None if "CMD" in image.unknown else image.cmd
    if ep is None and cmd is None:
        external = "CMD" in image.unknown
        runs = _Runs("unknown", "the base image decides the command" if external else "it sets no ENTRYPOINT or CMD")
    else:
        runs = _judge(image, _meant(ep) + _meant(cmd), 0)
    if runs.kind == "unknown" and app_settings((), image.env).runs_lameduck:
        return _LAMEDUCK  # ENV LAMEDUCK_* configures lameduck: that is what the image runs
    return runs


def _judge(image: Image, argv: Sequence[str], depth: int) -> _Runs:
    if find_lameduck(argv) is not None:
        return _LAMEDUCK
    if depth > _MAX_DEPTH:
        return _Runs("unknown", "scripts that run each other")
    words = list(argv[_after_init(argv) :])
    if not words:
        return _Runs("unknown", f"{posixpath.basename(argv[0])} has no command to run" if argv else "no command")
    run = shell_run(words)
    if run is not None and run.script is not None:  # sh -c SCRIPT [$0 [ARG …]]
        after = words.index(run.script) + 2 if run.script in words else len(words)
        return _judge_script(image, run.script, words[after:], depth)
    if run is not None:  # sh FILE [ARG …]
        name = _script_file(words)
        written = _written(image, name, path=False)
        if written is None:
            return _Runs("unknown", f"the script {name} is not in this file" if name else "a shell with no script")
        return _judge_script(image, written[0], words[words.index(name) + 1 :], depth)
    i = 0
    if posixpath.basename(words[0]) == "env":  # env [-i] [NAME=value …] PROGRAM
        i = 1
        while i < len(words) and (words[i].startswith("-") or "=" in words[i]):
            i += 1
    if i + 1 < len(words) and posixpath.basename(words[i]) in _RUNNERS and words[i + 1] == "run":
        i += 2
        while i < len(words) and words[i].startswith("-"):
            i += 1
    if i >= len(words):
        return _Runs("unknown", f"{posixpath.basename(words[0])} has no command to run")
    program = words[i]
    base = posixpath.basename(program)
    written = _written(image, program, path=True)
    if written is not None:
        return _judge_script(image, written[0], words[i + 1 :], depth)
    if "$" in program or "`" in program:
        return _Runs("unknown", f"{program} is decided when the container starts")
    if _PYTHON.match(base) or base.endswith(".py"):
        return _Runs("unknown", f"{preview(words[i:])} runs Python code that may start lameduck with lameduck.run()")
    if _is_script(program):
        return _Runs("unknown", f"the script {program} is not in this file")
    return _Runs("other", base)


def _judge_script(image: Image, text: str, args: Sequence[str], depth: int) -> _Runs:
    """What a script runs (a ``sh -c`` script, or one a heredoc wrote), ``args`` being its ``"$@"``."""
    interpreter = _interpreter(text)
    if interpreter is not None and posixpath.basename(interpreter) not in SHELLS:
        base = posixpath.basename(interpreter)
        if not _PYTHON.match(base):
            return _Runs("other", base)
        if _LAMEDUCK_IN_SCRIPT.search(text):
            return _LAMEDUCK
        return _Runs("unknown", "a Python script that may start lameduck with lameduck.run()")
    execs, last = script_execs(text)
    if not last or last[0] in _COMPOUND_END:
        runs = _Runs("unknown", "a script whose last command this check does not read")
    elif last[0] in _EXEC_ARGS:  # exec "$@": the arguments are the service
        runs = _judge(image, args, depth + 1) if args else _Runs("unknown", 'exec "$@" with no arguments')
    else:
        runs = _judge(image, last, depth + 1)
    if execs and runs.kind == "other":
        return runs  # the script hands PID 1 to another program, whatever it ran before
    return _LAMEDUCK if _LAMEDUCK_IN_SCRIPT.search(text) else runs


# -- lameduck settings --------------------------------------------------------------------------------------------

_RUNTIME_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)-([^}$`]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def _runtime_words(words: Sequence[str], env: Mapping[str, str | None]) -> tuple[str, ...] | None:
    """Words of a shell command with ``$VAR``, ``${VAR}`` and ``${VAR:-default}`` replaced from the image's ENV,
    as the shell will at run time. None when a value cannot be known from the file."""
    out = []
    for word in words:
        unknown = False

        def sub(m: re.Match[str]) -> str:
            nonlocal unknown
            name, colon, default, bare = m.groups()
            value = env.get(name or bare)
            if default is not None and (value is None or (colon and value == "")):
                return default
            if value is None:
                unknown = True
                return ""
            return value

        expanded = _RUNTIME_VAR.sub(sub, word)
        if unknown or "$" in expanded or "`" in expanded:
            return None
        out.append(expanded)
    return tuple(out)


def _settings(
    image: Image, lines: list[tuple[str, ...]], holder: Command | None, source: str, out: list[Finding]
) -> None:
    argv: tuple[str, ...] = lines[0] if lines else ()
    exec_form = True
    for i, words in enumerate(lines):
        if find_lameduck(words) is None:
            continue
        if i == 0:
            argv = words
            break
        expanded = _runtime_words(words, image.env)  # a shell script: the shell expands variables first
        if expanded is None:
            return  # a flag's value is decided when the container starts
        argv, exec_form = expanded, False
        break
    app = app_settings(argv, image.env)
    if app.error is None:
        return
    ins, path = _settings_instruction(app, image, holder)
    fix = "fix the setting named; `lameduck budget` with the same settings shows what fits"
    if exec_form and "'$" in str(app.error):
        fix = (
            "exec form passes $VARIABLES through unexpanded: set the value itself, use the LAMEDUCK_* variable, or "
            "use the shell form starting with exec"
        )
    out.append(
        _finding(
            "lameduck-settings",
            ins,
            source,
            f"lameduck would refuse to start (exit 2): {app.error}",
            fix,
            path=path,
            extra={"setting": app.error.setting},
        )
    )


def _settings_instruction(app: AppSettings, image: Image, holder: Command | None) -> tuple[Instruction, str]:
    """Where the invalid setting is written (the ENV line of a LAMEDUCK_* variable, else the command line) and the
    path to show for it (``ENV LAMEDUCK_GRACE``)."""
    setting = app.error.setting if app.error is not None else ""
    named = re.search(r"\((LAMEDUCK_[A-Z_]+)\)", setting)
    candidates = [named.group(1)] if named else []
    flag = setting.split(" ", 1)[0]
    candidates += [app.sources.get(row.name, "") for row in SETTINGS if row.flag == flag]
    if holder is None:
        candidates += sorted(k for k in image.env_at if k.startswith("LAMEDUCK_"))
    for name in candidates:
        if name in image.env_at:
            return image.env_at[name], f"ENV {name}"
    if holder is not None:
        return holder.instruction, ""
    return image.origin, ""


# -- the check ----------------------------------------------------------------------------------------------------


def _finding(
    rule: str,
    ins: Instruction,
    source: str,
    message: str,
    fix: str,
    *,
    path: str = "",
    extra: dict[str, object] | None = None,
    severity: Severity | None = None,
) -> Finding:
    return Finding(
        rule,
        severity or RULES[rule].severity,
        message,
        fix,
        Location(source, 0, path or ins.path, ins.line, ins.column),
        extra=extra or {},
    )


def check_dockerfile(text: str, source: str, *, target: str | None = None) -> list[Finding]:
    """Every Dockerfile finding for the image ``text`` builds (its last stage, or ``target``), sorted by line.

    Raises ManifestError, and nothing else, when the file cannot be read as a Dockerfile.
    """
    image = resolve_image(parse_dockerfile(text, source), source, target=target)
    out: list[Finding] = []
    _stop_signal(image, source, out)
    lines, holder = _command(image, source, out)
    _settings(image, lines, holder, source, out)
    return sorted(out, key=Finding.sort_key)
