"""Logging for `voxgate serve`: every line carries the id of the request it belongs to.

The request middleware puts the id in a context variable; asyncio tasks and the lanes'
worker threads inherit it, and a filter on the handler copies it into every record, of
voxgate, uvicorn and the libraries alike ("-" outside a request). `VOXGATE_LOG_FORMAT=json`
writes one JSON object per line for log collectors.
"""

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("voxgate_request_id", default="-")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """{"time", "level", "logger", "request_id", "message"}, the record's `fields` (an access
    line's method, path, status, ...) and `exception` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(log_format: str, level: int = logging.INFO) -> None:
    """One stderr handler on the root logger, in `text` or `json`; uvicorn's loggers pass
    their records up to it (serve runs uvicorn with log_config=None)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
