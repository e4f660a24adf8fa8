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

Parquet (`--format parquet`) keeps the same columns in shards, `files-STAMP.parquet` and
`segments-STAMP.parquet`, STAMP growing with time so that shards sort in the order they were
written. A shard is a batch of files (FLUSH_FILES of them, or what FLUSH_S seconds gathered,
or the rest at the end): Parquet cannot be appended to, and a shard per file would leave a
corpus as a million tiny files. Each is written aside and renamed into place, segments
first: a files shard is the mark that its batch is done, so a segments shard without one is
from a run that died between the two renames and is removed when the manifest is opened,
with any shard left half-written aside. A crash loses the batch in flight; the rerun redoes
it. The manifest's rows are read from both formats, so a job may change format and resume.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

FILES = "files.jsonl"
SEGMENTS = "segments.jsonl"
FORMATS = ("jsonl", "parquet")
FLUSH_FILES = 500  # files per Parquet shard at most
FLUSH_S = 60.0  # a shard at least this often: a crash loses at most about a minute of work


@dataclass
class Manifest:
    directory: Path
    format: str = "jsonl"
    done: dict[str, dict[str, Any]] = field(default_factory=dict)  # sha256 -> its files row
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)  # sha256 -> latest failure
    listed: set[tuple[str, str]] = field(default_factory=set)  # (path, sha256) with a row
    shard: ParquetShard | None = None  # rows not yet in a Parquet shard

    @classmethod
    def open(cls, directory: Path, format: str = "jsonl") -> Manifest:
        """The manifest in `directory` (made if need be), its torn tail, orphan segment rows
        and unfinished shards removed."""
        directory.mkdir(parents=True, exist_ok=True)
        remove_unfinished_shards(directory)
        manifest = cls(directory, format)
        for row in read_rows(directory / FILES) + read_shards(directory, "files"):
            manifest.note(row)
        kept = [row for row in read_rows(directory / SEGMENTS) if row["sha256"] in manifest.done]
        rewrite_if_changed(directory / SEGMENTS, kept)
        if format == "parquet":
            manifest.shard = ParquetShard(directory)
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
        if self.shard is not None:
            self.shard.add(file_row, segment_rows)
        else:
            if segment_rows:
                append(self.directory / SEGMENTS, segment_rows)
            append(self.directory / FILES, [file_row])
        self.note(file_row)

    def close(self) -> None:
        """Write the rows still held (Parquet: the last shard)."""
        if self.shard is not None:
            self.shard.write()


def read_manifest(directory: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every files row and every segments row, in the order written, from either format."""
    files = read_rows(directory / FILES) + read_shards(directory, "files")
    segments = read_rows(directory / SEGMENTS) + read_shards(directory, "segments")
    return files, segments


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


# --- Parquet -----------------------------------------------------------------------------
def schemas() -> dict[str, pa.Schema]:
    """The columns of the JSON Lines rows, typed; `words` and `speaker` are null where the
    JSON rows leave them out."""
    import pyarrow as pa

    text, number = pa.string(), pa.float64()
    word = pa.struct([("word", text), ("start", number), ("end", number)])
    return {
        "files": pa.schema([("path", text), ("sha256", text), ("status", text),
                            ("error", text), ("duration", number), ("language", text)]),
        "segments": pa.schema([("sha256", text), ("path", text), ("start", number),
                               ("end", number), ("text", text), ("plain_text", text),
                               ("language", text), ("emotion", text),
                               ("events", pa.list_(text)), ("words", pa.list_(word)),
                               ("speaker", pa.int64())]),
    }  # fmt: skip


@dataclass
class ParquetShard:
    """The rows of files finished since the last shard was written."""

    directory: Path
    files: list[dict[str, Any]] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    since: float = field(default_factory=time.monotonic)

    def add(self, file_row: dict[str, Any], segment_rows: list[dict[str, Any]]) -> None:
        self.files.append(file_row)
        self.segments += segment_rows
        if len(self.files) >= FLUSH_FILES or time.monotonic() - self.since >= FLUSH_S:
            self.write()

    def write(self) -> None:
        """The rows held, as a segments shard and then the files shard that marks it done."""
        if self.files:
            stamp = f"{time.time_ns():020d}"
            if self.segments:
                write_shard(self.directory / f"segments-{stamp}.parquet", self.segments, "segments")
            write_shard(self.directory / f"files-{stamp}.parquet", self.files, "files")
        self.files, self.segments, self.since = [], [], time.monotonic()


def write_shard(path: Path, rows: list[dict[str, Any]], kind: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    aside = path.with_name(f".{path.name}.part")
    pq.write_table(pa.Table.from_pylist(rows, schema=schemas()[kind]), aside)
    fd = os.open(aside, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(aside, path)


def shards(directory: Path, kind: str) -> list[Path]:
    return sorted(directory.glob(f"{kind}-*.parquet"))


def read_shards(directory: Path, kind: str) -> list[dict[str, Any]]:
    found = shards(directory, kind)
    if not found:
        return []
    import pyarrow.parquet as pq

    rows = [row for path in found for row in pq.read_table(path).to_pylist()]
    for row in rows if kind == "segments" else []:  # as the JSON rows: absent unless asked for
        for column in ("words", "speaker"):
            if row[column] is None:
                del row[column]
    return rows


def remove_unfinished_shards(directory: Path) -> None:
    """Shards left half-written aside, and segments shards whose files shard never came."""
    for aside in directory.glob(".*.parquet.part"):
        aside.unlink()
    for path in shards(directory, "segments"):
        if not (directory / path.name.replace("segments-", "files-", 1)).exists():
            path.unlink()
