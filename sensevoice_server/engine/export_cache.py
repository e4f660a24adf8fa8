"""Exports made once per model and kept by the model's content hash, under the user cache dir.

The ONNX backend's export of --model (backends/onnx.py) and the FSMN VAD's
(fsmn_export.py) are kept alike: `~/.cache/sensevoice/<kind>/<first 16 hex digits of the
model directory's content hash>/`, so a changed model gets a new export and an unchanged one
is found again at every start. Replicas of one machine share the cache: the first to start
makes the export under a lock, the others wait for it and then use it. Each export is
written under a temporary name and renamed when complete (engine/export.py,
engine/fsmn_export.py), so a crash never leaves half an export that looks whole.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable
from pathlib import Path

from sensevoice_server.engine.fingerprint import identify
from sensevoice_server.model_source import HUB_ALIASES
from sensevoice_server.user_dirs import cache_dir

log = logging.getLogger(__name__)


def model_directory(model: str) -> Path:
    """`model` as a local directory: itself, or a hub id (or funasr's alias for one)
    downloaded first, as funasr would (model_source.py has checked the hub answers)."""
    source = Path(model)
    if source.is_dir():
        return source
    from modelscope.hub.snapshot_download import snapshot_download  # imports torch

    log.info("downloading %s from the model hub", model)
    return Path(snapshot_download(HUB_ALIASES.get(model, model)))


def kept_export(
    kind: str, what: str, source: Path, done: str, make: Callable[[Path], None],
    version: int = 1, variant: str = "",
) -> Path:  # fmt: skip
    """The directory holding `source`'s export of `kind`; `make(directory)` writes it first
    when its file `done` is not there yet. `what` names the export in the log. A `version`
    past 1 is part of the name: exports made the older way are not taken for the new; so
    is a `variant`, for exports made differently on different machines."""
    name = identify(str(source))[:16] + (f"-v{version}" if version > 1 else "")
    name += f"-{variant}" if variant else ""
    directory = cache_dir() / kind / name
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.with_name(directory.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (directory / done).exists():
            log.info("no %s export of %s yet: exporting it once to %s", what, source, directory)
            make(directory)
    return directory
