"""Logging set-up for the entry points: plain text for a terminal, one JSON object a line for a
log collector (``FACESVC_LOG_FORMAT``).

A record's ``extra`` fields become JSON keys, so the access line (log_id, app, endpoint, status,
error_code, latency_ms) is queryable without parsing the message. Callers never pass images,
tokens, secrets or embeddings: the access line is built from the route, not the URL, so a token
in the query string never reaches a record.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Literal

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the extra fields, and the
    traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(fmt: Literal["text", "json"], level: int = logging.INFO) -> None:
    """Send every record that reaches the root logger to stderr in ``fmt``; called once per
    process by an entry point."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
