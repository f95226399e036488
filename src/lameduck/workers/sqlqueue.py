"""What the two SQL backends (sqlite.py, postgres.py) share: the table name option, payload encoding, errors.

Both keep jobs as rows of one table whose ``state`` moves queued → running → done/dead; the dialects differ in
where time comes from and how connections are held, not in the row semantics (see workers/memory.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

from lameduck.errors import BrokerError, ConfigError
from lameduck.workers.job import Job

DEFAULT_TABLE = "lameduck_jobs"
#: Lower case only: an identifier that needs no quoting means the same in both dialects and in ``psql``.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: PostgreSQL truncates identifiers to 63 bytes; an index name must stay distinct from its table's name.
_MAX_IDENTIFIER = 63


def split_table(url: str) -> tuple[str, str]:
    """``url`` without its ``table`` query parameter, and the table name (validated: it is spliced into SQL)."""
    # Split by hand: urlunsplit() would fold the empty host of sqlite:////abs/path into sqlite://abs/path.
    base, _, query = url.partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    tables = [value for name, value in params if name == "table"]
    if len(tables) > 1:
        raise ConfigError("--broker", f"give ?table= at most once (got {tables})")
    table = tables[0] if tables else DEFAULT_TABLE
    if not _IDENTIFIER.fullmatch(table):
        raise ConfigError(
            "--broker", f"?table= must be a lower-case SQL identifier matching [a-z_][a-z0-9_]{{0,62}} (got {table!r})"
        )
    rest = urlencode([(name, value) for name, value in params if name != "table"])
    return (f"{base}?{rest}" if rest else base), table


def index_name(table: str, suffix: str) -> str:
    """A name for an index of ``table`` that fits in an identifier and cannot collide with another table's."""
    name = f"{table}_{suffix}"
    if len(name) <= _MAX_IDENTIFIER:
        return name
    digest = hashlib.sha256(table.encode()).hexdigest()[:8]
    return f"{table[: _MAX_IDENTIFIER - len(suffix) - 10]}_{digest}_{suffix}"


def dump_payload(payload: Any) -> str:
    """JSON text, so any process in any language can read a job; a payload JSON cannot encode is a caller bug
    (``TypeError``), not a broker failure."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def load_payload(text: str) -> Any:
    return json.loads(text)


def held(jobs: Sequence[Job]) -> tuple[list[int], list[int]]:
    """Row ids and the attempt each delivery was made at.

    The attempt is the fencing token: if this worker's lease expired and it claimed the same row again, the old
    delivery must not extend, retry or release the new one.
    """
    return [int(job.id) for job in jobs], [int(job.receipt) for job in jobs]


def failure(kind: str, operation: str, exc: BaseException) -> BrokerError:
    """A one-line ``BrokerError`` naming the backend, what it was doing and why it failed (chain ``exc``)."""
    lines = str(exc).strip().splitlines()
    cause = lines[0].strip() if lines else ""
    name = type(exc).__name__
    return BrokerError(
        f"{kind} broker: {operation} failed: {name}: {cause}" if cause else f"{kind} broker: {operation} failed: {name}"
    )
