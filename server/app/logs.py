"""The process's logging: text or JSON lines, levels per module, and one record per query.

The query record carries what an operator correlates on (query and correlation ids, principal, source, status,
error code, rows, bytes, timings) and never the SQL text, bound values or any secret: the SQL is named by its
SHA-256, as in the catalog's history.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime

from nexus_flight.server.query.service import QueryEvent

query_log = logging.getLogger("nexus_flight.queries")

#: Attributes every LogRecord has; anything else on a record was passed with ``extra=`` and goes into the JSON.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's extra fields, the full traceback."""

    #: ``status.client_safe_tracebacks`` keeps formatters that already write full tracebacks.
    full_tracebacks = True

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info, limit=1000))
        return json.dumps(line, default=str)


def configure_logging(log_format: str = "text", level: str = "INFO", levels: dict[str, str] | None = None) -> None:
    """Log to stderr in ``log_format``, at ``level`` and, per logger name, at ``levels``."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    for name, name_level in (levels or {}).items():
        logging.getLogger(name).setLevel(name_level)


def log_query(event: QueryEvent) -> None:
    """Write one record for a finished query (a ``QueryObserver``)."""
    fields = {
        "query_id": event.query_id,
        "correlation_id": event.correlation_id,
        "principal": event.user,
        "source": event.source,
        "status": event.status,
        "error_code": event.error_code,
        "rows": event.rows,
        "bytes": event.bytes,
        "parameters": event.parameters,
        "sql_sha256": event.sql_hash,
        "timings_ms": {k: round(v, 2) for k, v in event.timings_ms.items()},
    }
    if event.error:
        fields["error"] = event.error
    level = logging.INFO if event.status in ("success", "cancelled") else logging.WARNING
    # A query refused before it was routed has no source: the text says so rather than "on None".
    where = f"on {event.source}" if event.source else "before reaching a source"
    query_log.log(level, "query %s %s %s by %s in %.1f ms", event.query_id, event.status, where,
                  event.user, event.timings_ms.get("total", 0.0), extra=fields)
