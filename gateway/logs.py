"""Structured logs: one JSON object per line on stderr.

Only what is passed in ``extra`` and the message are written; request headers, cookies,
tokens and passwords are never passed to a log call.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "color_message"}
_REDACT = ("password", "token", "secret", "cookie", "authorization")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _STD or key.startswith("_"):
                continue
            if any(word in key.lower() for word in _REDACT):
                value = "[redacted]"
            out[key] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines for the ``shopfloor`` loggers and uvicorn's (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.set_name("shopfloor-json")
    for name in ("shopfloor", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(h.get_name() == "shopfloor-json" for h in logger.handlers):
            logger.handlers = [h for h in logger.handlers if h.get_name() != "shopfloor-json"]
            logger.addHandler(handler)
        logger.setLevel(level if level in logging._nameToLevel else "INFO")
        logger.propagate = False
    # our middleware logs each request: uvicorn's access log would repeat it
    logging.getLogger("uvicorn.access").disabled = True
