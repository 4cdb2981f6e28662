"""One JSON object per log line (what ``recforge platform serve`` writes to stderr)."""

from __future__ import annotations

import logging
from typing import Any

from recforge._json import dumps

__all__ = ["JsonLogFormatter"]


class JsonLogFormatter(logging.Formatter):
    """One JSON object per log line, with the ``extra`` fields of the record."""

    _SKIP = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in self._SKIP and v is not None:
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return dumps(out, indent=None)
