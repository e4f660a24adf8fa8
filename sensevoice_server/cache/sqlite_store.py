"""The embedded default store: one SQLite file shared by every process on a machine."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sensevoice_server.cache.store import CorruptEntry, decode, encode

log = logging.getLogger("sensevoice_server.cache")


def default_sqlite_path() -> Path:
    """`$XDG_CACHE_HOME/sensevoice/results.sqlite3`, `~/.cache/...` when that is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sensevoice" / "results.sqlite3"


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
    exceed `max_bytes`, the least recently used entries are evicted. Opening creates the
    directory and schema, so a bad path fails at start-up rather than on the first request.
    """

    name = "sqlite"

    def __init__(
        self,
        path: str | Path,
        max_bytes: int,
        ttl_s: float | None,
        *,
        busy_timeout_s: float = 1.0,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.path = Path(path)
        self.location = str(self.path)
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s if ttl_s and ttl_s > 0 else None
        self._busy_timeout_s = busy_timeout_s
        # A pool rather than thread-locals: anyio's worker threads come and go, and a
        # thread-local connection would leak with each one.
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as conn:
            conn.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves and keep transactions short.
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: commits stay atomic; a power cut may lose the last few entries,
        # which for a cache costs only a recomputation.
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise RuntimeError("the SQLite result cache is closed")
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        finally:
            if self.closed:
                conn.close()
            else:
                self._idle.put(conn)

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
        # Connections in use are closed as they come back to the pool.
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
