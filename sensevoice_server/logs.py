"""Logging set-up, done before funasr is imported (it calls logging.basicConfig itself).

Two formats: `text`, a readable line per event, and `json`, one object per line for log
shippers. Access-log records carry their fields (`extra={"fields": ...}`); in JSON they
become keys of the object.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

SECRET_IN_URL = re.compile(r"(api_key=)[^&\s\"]+")
NOISY = ("funasr", "modelscope", "httpx", "urllib3", "gradio", "matplotlib", "numba", "jieba")


class HideApiKeys(logging.Filter):
    """Browsers must send WebSocket keys as `?api_key=`; no log line may carry one."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "api_key=" in message:
            record.msg, record.args = SECRET_IN_URL.sub(r"\1***", message), None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(HideApiKeys())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in ("sensevoice_server", "uvicorn"):
        logging.getLogger(name).setLevel(level.upper())
    for name in NOISY:  # chatty third parties: their warnings only
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
