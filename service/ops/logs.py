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
import os
import sys
import threading
import time
from typing import Literal, TextIO

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# The real stderr once fd 2 is captured: a process captures it once, whoever configures again.
_native_capture: TextIO | None = None


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


def configure_logging(fmt: Literal["text", "json"], level: int = logging.INFO, capture_native: bool = False) -> None:
    """Send every record that reaches the root logger to stderr in ``fmt``; called once per
    process by an entry point. ``capture_native`` (the serving workers, which decode images):
    in JSON, what native libraries write to stderr themselves becomes records too
    (``capture_native_stderr``); not in a process whose children share its stderr."""
    global _native_capture
    if fmt == "json" and capture_native and _native_capture is None:
        _native_capture = capture_native_stderr()
    stream = _native_capture or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def capture_native_stderr() -> TextIO:
    """Route file descriptor 2 through a pipe whose lines are logged as WARNING records of the
    ``native`` logger; return a stream on the real stderr for the log handler. libjpeg,
    libpng and OpenCV write warnings ("Premature end of JPEG file") straight to fd 2, which
    would break a log of one JSON object a line."""
    real_stderr = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    native = logging.getLogger("native")

    def forward() -> None:
        with os.fdopen(read_end, "r", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if line.strip():
                    native.warning(line.rstrip())

    threading.Thread(target=forward, name="native-stderr", daemon=True).start()
    return real_stderr
