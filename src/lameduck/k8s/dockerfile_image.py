"""The image config a Dockerfile's stages produce, replayed the way the builder (BuildKit's dockerfile2llb) fills it
in: ARG, ENV (with ``$VAR`` expansion), SHELL, WORKDIR, ENTRYPOINT, CMD, STOPSIGNAL, files written by heredocs, and
the ONBUILD triggers of a stage another stage is built ``FROM``.

Only the last stage (or ``target``) produces the image; a stage ``FROM`` an earlier stage inherits its config. A stage
``FROM`` an external image inherits values this file does not show: they are listed in ``Image.unknown`` and never
guessed.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from lameduck.errors import ManifestError
from lameduck.k8s.dockerfile_syntax import BLANKS, Instruction, Lookup, expand_word, heredoc_names, split_words

__all__ = ["DEFAULT_SHELL", "Command", "Image", "resolve_image"]

#: What a container runs a shell-form instruction with unless SHELL says otherwise (Linux images).
DEFAULT_SHELL = ("/bin/sh", "-c")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*\Z")


@dataclass(frozen=True, slots=True)
class Command:
    """ENTRYPOINT or CMD as the image config records it: ``argv`` is what the runtime executes (a shell-form
    argument is wrapped in the SHELL of its stage: ``["/bin/sh", "-c", "uvicorn app:app"]``); ``script`` is that
    shell-form text (None for exec form)."""

    argv: tuple[str, ...]
    instruction: Instruction
    script: str | None = None


@dataclass(frozen=True, slots=True)
class Image:
    """The runtime config of the image the Dockerfile builds, as far as the file shows it.

    ``stage`` names the stage that produces the image (``""`` when unnamed); ``base`` is the image its chain of
    stages starts from (``scratch``, ``python:3.12-slim``; ``""`` when a build argument without default names it).
    ``unknown`` lists what is inherited from ``base`` and so cannot be judged: ``ENTRYPOINT``, ``CMD``,
    ``STOPSIGNAL``. ``env`` maps each ENV name to its value (None where a build argument without default or the base
    image decides it); ``env_at`` says which instruction set it. ``workdir`` is None when the base image decides it.
    ``files`` are the files a heredoc writes (``COPY <<EOF /entrypoint.sh``), by absolute path: (text, instruction).
    """

    stage: str
    base: str
    origin: Instruction
    entrypoint: Command | None = None
    cmd: Command | None = None
    stop_signal: tuple[str | None, Instruction] | None = None
    env: Mapping[str, str | None] = field(default_factory=dict)
    env_at: Mapping[str, Instruction] = field(default_factory=dict)
    unknown: frozenset[str] = frozenset()
    workdir: str | None = "/"
    files: Mapping[str, tuple[str, Instruction]] = field(default_factory=dict)

    @property
    def argv(self) -> tuple[str, ...] | None:
        """The container's command line (ENTRYPOINT + CMD), or None when the base image supplies part of it."""
        if "ENTRYPOINT" in self.unknown or "CMD" in self.unknown:
            return None
        return (self.entrypoint.argv if self.entrypoint else ()) + (self.cmd.argv if self.cmd else ())


#: Build arguments the builder itself sets: their values are never in the file.
_BUILTIN_ARGS = frozenset(
    {"BUILDKIT_SYNTAX", "BUILDOS", "BUILDARCH", "BUILDPLATFORM", "BUILDVARIANT", "TARGETOS", "TARGETARCH"}
    | {"TARGETPLATFORM", "TARGETVARIANT", "TARGETSTAGE"}
)


@dataclass(slots=True)
class _Stage:
    """A build stage while its instructions are replayed; ``image()`` is its config when it ends."""

    name: str
    base: str
    origin: Instruction
    external: bool  # the chain starts from an image this file does not show
    entrypoint: Command | None = None
    cmd: Command | None = None
    stop_signal: tuple[str | None, Instruction] | None = None
    unknown: set[str] = field(default_factory=set)
    cmd_set: bool = False
    env: dict[str, str | None] = field(default_factory=dict)
    env_at: dict[str, Instruction] = field(default_factory=dict)
    args: dict[str, str | None] = field(default_factory=dict)
    shell: tuple[str, ...] = DEFAULT_SHELL
    triggers: list[Instruction] = field(default_factory=list)
    workdir: str | None = "/"
    files: dict[str, tuple[str, Instruction]] = field(default_factory=dict)

    def lookup(self, name: str) -> tuple[bool, str | None]:
        if name in self.env:
            return True, self.env[name]
        if name in self.args:
            return True, self.args[name]
        if self.external or name in _BUILTIN_ARGS:
            return True, None  # the base image may set it; the builder sets the built-in ones
        return False, ""

    def image(self) -> Image:
        return Image(
            self.name,
            self.base,
            self.origin,
            self.entrypoint,
            self.cmd,
            self.stop_signal,
            dict(self.env),
            dict(self.env_at),
            frozenset(self.unknown),
            self.workdir,
            dict(self.files),
        )


def resolve_image(instructions: Sequence[Instruction], source: str, *, target: str | None = None) -> Image:
    """The config of the image the last stage (or the stage named ``target``) produces."""
    meta: dict[str, str | None] = {}
    stages: list[_Stage] = []

    def meta_lookup(name: str) -> tuple[bool, str | None]:
        if name in meta:
            return True, meta[name]
        return (True, None) if name in _BUILTIN_ARGS else (False, "")

    if not instructions:
        raise ManifestError(source, "file with no instructions")
    for ins in instructions:
        if ins.keyword == "FROM":
            stages.append(_from(ins, stages, meta_lookup, source))
        elif not stages:
            if ins.keyword != "ARG":
                raise ManifestError(
                    source, f"{ins.keyword} before the first FROM: only ARG may come before it", ins.line, ins.column
                )
            for name, value in _arg_pairs(ins, source):
                meta[name] = None if value is None else expand_word(value, ins.escape, meta_lookup)
        else:
            _dispatch(stages[-1], ins, meta, source)
    if not stages:
        last = instructions[-1]
        raise ManifestError(source, "no FROM instruction: the file builds no image", last.line, last.column)
    if target is None:
        return stages[-1].image()
    for stage in reversed(stages):
        if stage.name == target.lower():
            return stage.image()
    raise ManifestError(source, f"target stage {target!r} could not be found")


def _from(ins: Instruction, stages: list[_Stage], meta_lookup: Lookup, source: str) -> _Stage:
    for flag in ins.flags:
        if flag.split("=", 1)[0] != "--platform":
            raise ManifestError(source, f"FROM: unknown flag: {flag.split('=', 1)[0]}", ins.line, ins.column)
    words = BLANKS.split(ins.args)
    name = ""
    if len(words) == 3 and words[1].lower() == "as":
        name = words[2].lower()
        if not _STAGE_NAME.match(name):
            raise ManifestError(
                source,
                f"invalid name for build stage: {words[2]!r}, name can't start with a number or contain symbols",
                ins.line,
                ins.column,
            )
    elif len(words) != 1:
        raise ManifestError(source, "FROM requires either one or three arguments", ins.line, ins.column)
    base = expand_word(words[0], ins.escape, meta_lookup)
    if base == "":
        raise ManifestError(source, f"base name ({words[0]}) should not be blank", ins.line, ins.column)
    if base is not None:
        for parent in reversed(stages):  # only stages defined before this one; the latest of a repeated name
            if parent.name and parent.name == base.lower():
                stage = replace(
                    parent,
                    name=name,
                    origin=ins,
                    unknown=set(parent.unknown),
                    cmd_set=False,
                    env=dict(parent.env),
                    env_at=dict(parent.env_at),
                    args={},
                    triggers=[],
                    files=dict(parent.files),
                )
                for trigger in parent.triggers:  # run in the child, not inherited by grandchildren
                    _dispatch(stage, trigger, {}, source)
                return stage
    external = base != "scratch"
    unknown = {"ENTRYPOINT", "CMD", "STOPSIGNAL"} if external else set()
    return _Stage(name, base or "", ins, external, unknown=unknown, workdir=None if external else "/")


def _dispatch(stage: _Stage, ins: Instruction, meta: Mapping[str, str | None], source: str) -> None:
    keyword = ins.keyword
    if keyword == "ENV":
        values = [
            (expand_word(k, ins.escape, stage.lookup), expand_word(v, ins.escape, stage.lookup))
            for k, v in _env_pairs(ins, source)
        ]  # every value sees the env from before the instruction, as BuildKit expands them
        for key, value in values:
            if key:
                stage.env[key] = value
                stage.env_at[key] = ins
    elif keyword == "ARG":
        for name, value in _arg_pairs(ins, source):
            if value is not None:
                stage.args[name] = expand_word(value, ins.escape, stage.lookup)
            else:
                stage.args[name] = meta.get(name)
    elif keyword == "SHELL":
        stage.shell = ins.exec_form or DEFAULT_SHELL
    elif keyword in ("CMD", "ENTRYPOINT"):
        if ins.exec_form is not None:
            command = Command(ins.exec_form, ins)
        else:
            command = Command((*stage.shell, ins.args), ins, ins.args)
        if keyword == "CMD":
            stage.cmd = command
            stage.cmd_set = True
        else:
            stage.entrypoint = command if command.argv else None
            if not stage.cmd_set:
                stage.cmd = None  # ENTRYPOINT resets the CMD a stage inherits
            stage.unknown -= {"CMD"}
        stage.unknown.discard(keyword)
    elif keyword == "STOPSIGNAL":
        stage.stop_signal = (expand_word(ins.args, ins.escape, stage.lookup), ins)
        stage.unknown.discard("STOPSIGNAL")
    elif keyword == "ONBUILD" and ins.trigger is not None:
        stage.triggers.append(ins.trigger)
    elif keyword == "WORKDIR":
        path = expand_word(ins.args, ins.escape, stage.lookup)
        if path is None or (not path.startswith("/") and stage.workdir is None):
            stage.workdir = None
        else:
            stage.workdir = posixpath.normpath(posixpath.join(stage.workdir or "/", path))
    elif keyword in ("COPY", "ADD") and ins.heredocs:
        _writeheredoc_names(stage, ins)


def _writeheredoc_names(stage: _Stage, ins: Instruction) -> None:
    """``COPY <<EOF /entrypoint.sh``: remember what the file says, so PID 1 can be judged if it runs it."""
    words = BLANKS.split(ins.args)
    dest = expand_word(words[-1], ins.escape, stage.lookup) if len(words) >= 2 else None
    if not dest:
        return
    bodies = dict(ins.heredocs)
    for word in words[:-1]:
        names = heredoc_names(word)
        if not names or names[0][0] not in bodies:
            continue
        name = names[0][0]
        path = posixpath.join(dest, name) if dest.endswith("/") else dest
        if not path.startswith("/"):
            if stage.workdir is None:
                continue
            path = posixpath.join(stage.workdir, path)
        stage.files[posixpath.normpath(path)] = (bodies[name], ins)


def _env_pairs(ins: Instruction, source: str) -> list[tuple[str, str]]:
    words = split_words(ins.args, ins.escape)
    if words and "=" not in words[0]:  # legacy ENV NAME value with spaces
        parts = BLANKS.split(ins.args, maxsplit=1)
        if len(parts) < 2:
            raise ManifestError(source, f"{ins.keyword} must have two arguments: ENV NAME=value", ins.line, ins.column)
        return [(parts[0], parts[1])]
    pairs = []
    for word in words:
        if "=" not in word:
            raise ManifestError(
                source,
                f"Syntax error - can't find = in {word!r}. Must be of the form: name=value",
                ins.line,
                ins.column,
            )
        key, _, value = word.partition("=")
        if not key:
            raise ManifestError(source, f"{ins.keyword} names can not be blank", ins.line, ins.column)
        pairs.append((key, value))
    return pairs


def _arg_pairs(ins: Instruction, source: str) -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = []
    for word in split_words(ins.args, ins.escape):
        key, eq, value = word.partition("=")
        if not key:
            raise ManifestError(source, "ARG names can not be blank", ins.line, ins.column)
        pairs.append((key, value if eq else None))
    return pairs
