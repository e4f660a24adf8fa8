"""Logging set-up, done before funasr is imported (it calls logging.basicConfig itself)."""

from __future__ import annotations

import logging
import re

SECRET_IN_URL = re.compile(r"(api_key=)[^&\s\"]+")


class HideApiKeys(logging.Filter):
    """uvicorn logs query strings, and browsers must send WebSocket keys as `?api_key=`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "api_key=" in message:
            record.msg, record.args = SECRET_IN_URL.sub(r"\1***", message), None
        return True


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in ("sensevoice_server", "sensevoice", "uvicorn"):
        logging.getLogger(name).setLevel(level.upper())
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addFilter(HideApiKeys())
