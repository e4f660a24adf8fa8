"""A corpus job's manifest: `files.jsonl` (one row per input file) and `segments.jsonl` (one
row per segment), appended to as files finish, so a job can stop anywhere and resume.

Why JSON Lines appended in place: a corpus run lasts hours and a crash must lose at most the
file in flight. Each file's rows go out in one `write()` on a file opened for appending and
are flushed to disk before the next file starts; a crash can only tear the last line, which
the next run cuts off before it appends. A file's `files.jsonl` row goes out after its
segments, so it is the mark that the file is done: segment rows whose file has no row are
from a run that died between the two writes, and are dropped when the manifest is opened.
The latest row for a path wins (a changed file is redone and listed again; the old rows stay
as history).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILES = "files.jsonl"
SEGMENTS = "segments.jsonl"


@dataclass
class Manifest:
    directory: Path
    done: dict[str, dict[str, Any]] = field(default_factory=dict)  # sha256 -> its files row
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)  # sha256 -> latest failure
    listed: set[tuple[str, str]] = field(default_factory=set)  # (path, sha256) with a row

    @classmethod
    def open(cls, directory: Path) -> Manifest:
        """The manifest in `directory` (made if need be), its torn tail and orphan segment
        rows removed."""
        directory.mkdir(parents=True, exist_ok=True)
        manifest = cls(directory)
        for row in read_rows(directory / FILES):
            manifest.note(row)
        kept = [row for row in read_rows(directory / SEGMENTS) if row["sha256"] in manifest.done]
        rewrite_if_changed(directory / SEGMENTS, kept)
        return manifest

    def note(self, row: dict[str, Any]) -> None:
        self.listed.add((row["path"], row["sha256"]))
        if row["status"] == "done":
            self.done[row["sha256"]] = row
            self.failed.pop(row["sha256"], None)
        elif row["sha256"] not in self.done:
            self.failed[row["sha256"]] = row

    def add(self, file_row: dict[str, Any], segment_rows: list[dict[str, Any]]) -> None:
        """One file's rows: its segments, then the row that marks it done or failed."""
        if segment_rows:
            append(self.directory / SEGMENTS, segment_rows)
        append(self.directory / FILES, [file_row])
        self.note(file_row)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every whole row of a JSON Lines file; a torn last line is cut off the file."""
    if not path.exists():
        return []
    data = path.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        with open(path, "r+b") as file:
            file.truncate(len(whole))
    return [json.loads(line) for line in whole.decode("utf-8").splitlines() if line.strip()]


def append(path: Path, rows: list[dict[str, Any]]) -> None:
    data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def rewrite_if_changed(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace `path` with `rows` (written aside, then renamed over it) if they differ."""
    if not path.exists() or len(rows) == len(read_rows(path)):
        return
    aside = path.with_suffix(".jsonl.part")
    aside.write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
    )
    os.replace(aside, path)
