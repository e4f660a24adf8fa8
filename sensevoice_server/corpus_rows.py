"""What a corpus job writes and decides for each file, whoever transcribes it: this process
(cli/corpus.py), a server (cli/corpus_remote.py) or a Ray cluster (cli/corpus_ray.py): the rows
of files.jsonl and segments.jsonl, what a file needs given the manifest, and the progress.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sensevoice_server.corpus_manifest import Manifest
from sensevoice_server.errors import ServiceError
from sensevoice_server.transcript import Transcript


class Tally:
    """Files by what was done with them, and one progress line per file as it is settled."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.counts: Counter[str] = Counter()
        self.started = time.monotonic()

    def note(self, path: str | Path, kind: str) -> None:
        self.counts[kind] += 1
        number = self.counts.total()
        rate = number / max(time.monotonic() - self.started, 1e-9)
        print(f"[{number}/{self.total}] {path}: {kind} ({rate:.1f} files/s)", file=sys.stderr)


def plan(manifest: Manifest, path: str, sha: str, retry_failed: bool) -> str:
    """What a file needs: nothing (listed and settled), a row (its bytes are known), or
    transcribing."""
    if sha in manifest.done:
        return "skipped" if (path, sha) in manifest.listed else "duplicate"
    if sha in manifest.failed and not retry_failed:
        return "skipped" if (path, sha) in manifest.listed else "failed before"
    return "transcribe"


def read_error(error: Exception) -> str:
    return error.message if isinstance(error, ServiceError) else str(error)


def known_row(manifest: Manifest, path: str, sha: str) -> dict[str, Any]:
    """The row of content transcribed (or failed) before, listed under another path."""
    return {**(manifest.done.get(sha) or manifest.failed[sha]), "path": path}


def done_row(path: str, sha: str, transcript: Transcript) -> dict[str, Any]:
    return {"path": path, "sha256": sha, "status": "done", "error": None,
            "duration": transcript.duration, "language": transcript.language}  # fmt: skip


def failed_row(path: str, sha: str, message: str) -> dict[str, Any]:
    return {"path": path, "sha256": sha, "status": "failed", "error": message,
            "duration": None, "language": None}  # fmt: skip


def segment_rows(transcript: Transcript, path: str, sha: str) -> list[dict[str, Any]]:
    rows = []
    for segment in transcript.segments:
        row: dict[str, Any] = {
            "sha256": sha, "path": path, "start": segment.start, "end": segment.end,
            "text": segment.rich, "plain_text": segment.text, "language": segment.language,
            "emotion": segment.emotion, "events": segment.events,
        }  # fmt: skip
        if segment.words:
            row["words"] = [{"word": w.word, "start": w.start, "end": w.end}
                            for w in segment.words]  # fmt: skip
        if segment.speaker is not None:
            row["speaker"] = segment.speaker
        rows.append(row)
    return rows
