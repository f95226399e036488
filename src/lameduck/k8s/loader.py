"""Manifests in, plain data with positions out.

PyYAML's composer keeps the line and column of every node; we build the Python values ourselves from the node graph
so that each value's position is kept beside it (``Document.where(path)``), so that duplicate keys are seen (the
constructor would silently keep the last one, kubectl rejects them) and so that alias bombs are bounded. YAML 1.1
resolution (``yes``/``on`` are booleans) is what kubectl's parser does as well. Input that is not YAML but valid JSON
is read with ``json``; anything else raises ``ManifestError`` with the line and column of the problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from lameduck.errors import ManifestError

Path = tuple[str | int, ...]

#: Nodes built per document, aliases expanded; a "billion laughs" file stops here instead of eating the memory.
MAX_NODES = 1_000_000
#: Nodes built a second time or more through aliases, per document. Real manifests alias a probe or a label set a
#: few times; an alias bomb passes this within a fraction of a second (MAX_NODES alone would take seconds).
MAX_ALIASED_NODES = 100_000

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: libyaml reports a reader error's position in bytes of the UTF-8 text; the pure-Python reader in characters.
_BYTE_POSITIONS = _Base is not yaml.SafeLoader


class _Loader(_Base):  # type: ignore[valid-type,misc]  # CSafeLoader is untyped; it is a SafeLoader at runtime
    """Safe YAML 1.1, plus ``1e5`` as a float: JSON and kubectl's parser (go-yaml) read it as a number, YAML 1.1
    only with a dot (``1.0e5``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


@dataclass(slots=True)
class Document:
    """One YAML document (or one JSON value) of a file. ``data`` is plain dicts, lists and scalars."""

    source: str
    index: int
    data: Any = None
    #: 1-based (line, column) of each path's node; for a mapping entry, where its key is written.
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    #: (path, line, column) of each key written a second time in the same mapping.
    duplicates: list[tuple[Path, int, int]] = field(default_factory=list)

    def where(self, path: Path) -> tuple[int, int]:
        """Position of ``path``, or of its closest ancestor that was written (a default has no line of its own)."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found is not None:
                return found
        return (0, 0)


def format_path(path: Path) -> str:
    """``("spec", "containers", 0, "image")`` → ``spec.containers[0].image``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, doc: Document) -> None:
        self.loader = loader
        self.doc = doc
        self.count = 0
        self.aliased = 0
        self.built: set[int] = set()
        self.stack: set[int] = set()
        self.duplicate_marks: set[tuple[int, int]] = set()

    def build(self, node: yaml.Node, path: Path, pos: yaml.Mark | None = None) -> Any:
        self._count(node)
        mark = pos or node.start_mark
        self.doc.positions.setdefault(path, (mark.line + 1, mark.column + 1))
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if id(node) in self.stack:
            raise ManifestError(
                self.doc.source, "an alias refers to a node that contains it", mark.line + 1, mark.column + 1
            )
        self.stack.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return None
        finally:
            self.stack.discard(id(node))

    def _count(self, node: yaml.Node) -> None:
        self.count += 1
        if id(node) in self.built:
            self.aliased += 1
        else:
            self.built.add(id(node))
        if self.count > MAX_NODES or self.aliased > MAX_ALIASED_NODES:
            limit = (
                f"more than {MAX_NODES:,} nodes"
                if self.count > MAX_NODES
                else f"more than {MAX_ALIASED_NODES:,} nodes through aliases"
            )
            raise ManifestError(
                self.doc.source,
                f"document {self.doc.index + 1} expands to {limit} (an alias bomb?)",
                node.start_mark.line + 1,
                node.start_mark.column + 1,
            )

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise _marked(self.doc.source, exc) from None
        except Exception as exc:  # PyYAML's constructors trust their input: ``!!int foo`` ValueError, ``!!int ''``
            # IndexError, ``!!timestamp x`` AttributeError; whatever they raise, the scalar is what is wrong
            raise ManifestError(
                self.doc.source,
                f"cannot read {node.value!r} as {node.tag.rsplit(':', 1)[-1]} ({exc})",
                node.start_mark.line + 1,
                node.start_mark.column + 1,
            ) from None

    def _aside(self, node: yaml.Node) -> tuple[Any, dict[Path, tuple[int, int]], list[tuple[Path, int, int]]]:
        """Build ``node`` with its own positions and duplicates (paths relative to it), leaving the document's alone."""
        saved = self.doc.positions, self.doc.duplicates
        self.doc.positions, self.doc.duplicates = {}, []
        try:
            return self.build(node, ()), self.doc.positions, self.doc.duplicates
        finally:
            self.doc.positions, self.doc.duplicates = saved

    def _key(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            self._count(node)
            key = self._scalar(node)
        else:  # ``? [a, b]``: a complex key, written as its text
            key = self._aside(node)[0]
        try:
            hash(key)
        except TypeError:
            key = str(key)
        if key is None:
            return "null"
        if isinstance(key, bool):
            return str(key).lower()
        if isinstance(key, (int, float)):
            return str(key)
        return key

    def _duplicate(self, path: Path, line: int, column: int) -> None:
        if (line, column) not in self.duplicate_marks:  # an anchored mapping is seen again through each alias
            self.duplicate_marks.add((line, column))
            self.doc.duplicates.append((path, line, column))

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merges.append(value_node)
                continue
            key = self._key(key_node)
            child: Path = (*path, key)
            if key in out:  # the last one wins, positions included: forget where the first value was written
                self._duplicate(child, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                for stale in _paths(out[key], child):
                    self.doc.positions.pop(stale, None)
            out[key] = self.build(value_node, child, key_node.start_mark)
        # ``<<: *base`` (or a list of them): keys written here win, then the first merged mapping that has the key.
        # Merged mappings are built aside and only the keys that are used keep their positions, so that a finding on
        # an overridden key points where the winning value is written.
        merged: dict[Any, Any] = {}
        for value_node in merges:
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                value, positions, duplicates = self._aside(source)
                # seen for the first time while built aside (an anchor's were recorded where it is written)
                self.doc.duplicates.extend(((*path, *rel), line, column) for rel, line, column in duplicates)
                if not isinstance(value, dict):
                    continue
                used = {k for k in value if k not in out and k not in merged}
                merged.update((k, value[k]) for k in value if k in used)
                for rel, where in positions.items():
                    if rel and rel[0] in used:
                        self.doc.positions.setdefault((*path, *rel), where)
        return {**merged, **out}


def _paths(value: Any, prefix: Path) -> Iterator[Path]:
    """Every path in a built value (without recursion: aliases can make values deep)."""
    stack: list[tuple[Any, Path]] = [(value, prefix)]
    while stack:
        item, path = stack.pop()
        yield path
        if isinstance(item, dict):
            stack.extend((v, (*path, k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(item))


def _line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of the character at ``offset`` (bytes of the UTF-8 text for libyaml)."""
    if _BYTE_POSITIONS:
        offset = len(text.encode("utf-8", "surrogatepass")[:offset].decode("utf-8", "replace"))
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _marked(source: str, exc: yaml.YAMLError, text: str = "") -> ManifestError:
    """One line from PyYAML's multi-line message, at the problem's position."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem and exc.context_mark is not None:
            problem = f"{problem} ({exc.context} at line {exc.context_mark.line + 1})"
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        return ManifestError(source, problem, line, column)
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "\0")
        line, column = _line_column(text, exc.position)
        return ManifestError(source, f"{exc.reason} (character U+{char:04X})", line, column)
    return ManifestError(source, str(exc).replace("\n", " "))


def _looks_like_json(text: str) -> bool:
    stripped = text.lstrip()
    return stripped.startswith(("{", "["))


def load(text: str, source: str) -> list[Document]:
    """Every non-empty document in ``text`` (multi-document YAML, ``helm template`` output, or JSON).

    Raises ``ManifestError`` (and nothing else) for input that is neither, with the line and column of the problem.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        problem = _unencodable(text, source)
        if problem is not None:
            raise problem from None
    try:
        return list(_load_yaml(text, source))
    except ManifestError as yaml_error:
        if not _looks_like_json(text):
            raise
        # `jq --tab` output: JSON allows tabs where YAML does not. Outside strings (which cannot span lines in JSON)
        # a leading tab is only indentation, so one space per tab keeps every line and column where it was.
        untabbed = _LEADING_TABS.sub(lambda m: " " * len(m.group()), text)
        if untabbed != text:
            try:
                return list(_load_yaml(untabbed, source))
            except ManifestError:
                pass
        try:
            return _json_stream(text, source)
        except RecursionError:
            raise yaml_error from None


_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)


def _json_stream(text: str, source: str) -> list[Document]:
    """One JSON value or several in a row (``jq '.items[]'`` output, which kubectl accepts), without positions
    below each document's start."""
    decoder = json.JSONDecoder()
    docs: list[Document] = []
    at = 0
    while True:
        while at < len(text) and text[at] in " \t\r\n":
            at += 1
        if at >= len(text):
            return docs
        try:
            data, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            raise ManifestError(source, exc.msg, exc.lineno, exc.colno) from None
        line = text.count("\n", 0, at) + 1
        column = at - (text.rfind("\n", 0, at) + 1) + 1
        docs.append(Document(source, len(docs), data, positions={(): (line, column)}))
        at = end


def _load_yaml(text: str, source: str) -> Iterator[Document]:
    loader = _Loader(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            doc = Document(source, index)
            try:
                doc.data = _Builder(loader, doc).build(node, ())
            except RecursionError:
                raise ManifestError(source, "nesting too deep", node.start_mark.line + 1, 1) from None
            finally:
                # construct_object caches every node it built until construct_document clears it, which we never
                # call: without this, a 2,000-document stream keeps every node alive (RSS 116 → 75 MB, 1.6x faster).
                loader.constructed_objects = {}
                loader.recursive_objects = {}
            index += 1
            if doc.data is not None:
                yield doc
    except yaml.YAMLError as exc:
        raise _marked(source, exc, text) from None
    except RecursionError:
        raise ManifestError(source, "nesting too deep") from None
    finally:
        loader.dispose()


def _unencodable(text: str, source: str) -> ManifestError | None:
    """A lone surrogate (from undecodable bytes read with ``surrogateescape``) stops libyaml with a UnicodeError."""
    for i, ch in enumerate(text):
        if "\ud800" <= ch <= "\udfff":
            before = text[:i]
            line, column = before.count("\n") + 1, i - (before.rfind("\n") + 1) + 1
            return ManifestError(source, f"not UTF-8 text (character U+{ord(ch):04X})", line, column)
    return None
