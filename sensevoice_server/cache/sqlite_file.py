"""The SQLite cache file on disk: what counts as corrupt, setting a bad file aside, and the lock
that lets every process on the machine agree on when a fresh file may be created.

Why a lock of our own: SQLite names a database's companions after it (`PATH-wal`, `PATH-shm`),
and the last connection to close a database deletes them *by name*
(https://sqlite.org/howtocorrupt.html, section 2.4). So a file may be renamed aside while
other connections still use it (they keep their open descriptors, and the companions move with
it), but a fresh file may be created at PATH only once no process has the old one open: a late
close would delete the fresh file's write-ahead log. Every process holds a shared `flock` on
`PATH.lock` for as long as it has the file open; creating a fresh file takes it exclusively.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from pathlib import Path
from typing import NamedTuple

# Primary result codes (https://sqlite.org/rescode.html); extended codes carry them in the
# low byte. CORRUPT: "database disk image is malformed"; NOTADB: "file is not a database".
SQLITE_READONLY = 8
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26
COMPANIONS = ("-wal", "-shm")


class FileId(NamedTuple):
    """Which file a path names: a renamed file keeps its id, a fresh one gets another."""

    device: int
    inode: int


def file_id(path: Path) -> FileId | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return FileId(info.st_dev, info.st_ino)


def result_code(error: sqlite3.Error) -> int:
    return getattr(error, "sqlite_errorcode", 0) & 0xFF


def is_corruption(error: BaseException) -> bool:
    """A file that is not a database or whose pages are damaged: no retry will mend it."""
    return isinstance(error, sqlite3.DatabaseError) and result_code(error) in (
        SQLITE_CORRUPT,
        SQLITE_NOTADB,
    )


def is_read_only(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and result_code(error) == SQLITE_READONLY


def set_aside(path: Path) -> Path:
    """Rename `path` (and its -wal and -shm, so the kept file opens as it was) to
    `path.corrupt-YYYYmmdd-HHMMSS`, and return the new name. Call it holding the shared lock,
    having checked that `path` is still the file found corrupt."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    kept = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while any(Path(f"{kept}{end}").exists() for end in ("", *COMPANIONS)):
        n += 1
        kept = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.rename(path, kept)
    for end in COMPANIONS:
        with contextlib.suppress(FileNotFoundError):
            os.rename(f"{path}{end}", f"{kept}{end}")
    return kept


def remove_leftovers(path: Path) -> None:
    """Delete a -wal or -shm left beside a missing `path` (a connection that opened the old
    file as it was renamed makes new, empty ones). Only under the exclusive lock: then nobody
    uses them, and a fresh file must not start with another file's log."""
    for end in COMPANIONS:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{end}")


class FileLock:
    """A `flock` on `PATH.lock`: shared while this process has PATH open, exclusive while it
    creates a fresh PATH. flock (not fcntl's record locks) because its locks belong to the
    open file, so SQLite's own POSIX locks on the database are never disturbed by ours."""

    def __init__(self, path: Path) -> None:
        self.path = Path(f"{path}.lock")
        self._fd: int | None = None
        self.held: str | None = None  # "shared", "exclusive" or None

    def _descriptor(self) -> int:
        if self._fd is None:
            # Raises OSError when the directory cannot be written: the store is then unusable.
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        return self._fd

    def shared(self, wait_s: float) -> bool:
        """Take the lock shared, waiting up to `wait_s` for a process creating a fresh file."""
        fd = self._descriptor()
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.01)
            else:
                self.held = "shared"
                return True

    def exclusive(self) -> bool:
        """Take the lock exclusively if no other process holds it; never waits (another
        process may keep the old file open for as long as it runs)."""
        try:
            fcntl.flock(self._descriptor(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.held = "exclusive"
        return True

    def release(self) -> None:
        if self._fd is not None and self.held:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self.held = None

    def close(self) -> None:
        self.release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
