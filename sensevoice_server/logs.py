"""Logging set-up, done before funasr is imported (it calls logging.basicConfig itself).

Two formats: `text`, a readable line per event, and `json`, one object per line for log
shippers. Access-log records carry their fields (`extra={"fields": ...}`); in JSON they
become keys of the object. Whatever the format, every entry is passed through `redact`
last, so no password or key in a URL form reaches the log, whoever logged it.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from typing import Any

from sensevoice_server.redaction import redact

NOISY = ("funasr", "modelscope", "httpx", "urllib3", "gradio", "matplotlib", "numba", "jieba")
HANDSHAKE_NOT_DONE = "ASGI callable returned without completing handshake."
_websocket_denied: ContextVar[bool] = ContextVar("websocket_denied", default=False)


class Redacted(logging.Formatter):
    """Formats with `inner`, then masks every password and key in a URL form (redaction.py)
    in the whole entry: message, fields and traceback. Browsers must send WebSocket keys as
    `?api_key=`, uvicorn logs a WebSocket's query string, and a Redis URL may carry
    `?password=`: no log line may carry one."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def websocket_denied_on_purpose() -> None:
    """Mark this connection's task: the app answered its upgrade with an HTTP refusal."""
    _websocket_denied.set(True)


class QuietDeniedHandshake(logging.Filter):
    """Drops uvicorn's ERROR "ASGI callable returned without completing handshake." for a
    WebSocket the app refused on purpose with an HTTP answer (401, 429).

    The gap: uvicorn's websockets-sansio protocol (what `--ws auto` picks) never marks the
    handshake done after the ASGI denial-response extension sends its answer, so every
    refused upgrade logs an ERROR although the client got its 401 (uvicorn pull request
    #3138, open). The refusal sets a context variable in the connection's task, the same
    task in which uvicorn then logs; any other unfinished handshake still logs its ERROR.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_websocket_denied.get() and record.getMessage() == HANDSHAKE_NOT_DONE)


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
    if fmt == "json":
        handler.setFormatter(Redacted(JsonFormatter()))
    else:
        text = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        handler.setFormatter(Redacted(text))
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietDeniedHandshake) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(QuietDeniedHandshake())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in ("sensevoice_server", "uvicorn"):
        logging.getLogger(name).setLevel(level.upper())
    for name in NOISY:  # chatty third parties: their warnings only
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
