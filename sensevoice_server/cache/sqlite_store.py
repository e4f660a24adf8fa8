"""The embedded default store: one SQLite file shared by every process on a machine."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sensevoice_server.cache.sqlite_file import (
    FileId,
    FileLock,
    file_id,
    is_corruption,
    is_read_only,
    remove_leftovers,
    set_aside,
)
from sensevoice_server.cache.store import CorruptEntry, StoreUnusable, decode, encode
from sensevoice_server.user_dirs import cache_dir

log = logging.getLogger("sensevoice_server.cache")


def default_sqlite_path() -> Path:
    """`$XDG_CACHE_HOME/sensevoice/results.sqlite3`, `~/.cache/...` when that is unset."""
    return cache_dir() / "results.sqlite3"


# `totals` is kept by triggers inside the same transaction as each change, so the size cap
# and stats() cost O(1) instead of a SUM over every row; writes use an UPSERT (not INSERT OR
# REPLACE, whose implicit delete would skip the DELETE trigger).
SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    last_used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_last_used ON results (last_used);
CREATE INDEX IF NOT EXISTS results_created ON results (created);
CREATE TABLE IF NOT EXISTS totals (
    id INTEGER PRIMARY KEY CHECK (id = 0), entries INTEGER NOT NULL, bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals VALUES (0, 0, 0);
CREATE TRIGGER IF NOT EXISTS results_added AFTER INSERT ON results BEGIN
    UPDATE totals SET entries = entries + 1, bytes = bytes + new.size;
END;
CREATE TRIGGER IF NOT EXISTS results_removed AFTER DELETE ON results BEGIN
    UPDATE totals SET entries = entries - 1, bytes = bytes - old.size;
END;
CREATE TRIGGER IF NOT EXISTS results_resized AFTER UPDATE OF size ON results BEGIN
    UPDATE totals SET bytes = bytes - old.size + new.size;
END;
"""
UPSERT = """
INSERT INTO results (key, value, size, created, last_used) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, size = excluded.size,
    created = excluded.created, last_used = excluded.last_used
"""


class SqliteStore:
    """One SQLite file shared by every process on this machine.

    Safe across processes (WAL lets readers run beside one writer; `busy_timeout_s` makes a
    writer wait briefly for another) and across threads (a small pool hands each call its own
    connection). Each write is one transaction, so a crash never leaves half an entry.
    Entries older than `ttl_s` (None: no limit) are misses; when the stored keys and values
    exceed `max_bytes`, the least recently used entries are evicted.

    The file never stops the service. One that is not a database or is damaged (at start or
    while running) is renamed aside, `PATH.corrupt-<time>`, with one WARNING naming both files,
    and a fresh one takes its place: at once when no other process has the old one open, else
    as soon as they let go (each process checks on every use whether the file it holds is
    still the one at PATH). Calls in between, and calls while the file cannot be used at all
    (a directory that cannot be written, a path that is a directory), raise `StoreUnusable`,
    which the caller serves as "no cache"; opening is retried at most every `retry_s`. A file
    that cannot be written (read-only, a full disk) still serves hits: only writes fail.
    sqlite_file.py says why fresh files wait for the others.
    """

    name = "sqlite"

    def __init__(
        self,
        path: str | Path,
        max_bytes: int,
        ttl_s: float | None,
        *,
        busy_timeout_s: float = 1.0,
        retry_s: float = 1.0,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.path = Path(path)
        self.location = str(self.path)
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s if ttl_s and ttl_s > 0 else None
        self.read_only = False  # the file could be read but not written when it was opened
        self._busy_timeout_s = busy_timeout_s
        self._retry_s = retry_s
        self._lock = FileLock(self.path)
        # A pool rather than thread-locals: anyio's worker threads come and go, and a
        # thread-local connection would leak with each one. Everything below is guarded by
        # `_state`; a "generation" is one file at PATH, so a connection that comes back from
        # a file since set aside is closed rather than pooled.
        self._state = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._file: FileId | None = None  # the file in use; None: none (serving without)
        self._generation = 0
        self._in_use = 0  # connections to the current file, checked out
        self._old = 0  # connections to an earlier file, not yet closed
        self._next_open = 0.0
        self._problem: str | None = None  # what was last reported, so it is logged once
        self._closed = False
        with self._state:
            self._open_soon()

    # --- opening the file -------------------------------------------------------------
    def _open_soon(self) -> None:
        """Open the file at PATH (a fresh one if there is none), unless that was tried less
        than `retry_s` ago or connections to an earlier file are still open. Under `_state`."""
        now = time.monotonic()
        if self._closed or self._file is not None or self._old or now < self._next_open:
            return
        self._next_open = now + self._retry_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            opened = self._open()
        except (OSError, sqlite3.Error) as error:
            self._lock.release()
            self._report(
                f"cannot use {self.path} ({describe(error)}); serving without a result cache "
                f"and trying again every {self._retry_s:g} s while requests come"
            )
            return
        if opened:
            if self._problem:
                log.info("result cache: %s is in use again", self.path)
            self._problem = None

    def _open(self) -> bool:
        """True once a file is open; False when another process must act first."""
        for _ in range(3):  # each pass either opens or sees PATH change under it
            if self.path.exists():
                if not self._lock.shared(self._busy_timeout_s):
                    return False  # another process is creating a fresh file right now
                found = file_id(self.path)
                if found is None:  # set aside since we looked
                    self._lock.release()
                    continue
                try:
                    conn = self._prepared(self._connect())
                except sqlite3.DatabaseError as error:
                    if not is_corruption(error):
                        raise
                    moved = self._move_aside(found, error)
                    self._lock.release()
                    if not moved:
                        return False
                    continue
                self._adopt(conn, found)
                return True
            if not self._lock.exclusive():
                return False  # others still have the old file open; they let go on next use
            if self.path.exists():
                self._lock.release()
                continue
            remove_leftovers(self.path)
            conn = self._prepared(self._connect(create=True))
            found = file_id(self.path)
            if found is None or not self._lock.shared(self._busy_timeout_s):
                conn.close()
                self._lock.release()
                return False
            self._adopt(conn, found)
            log.info("result cache: created %s", self.path)
            return True
        return False

    def _connect(self, *, create: bool = False) -> sqlite3.Connection:
        # mode=rw never creates the file: a connection opened as another process renames
        # the file aside fails rather than making an empty one outside the lock protocol.
        # isolation_level=None: we issue BEGIN/COMMIT ourselves and keep transactions short.
        # "file://" + an absolute path: an empty authority, so even a path that starts with
        # "//" (which sqlite:////abs/path gives) stays a path (https://sqlite.org/uri.html).
        conn = sqlite3.connect(
            f"file://{quote(str(self.path.absolute()))}?mode={'rwc' if create else 'rw'}",
            uri=True,
            timeout=self._busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: commits stay atomic; a power cut may lose the last few
            # entries, which for a cache costs only a recomputation.
            conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepared(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        """`conn` with the schema in place (or closed, and the error raised)."""
        try:
            self._create_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        try:
            conn.executescript(SCHEMA)
        except sqlite3.OperationalError as error:
            if not is_read_only(error):
                raise
            # A file we may read but not write (a read-only mount, an immutable file): its
            # hits are still good, if the schema is there already.
            conn.execute("SELECT entries FROM totals").fetchone()
            if not self.read_only:
                log.warning(
                    "result cache: %s is read-only: serving the hits it holds and storing "
                    "nothing new until a restart",
                    self.path,
                )
            self.read_only = True

    def _adopt(self, conn: sqlite3.Connection, found: FileId) -> None:
        self._file = found
        self._idle.append(conn)

    def _move_aside(self, found: FileId, error: BaseException) -> bool:
        """Rename the corrupt file aside and say so in one line; False if it stays at PATH.
        Under `_state` and holding the shared lock: so no fresh file can appear at PATH until
        every connection to this one (ours and other processes') is closed, and none of them
        can then delete a fresh file's -wal by name."""
        if file_id(self.path) != found:
            log.info("result cache: another process set the corrupt %s aside", self.path)
            return True
        try:
            kept = set_aside(self.path)
        except OSError as move_error:
            self._report(
                f"{self.path} is corrupt ({error}) and cannot be moved aside "
                f"({describe(move_error)}); serving without a result cache"
            )
            return False
        log.warning(
            "result cache: %s is corrupt (%s); moved it to %s and a fresh cache takes its place",
            self.path, error, kept,
        )  # fmt: skip
        return True

    def _report(self, problem: str) -> None:
        if problem != self._problem:
            log.warning("result cache: %s", problem)
        self._problem = problem

    # --- connections ------------------------------------------------------------------
    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        conn, generation = self._checkout()
        try:
            yield conn
        except BaseException as error:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.rollback()
            self._check_corruption(generation, error)
            raise
        finally:
            self._checkin(conn, generation)

    def _checkout(self) -> tuple[sqlite3.Connection, int]:
        with self._state:
            if self._closed:
                raise RuntimeError("the SQLite result cache is closed")
            doomed: list[sqlite3.Connection] = []
            if self._file is not None and file_id(self.path) != self._file:
                # Another process found the file corrupt and set it aside: let go of it too.
                log.info("result cache: %s was replaced; reopening it", self.path)
                doomed = self._retire()
        for old in doomed:
            self._close_old(old)
        with self._state:
            self._open_soon()
            if self._file is None:
                raise StoreUnusable(self._problem or f"{self.path} is being replaced")
            conn = self._idle.pop() if self._idle else None
            self._in_use += 1
            generation = self._generation
        if conn is None:
            try:
                conn = self._connect()
            except BaseException as error:
                try:
                    self._check_corruption(generation, error)
                finally:
                    self._checkin(None, generation)
                raise
        return conn, generation

    def _checkin(self, conn: sqlite3.Connection | None, generation: int) -> None:
        with self._state:
            if generation == self._generation:
                self._in_use -= 1
                if conn is not None:
                    self._idle.append(conn)
                return
        self._close_old(conn)

    def _check_corruption(self, generation: int, error: BaseException) -> None:
        """If `error` says the file is corrupt: set it aside, and raise `StoreUnusable`."""
        if is_corruption(error):
            self._corrupted(generation, error)
            raise StoreUnusable(f"{self.path} is corrupt: {error}") from error

    def _corrupted(self, generation: int, error: BaseException) -> None:
        with self._state:
            if generation != self._generation or self._file is None:
                return  # another thread has dealt with this file already
            found = self._file
            # Renaming while connections are open is safe; a fresh file waits for them.
            self._move_aside(found, error)
            doomed = self._retire()
        for conn in doomed:
            self._close_old(conn)

    def _retire(self) -> list[sqlite3.Connection]:
        """Stop using the current file (under `_state`); returns the idle connections for
        the caller to close, and the rest are closed as they come back."""
        doomed, self._idle = self._idle, []
        self._old += self._in_use + len(doomed)
        self._in_use = 0
        self._file = None
        self._generation += 1
        self._next_open = 0.0
        if not self._old:
            self._let_go()
        return doomed

    def _close_old(self, conn: sqlite3.Connection | None) -> None:
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        with self._state:
            self._old -= 1
            if not self._old and self._file is None:
                self._let_go()

    def _let_go(self) -> None:
        """No connection of ours is left on an old file: others may now create a fresh one."""
        self._lock.release()
        if self._closed:
            self._lock.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so a busy wait happens here (bounded by
        # busy_timeout) and never as a deadlock half-way through the transaction.
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")

    def get(self, key: str) -> dict[str, Any] | None:
        now = time.time()
        with self._connection() as conn:
            row = conn.execute(
                "SELECT value, created FROM results WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            text, created = row
            # Matching `created` leaves alone a fresh entry another process wrote meanwhile.
            delete = ("DELETE FROM results WHERE key = ? AND created = ?", (key, created))
            if self.ttl_s is not None and created <= now - self.ttl_s:
                self._try_write(conn, *delete)
                return None
            try:
                value = decode(text)
            except CorruptEntry:
                self._try_write(conn, *delete)
                raise
            # Recency for least-recently-used eviction.
            self._try_write(conn, "UPDATE results SET last_used = ? WHERE key = ?", (now, key))
            return value

    @staticmethod
    def _try_write(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> None:
        """A write a read makes on the side; best effort, so that a read never fails (and
        a hit is still a hit) while another process holds the write lock past the timeout."""
        try:
            conn.execute(sql, params)
        except sqlite3.OperationalError as e:
            log.debug("result cache: skipped %r: %s", sql, e)

    def set(self, key: str, value: dict[str, Any]) -> None:
        text = encode(value)
        size = len(key.encode()) + len(text.encode())
        if size > self.max_bytes:
            log.debug(
                "not caching %s: %d bytes exceed the whole cache (%d)", key, size, self.max_bytes
            )
            return
        if self.read_only:
            return  # said once when the file was opened; each refusal would only repeat it
        now = time.time()
        with self._write() as conn:
            conn.execute(UPSERT, (key, text, size, now, now))
            if self.ttl_s is not None:
                conn.execute("DELETE FROM results WHERE created <= ?", (now - self.ttl_s,))
            self._evict(conn)

    def _evict(self, conn: sqlite3.Connection) -> None:
        """Delete least recently used entries until the total is within `max_bytes`."""
        (total,) = conn.execute("SELECT bytes FROM totals").fetchone()
        excess = total - self.max_bytes
        if excess <= 0:
            return
        victims = []
        # The cursor walks the last_used index and stops as soon as enough is freed.
        for victim, size in conn.execute("SELECT key, size FROM results ORDER BY last_used"):
            victims.append((victim,))
            excess -= size
            if excess <= 0:
                break
        conn.executemany("DELETE FROM results WHERE key = ?", victims)

    def clear(self) -> int:
        with self._write() as conn:
            return conn.execute("DELETE FROM results").rowcount

    def stats(self) -> dict[str, int]:
        with self._connection() as conn:
            entries, size = conn.execute("SELECT entries, bytes FROM totals").fetchone()
        return {"entries": entries, "bytes": size}

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Idempotent; connections in use are closed as they come back."""
        with self._state:
            if self._closed:
                return
            self._closed = True
            doomed = self._retire()
        for conn in doomed:
            self._close_old(conn)


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
