"""Structured logs: one JSON object per line, with the ``extra`` fields of each record.

Collectors and the core log events like
``log.warning("rate limited", extra={"event": "pve.rate_limited", "source_id": ..., "retry_after": 5})``;
this formatter turns them into ``{"ts": ..., "level": "warning", "logger": ..., "message": ...,
"event": "pve.rate_limited", "source_id": ..., "retry_after": 5}``. Interfaces install it with
``setup_logging``. Nothing may log a secret: records carry ids and codes, never credentials.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            doc["exc_type"] = record.exc_info[0].__name__
            doc["traceback"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


#: Set on the handler ``setup_logging`` installs, so a second call replaces it instead of doubling output.
_MARK = "_asset_ledger_handler"


def setup_logging(
    level: str = "warning", *, log_file: str | Path | None = None, stream: TextIO | None = None
) -> None:
    """Send every log record (the project's and its libraries') as JSON lines to ``log_file`` or stderr."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _MARK, False):
            root.removeHandler(old)
            old.close()
    handler: logging.Handler
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _MARK, True)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
