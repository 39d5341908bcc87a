"""Logs: one JSON object per line, in one style, from every process (engine, worker, beat).

Every line has ``ts`` (UTC, ISO 8601 with ms), ``level``, ``event`` and
``logger``. Structured events (fields passed as ``extra={"fields": {...}}``,
as ``Context.event`` does, or a log message that is a JSON object) keep their
fields; any other record, from our
code or a library's (uvicorn, Celery, kombu), becomes ``event: "log"`` with
its ``message``, and an exception its ``exception`` text. Python warnings go
through logging too (``py.warnings``), so they are JSON lines as well.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

#: Our own loggers log at INFO; libraries' at WARNING.
OURS = "examwire"


def _ts(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


def line(event: str, fields: dict[str, Any], *, level: str = "info", logger: str = OURS, created: float | None = None) -> str:
    """One log line in the house style; ``fields`` may hold any names (``ts``, ``level``, ``logger`` are ours)."""
    out: dict[str, Any] = {"ts": _ts(time.time() if created is None else created), "level": level, "event": event}
    out.update((k, v) for k, v in fields.items() if k not in ("ts", "level", "event", "logger"))
    out["logger"] = logger
    return json.dumps(out, default=str, ensure_ascii=False)


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        given = getattr(record, "fields", None)  # structured by the caller (``Context.event``)
        message = "" if isinstance(given, dict) else record.getMessage()
        doc: Any = given
        if given is None and message.startswith("{"):
            try:
                doc = json.loads(message)
            except ValueError:
                doc = None
        fields: dict[str, Any] = dict(doc) if isinstance(doc, dict) else {"message": message}
        event = str(fields.get("event", "log"))
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return line(event, fields, level=record.levelname.lower(), logger=record.name, created=record.created)


def configure(stream: IO[str] | None = None) -> None:
    """JSON lines on ``stream`` (stderr) for every logger: ours at INFO, everyone else's at WARNING."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    ours = logging.getLogger(OURS)
    ours.handlers.clear()
    ours.setLevel(logging.INFO)
    ours.propagate = True
    logging.captureWarnings(True)


def wrap(text: str, *, logger: str) -> str:
    """A line of a child's output as a log line: JSON lines pass through, plain text is wrapped."""
    if text.startswith("{"):
        try:
            if isinstance(json.loads(text), dict):
                return text
        except ValueError:
            pass
    return line("log", {"message": text}, logger=logger)
