"""Named queries kept in .sql files next to the code, so the SQL can be read, diffed and linted as SQL.

A file is a sequence of sections, each introduced by a ``-- name: NAME`` line; a section runs until the next one.
Files ship inside the package and are read with ``importlib.resources`` so they work from a wheel or a zip.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from importlib import resources

_HEADER = re.compile(r"^--\s*name:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$", re.MULTILINE)


class Queries(Mapping[str, str]):
    """The queries of one file. A missing name is a bug in the caller, so the error lists the names there are."""

    def __init__(self, source: str, queries: dict[str, str]) -> None:
        self._source = source
        self._queries = queries

    def __getitem__(self, name: str) -> str:
        try:
            return self._queries[name]
        except KeyError:
            known = ", ".join(sorted(self._queries)) or "(none)"
            raise KeyError(f"no query {name!r} in {self._source}; known: {known}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._queries)

    def __len__(self) -> int:
        return len(self._queries)


def parse(text: str, source: str = "<string>") -> Queries:
    """Split ``text`` into its named sections; text before the first header (a file comment) is ignored."""
    headers = list(_HEADER.finditer(text))
    queries: dict[str, str] = {}
    for header, following in zip(headers, [*headers[1:], None], strict=True):
        name = header.group(1)
        if name in queries:
            raise ValueError(f"{source}: query {name!r} is defined twice")
        end = following.start() if following is not None else len(text)
        body = text[header.end() : end].strip()
        if not body:
            raise ValueError(f"{source}: query {name!r} is empty")
        queries[name] = body
    return Queries(source, queries)


@functools.cache
def _read(filename: str) -> str:
    return resources.files("lameduck.workers").joinpath("sql", filename).read_text(encoding="utf-8")


def load(filename: str, **identifiers: str) -> Queries:
    """The queries of ``sql/FILENAME`` with each ``{name}`` replaced by ``identifiers[name]``.

    Identifiers (a table name) cannot be bind parameters; callers validate them before they get here.
    """
    text = _read(filename)
    for name, value in identifiers.items():
        text = text.replace("{" + name + "}", value)
    return parse(text, f"lameduck/workers/sql/{filename}")
