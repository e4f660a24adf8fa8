"""Logging set-up, done before funasr is imported (it calls logging.basicConfig itself)."""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in ("sensevoice_server", "sensevoice", "uvicorn"):
        logging.getLogger(name).setLevel(level.upper())
