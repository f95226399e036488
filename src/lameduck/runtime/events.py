"""Structured log events: one stable name per event, text or JSON lines, one summary line at exit.

Event names are API (people alert on them): ``lameduck.<name>``, listed in README "Logs". Everything, including
uvicorn's own records, goes through one handler so a JSON deployment never gets a stray plain-text line.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from typing import Any, TextIO

LOGGER = logging.getLogger("lameduck")
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RESERVED}


def _utc(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


def _event_name(record: logging.LogRecord) -> str:
    name = getattr(record, "event", None)
    return str(name) if name else record.name


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, event, msg, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _utc(record.created),
            "level": record.levelname.lower(),
            "event": _event_name(record),
            "msg": record.getMessage(),
        }
        out.update((k, v) for k, v in _fields(record).items() if k != "event")
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``ts LEVEL event  msg  key=value ...``: greppable, one line per event."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_utc(record.created), record.levelname.ljust(7), _event_name(record)]
        message = record.getMessage()
        if message:
            parts.append(" " + message)
        extra = " ".join(f"{k}={_text_value(v)}" for k, v in _fields(record).items() if k != "event")
        if extra:
            parts.append(" " + extra)
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) or "-"
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text


_handler: logging.Handler | None = None


def configure(log_format: str = "text", level: str = "info", stream: TextIO | None = None) -> None:
    """Send lameduck's and uvicorn's records to ``stream`` (stderr) in one format. Idempotent."""
    global _handler  # noqa: PLW0603 - one handler per process, replaced on reconfiguration
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    numeric = logging.getLevelName(level.upper())
    for name in ("lameduck", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        if _handler is not None and _handler in logger.handlers:
            logger.removeHandler(_handler)
        if name in ("lameduck", "uvicorn"):
            logger.addHandler(handler)
            logger.propagate = False
        logger.setLevel(numeric)
    _handler = handler


def emit(event: str, msg: str = "", *, level: int = logging.INFO, exc_info: Any = None, **fields: Any) -> None:
    """Log event ``lameduck.<event>`` with ``fields`` as structured data (``exc_info`` adds a traceback)."""
    if LOGGER.isEnabledFor(level):
        LOGGER.log(level, msg, exc_info=exc_info, extra={"event": f"lameduck.{event}", **fields})


def flush() -> None:
    """Flush every handler we own (called right before the process exits)."""
    for logger in (LOGGER, logging.getLogger("uvicorn")):
        for handler in logger.handlers:
            handler.flush()
