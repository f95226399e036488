"""Reading a container's command line the way the kernel and lameduck will: who is PID 1, and which lameduck
settings it runs with.

Shared by the manifest rules and the Dockerfile rules, so a command is judged the same wherever it is written.
Pure functions over strings; nothing here runs anything.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, overload

from lameduck.config import BY_NAME, HTTP_ONLY, SETTINGS, Setting, Settings
from lameduck.errors import ConfigError

#: Programs that, given ``-c SCRIPT``, stay PID 1 unless the script ``exec``s its last command.
SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh"})
#: What a container command may put in front of lameduck: launchers that exec (or are an init) and pass the rest.
_SUBCOMMANDS = ("serve", "work")
#: Inits that forward signals to their one child: they do not change who the child is.
_INITS = frozenset({"tini", "tini-static", "dumb-init", "catatonit"})
_K8S_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


@dataclass(frozen=True, slots=True)
class ShellRun:
    """A command line that hands a script to a shell: ``["sh", "-c", "migrate && exec app"]``."""

    shell: str
    script: str | None  # None: the shell runs a script file (``sh start.sh``), which we cannot see into
    execs: bool  # the script ends by exec-ing its last command (or forwards TERM itself with trap)
    last: tuple[str, ...] = ()  # the words of the last command, ``exec`` removed


def shell_run(argv: Sequence[str]) -> ShellRun | None:
    """``argv`` as a shell invocation, or None when PID 1 is not a shell."""
    if not argv:
        return None
    i, prog = 0, posixpath.basename(argv[0])
    if prog == "env":  # /usr/bin/env [-i] [NAME=value ...] sh -c ...
        i = 1
        while i < len(argv) and (argv[i].startswith("-") or "=" in argv[i]):
            i += 1
        if i >= len(argv):
            return None
        prog = posixpath.basename(argv[i])
    if prog in _INITS:  # tini [-g -s ...] -- sh -c ...: the shell still stands between the signal and the service
        i += 1
        while i < len(argv) and argv[i].startswith("-"):
            i += 1
            if argv[i - 1] == "--":
                break
        if i >= len(argv):
            return None
        prog = posixpath.basename(argv[i])
    if prog == "busybox" and i + 1 < len(argv):
        i += 1
        prog = argv[i]
    if prog not in SHELLS:
        return None
    command_string = False
    j = i + 1
    while j < len(argv):
        arg = argv[j]
        if arg == "--":  # the end of the options: ``sh -c -- 'script'`` (common in pod specs)
            j += 1
            break
        # -o takes the option's name, also last in a cluster: ``bash -o pipefail -c …``, ``bash -euxo pipefail -c …``
        if arg[:1] in ("-", "+") and arg[1:2] not in ("", "-") and arg.endswith("o"):
            j += 2
            continue
        if arg.startswith("-") and not arg.startswith("--") and "c" in arg[1:]:
            command_string = True
        elif not arg.startswith(("-", "+")) or arg in ("-", "+"):
            break
        j += 1
    if command_string:
        script = argv[j] if j < len(argv) else ""
        execs, last = script_execs(script)
        return ShellRun(prog, script, execs, last)
    if j < len(argv):
        return ShellRun(prog, None, False)  # sh start.sh: a script file
    return None  # an interactive shell with no script: not a service command


_SEPARATORS = frozenset({";", "&&", "||", "&", "|", "\n", ";;", "(", ")"})


def script_execs(script: str) -> tuple[bool, tuple[str, ...]]:
    """Whether a ``sh -c`` script hands PID 1 over to its service, and the words of its last command.

    It does when the last command starts with ``exec`` (``cd /app && exec lameduck serve …``), or when the script
    forwards SIGTERM itself (``trap 'kill -TERM $child' TERM``; then ``wait``). bash ≥ 5.1 also execs the last
    simple command on its own, Debian's dash does not (measured: ``sh -c 'sleep 3'`` leaves sh as the process);
    ``shell_form`` in the rules says so, but ``exec`` is what makes a script safe whatever the shell.
    """
    script = script.replace("\\\n", "")  # a backslash-newline continues the line, as the shell reads it
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|()\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        words = list(lexer)
    except ValueError:  # unbalanced quotes: sh would refuse the script too
        return False, ()
    commands: list[list[str]] = [[]]
    for k, word in enumerate(words):
        if word == "&" and _redirection(words, k):  # 2>&1, >&2, &>file: part of the command, not a separator
            commands[-1].append(word)
            continue
        if word in _SEPARATORS or set(word) <= set(";&|()\n"):
            if commands[-1]:
                commands.append([])
            continue
        commands[-1].append(word)
    commands = [c for c in commands if c]
    if not commands:
        return False, ()
    if any(c[0] == "trap" and any(w.upper() in ("TERM", "SIGTERM", "15") for w in c[1:]) for c in commands):
        return True, _without_redirections(commands[-1])
    last = commands[-1]
    if last[0] == "exec":
        rest = _without_redirections(last[1:])
        return bool(rest), rest  # a bare ``exec >log 2>&1`` redirects the shell and replaces nothing
    return False, _without_redirections(last)


_REDIRECT = re.compile(r"^[0-9]*(?:>>|>\||<>|<<|>|<)")


def _without_redirections(words: Sequence[str]) -> tuple[str, ...]:
    """A command's words without its redirections (``2>&1``, ``>/dev/null``, ``&> log``): what the program sees."""
    out: list[str] = []
    k = 0
    while k < len(words):
        word = words[k]
        if word == "&" and _redirection(words, k):
            k += 1
            continue
        match = _REDIRECT.match(word)
        if match is None:
            out.append(word)
            k += 1
            continue
        k += 1
        if match.end() == len(word):  # the operator alone: its target is the next word (after a ``&``)
            if k < len(words) and words[k] == "&":
                k += 1
            k += 1
    return tuple(out)


def _redirection(words: Sequence[str], k: int) -> bool:
    """Whether the ``&`` at ``words[k]`` belongs to a redirection (the lexer splits ``2>&1`` into ``2>``, ``&``,
    ``1`` and ``&>log`` into ``&``, ``>log``)."""
    before = words[k - 1] if k > 0 else ""
    after = words[k + 1] if k + 1 < len(words) else ""
    return before.endswith((">", "<")) or after.startswith(">")


@dataclass(frozen=True, slots=True)
class Invocation:
    """``lameduck serve|work …`` found in a command line, with its arguments after the subcommand."""

    subcommand: str
    args: tuple[str, ...]


def find_lameduck(argv: Sequence[str]) -> Invocation | None:
    """The lameduck call in ``argv``, through launchers (tini, dumb-init, uv run, env …) and ``python -m``."""
    for i, word in enumerate(argv):
        base = posixpath.basename(word)
        rest: Sequence[str] | None = None
        if base == "lameduck" and (i == 0 or argv[i - 1] != "-m"):
            rest = argv[i + 1 :]
        elif word == "-m" and i + 1 < len(argv) and argv[i + 1] == "lameduck":
            rest = argv[i + 2 :]
        elif word == "-mlameduck":
            rest = argv[i + 1 :]
        if rest is not None and rest and rest[0] in _SUBCOMMANDS:
            return Invocation(rest[0], tuple(rest[1:]))
    return None


@overload
def expand(value: str, env: Mapping[str, str | None]) -> str | None: ...
@overload
def expand(value: str, env: Mapping[str, str | None], *, keep_hidden: Literal[True]) -> str: ...
def expand(value: str, env: Mapping[str, str | None], *, keep_hidden: bool = False) -> str | None:
    """Kubernetes' ``$(VAR)`` expansion of command, args and env values; None when a variable's value cannot be
    known from the manifest (``valueFrom`` a Secret, the downward API …), or with ``keep_hidden`` that reference
    left as written (``app_settings`` then knows which setting it hides). ``$$`` escapes a dollar; a ``$(VAR)`` of an
    undefined variable stays as written, as the kubelet leaves it."""
    unknown = False

    def sub(m: re.Match[str]) -> str:
        nonlocal unknown
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        if name not in env:
            return m.group(0)
        known = env[name]
        if known is None:
            unknown = True
            return m.group(0) if keep_hidden else ""
        return known

    out = _K8S_VAR.sub(sub, value)
    return None if unknown and not keep_hidden else out


@dataclass(frozen=True, slots=True)
class AppSettings:
    """The lameduck settings a container will run with, as far as the manifest tells.

    ``settings`` is None when they are invalid (``error`` says why: the process would exit 2). A container that
    shows no lameduck (no ``lameduck serve|work`` and no LAMEDUCK_* variables) has ``runs_lameduck`` False and the
    defaults in a pod as ``settings``. ``invoked``: the lameduck CLI is in the command line; without it the
    LAMEDUCK_* variables are all there is (``lameduck.run()`` from the app's own code may pass more).
    ``unknown`` names settings whose value comes from somewhere the manifest does not show.
    """

    runs_lameduck: bool
    subcommand: str
    settings: Settings | None
    error: ConfigError | None = None
    explicit: frozenset[str] = frozenset()
    unknown: tuple[str, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)
    invoked: bool = False


def _flag_table(subcommand: str) -> dict[str, Setting]:
    table: dict[str, Setting] = {}
    for setting in SETTINGS:
        if setting.positional or (subcommand == "work" and setting.name in HTTP_ONLY):
            continue
        table[setting.flag] = setting
        if setting.boolean:
            table["--no-" + setting.flag[2:]] = setting
    return table


def parse_args(subcommand: str, args: Sequence[str]) -> tuple[dict[str, object], dict[str, str]]:
    """lameduck's own flags as its CLI reads them: ``--flag value``, ``--flag=value``, ``--x/--no-x`` and the
    positional MODULE:ATTR. Returns (values, where each came from). Raises ConfigError for what the CLI rejects."""
    table = _flag_table(subcommand)
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    positional = "worker" if subcommand == "work" else "app"
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            i += 1
            continue
        if not word.startswith("-") or word == "-":
            if positional in values:
                raise ConfigError(word, f"unexpected argument (lameduck {subcommand} takes one MODULE:ATTR)")
            values[positional] = word
            sources[positional] = word
            i += 1
            continue
        flag, eq, inline = word.partition("=")
        setting = table.get(flag)
        if setting is None:
            raise ConfigError(flag, f"unrecognized argument for lameduck {subcommand}")
        if setting.boolean:
            if eq:
                raise ConfigError(flag, "takes no value")
            values[setting.name] = not flag.startswith("--no-")
            sources[setting.name] = flag
            i += 1
            continue
        if eq:
            value = inline
            i += 1
        else:
            if i + 1 >= len(args):
                raise ConfigError(flag, "expected one argument")
            value = args[i + 1]
            i += 2
        values[setting.name] = value
        sources[setting.name] = flag
    return values, sources


def _drop_hidden(subcommand: str, args: Sequence[str], is_hidden: Callable[[str], bool]) -> tuple[list[str], set[str]]:
    """``args`` without the words whose value the manifest does not show (``--broker=$(URL)`` with URL from a
    Secret, ``--port $PORT`` in a shell script), and the flags of the settings they set."""
    table = _flag_table(subcommand)
    kept: list[str] = []
    flags: set[str] = set()
    i = 0
    while i < len(args):
        word = args[i]
        flag, eq, _ = word.partition("=")
        setting = table.get(flag) if word.startswith("-") else None
        if setting is not None and not setting.boolean and not eq and i + 1 < len(args) and is_hidden(args[i + 1]):
            flags.add(setting.flag)
            i += 2
            continue
        if is_hidden(word):  # a whole word we cannot see: its setting (if a flag) is unknown
            if setting is not None:
                flags.add(setting.flag)
            i += 1
            continue
        kept.append(word)
        i += 1
    return kept, flags


def app_settings(argv: Sequence[str], env: Mapping[str, str | None]) -> AppSettings:
    """What lameduck would run with, given the container's full command line (command + args, ``$(VAR)``
    already expanded) and its environment (None for values the manifest does not show).

    A ``$(VAR)`` left in ``argv`` whose variable is in ``env`` with value None (``expand(…, keep_hidden=True)``)
    hides its setting's value: that setting is reported in ``unknown`` and assumed at its default."""
    invocation = find_lameduck(argv)
    from_script = False
    shell = shell_run(argv)
    if invocation is None and shell is not None and shell.last:
        invocation = find_lameduck(shell.last)
        from_script = invocation is not None
    known_env = {k: v for k, v in env.items() if v is not None}
    hidden_env = {BY_NAME[k[len("LAMEDUCK_") :].lower()].flag for k, v in env.items() if v is None and _is_setting(k)}
    has_env = any(_is_setting(k) for k in env)
    if invocation is None and not has_env:
        defaults = Settings.load({}, {"KUBERNETES_SERVICE_HOST": "in-cluster"})
        return AppSettings(False, "serve", defaults)
    subcommand = invocation.subcommand if invocation else "serve"
    sources: dict[str, str] = {}
    hidden_vars = frozenset(k for k, v in env.items() if v is None)

    def is_hidden(word: str) -> bool:
        if from_script and ("$" in word or "`" in word):  # the shell expands it when the container starts
            return True
        return any(m.group(1) in hidden_vars for m in _K8S_VAR.finditer(word) if m.group(1))

    args, hidden_args = _drop_hidden(subcommand, invocation.args if invocation else (), is_hidden)
    given = {word.partition("=")[0] for word in args if word.startswith("--")}  # a flag wins over its env var
    unknown = tuple(sorted(hidden_args | {flag for flag in hidden_env if flag not in given}))
    try:
        values, sources = parse_args(subcommand, args)
        lameduck_env = {k: v for k, v in known_env.items() if k.startswith("LAMEDUCK_")}
        if subcommand == "work":
            lameduck_env.pop("LAMEDUCK_APP", None)
        for key in lameduck_env:
            name = key[len("LAMEDUCK_") :].lower()
            if name in BY_NAME and name not in sources:
                sources[name] = key
        settings = Settings.load(
            values, {**lameduck_env, "KUBERNETES_SERVICE_HOST": "in-cluster"}, work_only=subcommand == "work"
        )
    except ConfigError as exc:
        return AppSettings(
            True, subcommand, None, error=exc, unknown=unknown, sources=sources, invoked=invocation is not None
        )
    return AppSettings(
        True,
        subcommand,
        settings,
        explicit=frozenset(sources),
        unknown=unknown,
        sources=sources,
        invoked=invocation is not None,
    )


def _is_setting(key: str) -> bool:
    return key.startswith("LAMEDUCK_") and key[len("LAMEDUCK_") :].lower() in BY_NAME


def preview(words: Sequence[str]) -> str:
    """A command shown in a message: its first four words, shell-quoted, then an ellipsis."""
    shown = [shlex.quote(w) for w in words[:4]]
    return " ".join([*shown, "…"] if len(words) > 4 else shown)
