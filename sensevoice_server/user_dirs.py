"""Where the service keeps what it derives on this machine: the result cache's SQLite file,
ONNX exports, file digests. One directory, `$XDG_CACHE_HOME/sensevoice` (`~/.cache/...` when
that is unset), so an operator has one place to look, size and clear."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sensevoice"
