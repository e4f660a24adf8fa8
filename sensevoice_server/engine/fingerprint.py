"""What identifies a model: a content hash of its files, remembered between starts.

The result cache keys every transcript by the model's fingerprint (docs/ARCHITECTURE.md,
invariant 4), and ONNX exports are kept under the checkpoint's hash. Hashing
SenseVoiceSmall's 936 MB takes seconds, so each file's digest is remembered by (path, size,
mtime) in a small JSON file; a file that changes gets hashed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from sensevoice_server.user_dirs import cache_dir

log = logging.getLogger(__name__)
CHUNK = 1 << 20


class DigestMemo:
    """File digests by (path, size, mtime_ns), in one JSON file; never raises on I/O."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / "digests.json"
        try:
            self._known: dict[str, str] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self._known = {}

    def digest(self, file: Path) -> str:
        stat = file.stat()
        key = f"{file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        if key not in self._known:
            digest = hashlib.sha256()
            with file.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
            self._known[key] = digest.hexdigest()
            self._save()
        return self._known[key]

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self._known))
            temporary.replace(self.path)
        except OSError as error:
            log.debug("could not remember model digests: %s", error)


def identify(path_or_name: str, memo: DigestMemo | None = None) -> str:
    """A content hash of a model directory (or file), the name itself for anything else."""
    path = Path(path_or_name)
    if not path.exists():
        return path_or_name
    memo = memo or DigestMemo()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        if file.name.startswith(".") or "__pycache__" in file.parts:
            continue
        digest.update(os.fsencode(file.relative_to(path) if file != path else file.name))
        digest.update(memo.digest(file).encode())
    return digest.hexdigest()


def fingerprint(identity: dict[str, object]) -> str:
    """Sixteen hex digits for everything that changes what the model gives."""
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
