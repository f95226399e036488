"""Dockerfile syntax as BuildKit's parser reads it (moby/buildkit ``frontend/dockerfile/parser``), and the word
rules of its shell lexer. Text in, instructions out; nothing about what the instructions mean.

Parser directives at the top (``# escape=`` changes the escape and line-continuation character; ``# syntax=`` and
``# check=`` are accepted and ignored), whole-line comments, continuation lines (comment and blank lines inside one
are dropped), case-insensitive keywords, ``--flags``, heredoc bodies (kept, never read as instructions), and JSON
(exec) form versus shell form: an argument that parses as a JSON array of strings is exec form, anything that is not
JSON is shell form, and a JSON array holding anything but strings is refused, as ``docker build`` refuses it.
Whatever BuildKit's parser refuses raises ``ManifestError`` with the line and column of the instruction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from lameduck.errors import ManifestError

__all__ = [
    "BLANKS",
    "KEYWORDS",
    "Instruction",
    "Lookup",
    "expand_word",
    "heredoc_names",
    "parse_dockerfile",
    "split_words",
]

#: Every instruction BuildKit knows; any other keyword fails the build ("unknown instruction").
KEYWORDS = frozenset(
    {"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER"}
    | {"ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
)
#: Instructions whose argument may be a JSON array (parseMaybeJSON / parseMaybeJSONToList).
_JSON_FORM = frozenset({"ADD", "CMD", "COPY", "ENTRYPOINT", "RUN", "SHELL", "VOLUME"})
#: Instructions whose shell form may carry heredocs (``RUN <<EOF``): their bodies are not instructions.
_HEREDOC_FORM = frozenset({"ADD", "COPY", "RUN"})
#: Instructions that take no ``--flag`` (BuildKit: "unknown flag"). RUN, COPY, ADD and HEALTHCHECK take their own.
_NO_FLAGS = frozenset(
    {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "MAINTAINER", "SHELL", "USER", "VOLUME", "WORKDIR"}
)
_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_NEEDS_ARGUMENT = frozenset(
    {"ARG", "ENV", "EXPOSE", "FROM", "LABEL", "MAINTAINER", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
)

#: unicode.IsSpace in Go: what BuildKit trims around lines and arguments.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
_DIRECTIVE = re.compile(r"#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
#: What separates a keyword from its arguments, and FROM's words (not Go's full unicode.IsSpace).
BLANKS = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"([0-9]*)<<(-?)([^<]*)\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# -- parsing ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instruction:
    """One instruction as written: the keyword (upper case), its ``--flags`` and its argument text with continuation
    lines joined. ``line`` and ``column`` are 1-based and point at the keyword; ``end_line`` is its last line
    (heredoc bodies included). ``exec_form`` is the JSON array when the argument is one (None: shell form or an
    instruction that has no exec form). ``trigger`` is what an ONBUILD defers; ``onbuild`` marks such a trigger."""

    keyword: str
    args: str
    line: int
    column: int
    end_line: int
    flags: tuple[str, ...] = ()
    exec_form: tuple[str, ...] | None = None
    trigger: Instruction | None = None
    onbuild: bool = False
    escape: str = "\\"
    heredocs: tuple[tuple[str, str], ...] = ()  # (name, body) of each heredoc the instruction opens

    @property
    def path(self) -> str:
        """``CMD``, or ``ONBUILD CMD`` for a trigger: what ``Location.path`` shows."""
        return f"ONBUILD {self.keyword}" if self.onbuild else self.keyword


def _lstrip(text: str) -> str:
    return text.lstrip(_GO_SPACE)


def _trim_continuation(line: str, escape: str) -> tuple[str, bool]:
    """BuildKit's line-continuation rule: the escape character as the last non-blank character, unless it is itself
    escaped (``foo \\\\`` ends the line). Returns the line without it and whether the instruction goes on."""
    body = line.rstrip(" \t")
    if not body.endswith(escape):
        return line, False
    if len(body) == 1:
        return "", True
    if body[-2] == escape:
        return line, False
    return body[:-1], True


def parse_dockerfile(text: str, source: str) -> tuple[Instruction, ...]:
    """The instructions of a Dockerfile, in order. Raises ManifestError where BuildKit's parser fails."""
    lines = text.split("\n")  # BuildKit splits on \n only; a lone \r is not a line break
    if lines[-1] == "":
        lines.pop()  # the newline at the end of the last line does not start another
    escape = "\\"
    directives_done = False
    seen: set[str] = set()
    out: list[Instruction] = []
    i = 0

    def directive(token: str, number: int) -> None:
        nonlocal directives_done, escape
        if directives_done:
            return
        match = _DIRECTIVE.match(token)
        key = match.group(1).lower() if match else ""
        if match is None or key not in _DIRECTIVES:
            directives_done = True
            return
        if key in seen:
            raise ManifestError(source, f"only one {key} parser directive can be used", number, 1)
        seen.add(key)
        if key == "escape":
            value = match.group(2)
            if value not in ("`", "\\"):
                raise ManifestError(source, f"invalid escape token {value!r} does not match ` or \\", number, 1)
            escape = value

    while i < len(lines):
        raw = lines[i].rstrip("\r\n")
        if i == 0:
            raw = raw.removeprefix("\ufeff")
        number = i + 1
        i += 1
        stripped = _lstrip(raw)
        directive(stripped, number)
        column = len(raw) - len(stripped) + 1
        content, more = _trim_continuation("" if stripped.startswith("#") else stripped, escape)
        if not more and content == "":
            continue
        while more and i < len(lines):
            raw = lines[i].rstrip("\r\n")
            directive(raw, i + 1)
            i += 1
            if _lstrip(raw).startswith("#") or _lstrip(raw) == "":
                continue  # comment and blank lines inside a continuation are dropped
            piece, more = _trim_continuation(raw, escape)
            content += piece
        instruction = _instruction(content, (number, column, i), escape, source)
        heredoc_owner = instruction.trigger if instruction.trigger is not None else instruction
        if heredoc_owner.keyword in _HEREDOC_FORM and heredoc_owner.exec_form is None:
            bodies: list[tuple[str, str]] = []
            for name, chomp in heredoc_names(content):
                body: list[str] = []
                while True:
                    if i >= len(lines):
                        raise ManifestError(source, f"unterminated heredoc (no line {name!r} ends it)", number, column)
                    text_line = lines[i].rstrip("\r\n")
                    i += 1
                    if (text_line.lstrip("\t") if chomp else text_line) == name:
                        break
                    body.append(text_line.lstrip("\t") if chomp else text_line)
                bodies.append((name, "".join(f"{b}\n" for b in body)))
            if bodies:
                instruction = replace(instruction, end_line=i, heredocs=tuple(bodies))
        out.append(instruction)
    if not out:
        raise ManifestError(source, "file with no instructions", len(lines), 1 if lines else 0)
    return tuple(out)


def _instruction(
    content: str, where: tuple[int, int, int], escape: str, source: str, *, onbuild: bool = False
) -> Instruction:
    line, column, end_line = where
    parts = BLANKS.split(content.strip(_GO_SPACE), maxsplit=1)
    word = parts[0]
    keyword = word.upper() if word.isascii() else word
    if keyword not in KEYWORDS:
        raise ManifestError(source, f"unknown instruction: {word}", line, column)
    rest, flags = _extract_flags(parts[1] if len(parts) == 2 else "")
    rest = rest.strip(_GO_SPACE)
    if flags and keyword in _NO_FLAGS:
        raise ManifestError(source, f"{keyword}: unknown flag: {flags[0].split('=', 1)[0]}", line, column)
    exec_form: tuple[str, ...] | None = None
    trigger: Instruction | None = None
    array = _json_array(rest) if keyword in _JSON_FORM else None
    if array is not None:
        exec_form = tuple(v for v in array if isinstance(v, str))
        if len(exec_form) != len(array):
            raise ManifestError(
                source,
                f"{keyword}: when using JSON array syntax, arrays must be comprised of strings only",
                line,
                column,
            )
    if keyword == "SHELL":
        if not rest:
            raise ManifestError(source, "SHELL requires at least one argument", line, column)
        if exec_form is None:
            raise ManifestError(
                source, 'SHELL requires the arguments to be in JSON form: SHELL ["/bin/bash", "-c"]', line, column
            )
        if not exec_form:
            raise ManifestError(source, "SHELL requires at least one argument", line, column)
    elif keyword in _NEEDS_ARGUMENT and not rest:
        many = (
            "exactly one argument"
            if keyword in ("MAINTAINER", "STOPSIGNAL", "USER", "WORKDIR")
            else "at least one argument"
        )
        raise ManifestError(source, f"{keyword} requires {many}", line, column)
    elif keyword == "ONBUILD":
        trigger = _instruction(rest, where, escape, source, onbuild=True)
        if trigger.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            what = "Chaining ONBUILD via `ONBUILD ONBUILD`" if trigger.keyword == "ONBUILD" else trigger.keyword
            raise ManifestError(source, f"{what} isn't allowed as an ONBUILD trigger", line, column)
    return Instruction(keyword, rest, line, column, end_line, tuple(flags), exec_form, trigger, onbuild, escape)


def _json_array(rest: str) -> list[object] | None:
    """``rest`` as a JSON array, or None: then it is shell form. Go's decoder knows no NaN or Infinity."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    # Go replaces lone surrogates with U+FFFD; Python keeps them, and they cannot be printed.
    return [re.sub("[\ud800-\udfff]", "\ufffd", v) if isinstance(v, str) else v for v in value]


def _no_constant(name: str) -> object:
    raise ValueError(name)


def _extract_flags(line: str) -> tuple[str, list[str]]:
    """BuildKit's extractBuilderFlags: leading ``--name=value`` (or ``--name value``) words; ``--`` ends them.
    Returns the rest of the line and the flags as ``--name=value``."""
    words: list[str] = []
    word: list[str] = []
    in_word = in_quote = False
    quote = ""
    blank_ok = False
    parsing_arg = False
    need_arg = True
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if not in_word and not in_quote:
            if pos == n:
                break
            if ch in _GO_SPACE:
                pos += 1
                continue
            if not parsing_arg and (ch != "-" or pos + 1 == n or line[pos + 1] != "-"):
                return line[pos:], words
            in_word = True
        if pos == n:
            text = "".join(word)
            if text != "--" and (blank_ok or text):
                words.append(text)  # even a flag's value: BuildKit then refuses it as a flag
            break
        if in_word and not in_quote:
            if ch in _GO_SPACE:
                in_word = False
                text = "".join(word)
                if parsing_arg:
                    words[-1] += "=" + text
                    parsing_arg = False
                    need_arg = True
                else:
                    if text == "--":
                        return line[pos:], words
                    if blank_ok or text:
                        if need_arg:
                            parsing_arg = True
                        words.append(text)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch == "=" and need_arg:
                need_arg = False
            if ch in "'\"":
                quote, blank_ok, in_quote = ch, True, True
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        # in a quote
        if ch == quote:
            in_quote = False
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                in_quote = False
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words


def heredoc_names(line: str) -> list[tuple[str, bool]]:
    """The heredocs a RUN/COPY/ADD line opens (``<<EOF``, ``<<-'EOF'``, ``3<<EOF``): (terminator, strip tabs)."""
    found: list[tuple[str, bool]] = []
    for word in _rawsplit_words(line):
        match = _HEREDOC.match(word)
        if match is None or not match.group(3):
            continue
        names = _unquotedsplit_words(match.group(3))
        if names is not None and len(names) == 1 and names[0]:
            found.append((names[0], match.group(2) == "-"))
    return found


def _rawsplit_words(line: str) -> list[str]:
    """Words split on unquoted blanks, quotes and backslashes kept as written (BuildKit's RawQuotes lexer)."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            word.append(ch)
            if ch == "\\" and quote == '"' and i + 1 < len(line):
                word.append(line[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in _GO_SPACE:
            if word:
                words.append("".join(word))
                word = []
        elif ch in "'\"":
            quote = ch
            word.append(ch)
        elif ch == "\\" and i + 1 < len(line):
            word.extend((ch, line[i + 1]))
            i += 1
        else:
            word.append(ch)
        i += 1
    if word:
        words.append("".join(word))
    return words


def _unquotedsplit_words(text: str) -> list[str] | None:
    """Shell words with quotes removed; None when a quote is left open."""
    words: list[str] = []
    word: list[str] = []
    started = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            end = text.find("'", i + 1)
            if end < 0:
                return None
            word.append(text[i + 1 : end])
            started = True
            i = end + 1
            continue
        if ch == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                if text[i] == "\\" and i + 1 < len(text):
                    i += 1
                word.append(text[i])
                i += 1
            if i >= len(text):
                return None
            started = True
        elif ch == "\\" and i + 1 < len(text):
            word.append(text[i + 1])
            started = True
            i += 1
        elif ch in _GO_SPACE:
            if started:
                words.append("".join(word))
                word, started = [], False
        else:
            word.append(ch)
            started = True
        i += 1
    if started:
        words.append("".join(word))
    return words


# -- words and variables (BuildKit's parseWords and shell lexer) ----------------------------------------------------

#: A variable by name: (whether it is set, its value). The value is None when the file cannot tell it: a build
#: argument without default, or something the base image may set.
Lookup = Callable[[str], tuple[bool, str | None]]


def split_words(rest: str, escape: str) -> list[str]:
    """BuildKit's parseWords: split on blanks outside quotes; quotes and escapes stay in the words."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    blank_ok = False
    started = False
    i = 0
    while i < len(rest):
        ch = rest[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == len(rest):
                    quote = ""
                    i += 1
                    continue
                word.append(ch)
                i += 1
                ch = rest[i]
            word.append(ch)
        elif ch in _GO_SPACE:
            if started and (blank_ok or word):
                words.append("".join(word))
            word, blank_ok, started = [], False, False
        else:
            started = True
            if ch in "'\"":
                quote, blank_ok = ch, True
            elif ch == escape:
                if i + 1 == len(rest):
                    i += 1
                    continue
                word.append(ch)
                i += 1
                ch = rest[i]
            word.append(ch)
        i += 1
    if started and (blank_ok or word):
        words.append("".join(word))
    return words


def expand_word(word: str, escape: str, lookup: Lookup) -> str | None:
    """Quote removal and ``$VAR``/``${VAR}``/``${VAR:-default}`` expansion as the builder does for ENV, ARG, FROM
    and STOPSIGNAL. None when the result depends on a value the file cannot tell."""
    out: list[str] = []
    i, n = 0, len(word)
    while i < n:
        ch = word[i]
        if ch == "'":
            end = word.find("'", i + 1)
            if end < 0:
                return None
            out.append(word[i + 1 : end])
            i = end + 1
        elif ch == '"':
            i += 1
            while True:
                if i >= n:
                    return None
                ch = word[i]
                if ch == '"':
                    i += 1
                    break
                if ch == escape and i + 1 < n and word[i + 1] in ('"', "$", escape):
                    out.append(word[i + 1])
                    i += 2
                elif ch == "$":
                    value, i = _variable(word, i, escape, lookup)
                    if value is None:
                        return None
                    out.append(value)
                else:
                    out.append(ch)
                    i += 1
        elif ch == escape:
            if i + 1 < n:
                out.append(word[i + 1])
            i += 2
        elif ch == "$":
            value, i = _variable(word, i, escape, lookup)
            if value is None:
                return None
            out.append(value)
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _variable(word: str, i: int, escape: str, lookup: Lookup) -> tuple[str | None, int]:
    """The expansion of the ``$`` at ``word[i]`` and the index after it."""
    j = i + 1
    if j < len(word) and word[j] == "{":
        close = word.find("}", j)
        if close < 0:
            return None, len(word)
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+?])(.*))?", word[j + 1 : close], re.DOTALL)
        if match is None:
            return None, close + 1  # ${#VAR}, ${VAR%pattern} …: not worth guessing
        name, op, arg = match.groups()
        is_set, value = lookup(name)
        if op is None:
            return value, close + 1
        if is_set and value is None:
            return None, close + 1
        empty = not is_set or (op.startswith(":") and value == "")
        kind = op[-1]
        if kind == "?":
            return (None if empty else value), close + 1
        if (kind == "-") == empty:
            return expand_word(arg, escape, lookup), close + 1
        return ("" if kind == "+" else value), close + 1
    match = _NAME.match(word, j)
    if match is None:
        return "$", j
    return lookup(match.group())[1], match.end()
