"""The result cache: transcripts kept under content-hash keys, so identical audio is decoded once.

DESIGN.md invariant 4, "the cache never lies": a key covers the whole audio content, every
option that changes the output and the model's fingerprint, so a new model or setting never
serves stale text; values are JSON (never pickle, so a shared Redis can't run code in us); and
a cache that fails degrades to "no cache" for that request, never to a failed request.

Stores (all behind one small `Store` protocol):
- `SqliteStore`, the default: one SQLite file under the user's cache directory, shared safely
  by every process on the machine (WAL, busy timeout, short transactions), with TTL and a
  size cap enforced by least-recently-used eviction.
- `RedisStore`, when several machines share one cache: JSON strings with a TTL under our own
  key prefix; Redis's own `maxmemory` policy bounds its size.
- `NoStore`, for `none`.

`ResultCache` wraps a store: it never raises, counts hits, misses and errors, and coalesces
identical concurrent requests (single flight) so one upload sent twice at once is decoded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import redis
from anyio import to_thread
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

# Bump when the shape of stored values changes: old entries then simply stop matching.
KEY_VERSION = "v1"
KINDS = frozenset({"pcm", "bytes"})
WARN_EVERY_S = 10.0
# Failures that mean "the store is unavailable" (as opposed to one bad entry or value): after
# one of these, ResultCache leaves the store alone for `retry_after_s`.
# (Any Redis error counts: a refused write at maxmemory or a wrong password is an outage too.)
UNAVAILABLE = (redis.RedisError, sqlite3.DatabaseError, OSError)


def sha256_hex(data: bytes) -> str:
    """Hash of the whole content: a prefix hash would let two different clips share a key."""
    return hashlib.sha256(data).hexdigest()


def cache_key(kind: str, digest: str, *, language: str, use_itn: bool, fingerprint: str) -> str:
    """The one place keys are built; everything that changes a transcript goes in.

    - `kind` + `digest`: what the audio is. "pcm" is the SHA-256 of the decoded 16 kHz mono
      float32 samples (the same speech in another container still hits); "bytes" is the
      SHA-256 of the upload's raw bytes, so a repeated upload is answered before decoding.
    - `language`, `use_itn`: the request options that change the model's output.
    - `fingerprint`: the Engine's model fingerprint, which already covers the weights, the VAD
      model and the VAD/merge settings, so an upgraded model never serves stale text.
    - `KEY_VERSION`: the layout of the stored value.
    Parts are joined with ":" and kept readable so `redis-cli --scan` shows what a key is for.
    """
    if kind not in KINDS:
        raise ValueError(f"cache key kind must be one of {sorted(KINDS)}, not {kind!r}")
    parts = [KEY_VERSION, kind, digest, language, "itn" if use_itn else "noitn", fingerprint]
    if any(not part or ":" in part for part in parts):
        raise ValueError(f"cache key parts must be non-empty and free of ':': {parts!r}")
    return ":".join(parts)


class CorruptEntry(Exception):
    """A stored value that is not a JSON object; the store has already deleted it."""


class Store(Protocol):
    name: str  # "sqlite", "redis" or "none": the `store` field of stats and metrics
    location: str  # where it lives, safe to log (no passwords)

    def get(self, key: str) -> dict[str, Any] | None: ...
    def set(self, key: str, value: dict[str, Any]) -> None: ...
    def clear(self) -> int: ...  # how many entries were removed
    def stats(self) -> dict[str, int]: ...  # {"entries": ..., "bytes": ...}
    def close(self) -> None: ...


def encode(value: dict[str, Any]) -> str:
    # allow_nan=False: NaN is not JSON; fail the write rather than store what others can't read.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def decode(text: str | bytes) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise CorruptEntry(str(e)) from e
    if not isinstance(value, dict):
        raise CorruptEntry(f"expected a JSON object, got {type(value).__name__}")
    return value


def default_sqlite_path() -> Path:
    """`$XDG_CACHE_HOME/sensevoice/results.sqlite3`, `~/.cache/...` when that is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sensevoice" / "results.sqlite3"


# --- SQLite ------------------------------------------------------------------------------
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
            if self._closed:
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

    def close(self) -> None:
        # Connections in use are closed as they come back to the pool.
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


# --- Redis -------------------------------------------------------------------------------
class RedisStore:
    """JSON strings under `prefix` in a Redis shared by several processes or machines.

    Timeouts are short and retries few, so a dead Redis costs each call milliseconds (refused)
    or about a second at worst (unreachable host). redis-py reconnects on its own: it checks a
    pooled connection as it takes it and reopens one the server closed (a restart), and its
    one retry covers a connection that drops mid-command (tests/test_cache.py checks both).
    Size is bounded by Redis itself: give it `maxmemory` and `maxmemory-policy allkeys-lru`.
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        ttl_s: float | None,
        *,
        prefix: str = "sensevoice:result:",
        timeout_s: float = 0.5,
    ) -> None:
        self.location = redact(url)
        self.prefix = prefix
        self.ttl_ms = int(ttl_s * 1000) if ttl_s and ttl_s > 0 else None
        # No connection is made here: Redis may come up after us, and that is fine.
        self._redis = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            # redis-py's default is 10 retries with backoff: seconds per call when Redis is down.
            retry=Retry(NoBackoff(), 1),
        )

    def get(self, key: str) -> dict[str, Any] | None:
        text = self._redis.get(self.prefix + key)
        if text is None:
            return None
        try:
            return decode(text)
        except CorruptEntry:
            self._redis.delete(self.prefix + key)
            raise

    def set(self, key: str, value: dict[str, Any]) -> None:
        # SET with PX is SETEX in milliseconds: fractional TTLs work and the write is atomic.
        self._redis.set(self.prefix + key, encode(value).encode(), px=self.ttl_ms)

    def _our_keys(self) -> Iterator[list[bytes]]:
        """Our keys in batches; SCAN never blocks Redis the way KEYS would."""
        batch: list[bytes] = []
        for key in self._redis.scan_iter(match=self._pattern(), count=1000):
            batch.append(key)
            if len(batch) == 1000:
                yield batch
                batch = []
        if batch:
            yield batch

    def _pattern(self) -> str:
        # Escape glob characters so a prefix like "a[1]:" matches only itself.
        return "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix) + "*"

    def clear(self) -> int:
        # Only our prefix: the same Redis may hold other applications' data (never FLUSHDB).
        # UNLINK frees memory in the background instead of blocking Redis.
        return sum(self._redis.unlink(*batch) for batch in self._our_keys())

    def stats(self, sample: int = 100) -> dict[str, int]:
        """Entries counted with SCAN; bytes estimated from MEMORY USAGE of a sample.

        Counting must scan (other keys may share the database, so INFO's key count is not
        ours), which costs one round trip per 1000 keys in the database. Summing MEMORY USAGE
        for every key would cost a command per key, so the first `sample` keys stand in for
        the rest: fine for a dashboard, not an exact figure.
        """
        entries = 0
        sampled: list[bytes] = []
        for batch in self._our_keys():
            entries += len(batch)
            sampled.extend(batch[: sample - len(sampled)])
        if not sampled:
            return {"entries": 0, "bytes": 0}
        pipe = self._redis.pipeline(transaction=False)
        for key in sampled:
            pipe.memory_usage(key, samples=0)
        sizes = [size for size in pipe.execute() if size is not None]  # None: expired meanwhile
        average = sum(sizes) / len(sizes) if sizes else 0
        return {"entries": entries, "bytes": round(average * entries)}

    def close(self) -> None:
        self._redis.close()


def redact(url: str) -> str:
    """The URL without its password, for logs and stats."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class NoStore:
    """`none`: every lookup misses and nothing is kept."""

    name = "none"
    location = "none"

    def get(self, key: str) -> dict[str, Any] | None:
        return None

    def set(self, key: str, value: dict[str, Any]) -> None:
        pass

    def clear(self) -> int:
        return 0

    def stats(self) -> dict[str, int]:
        return {"entries": 0, "bytes": 0}

    def close(self) -> None:
        pass


# --- the cache the service uses ----------------------------------------------------------
class ResultCache:
    """A store that never raises, with counters and single flight.

    Any store failure (Redis down, disk full, database locked, corrupt entry) is a miss or a
    skipped write: it bumps `errors` and logs at most one warning per `WARN_EVERY_S`. After the
    store proves unavailable it is left alone for `retry_after_s`, so an unreachable Redis costs
    one timeout per interval instead of one per request; lookups in that window are misses
    (not errors). A corrupt entry or a value that is not JSON is an error but not an outage.

    The sync `get`/`set` block (disk or network): async code calls `aget`, `aset` or
    `get_or_compute`, which run them in a worker thread. Measured with a 4 KB value, a SQLite
    hit takes ~0.1 ms (half of it the LRU touch) and a local Redis one 0.1-0.2 ms, cheap enough
    for the loop, but a locked database or an unreachable Redis blocks for up to a second, and
    that must never stall every other request; the thread hop adds ~0.2 ms.
    """

    def __init__(self, store: Store, *, retry_after_s: float = 1.0) -> None:
        self.store = store
        self.retry_after_s = retry_after_s
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.coalesced = 0  # callers who waited on an identical request instead of computing
        self._lock = threading.Lock()  # counters are bumped from worker threads
        self._down_until = 0.0
        self._last_warning = -WARN_EVERY_S
        self._suppressed = 0
        # One in-flight computation per (event loop, key): asyncio tasks belong to one loop.
        self._inflight: dict[tuple[int, str], asyncio.Task[tuple[dict[str, Any], bool]]] = {}

    @property
    def enabled(self) -> bool:
        return not isinstance(self.store, NoStore)

    def get(self, key: str, *, count_miss: bool = True) -> dict[str, Any] | None:
        """The stored value or None. `count_miss=False` for a first look that, on a miss,
        is followed by a second one (upload bytes, then PCM): one request, one count."""
        value = None
        if time.monotonic() >= self._down_until:
            try:
                value = self.store.get(key)
            except Exception as e:
                self._failed("read", e)
        with self._lock:
            if value is not None:
                self.hits += 1
            elif count_miss:
                self.misses += 1
        return value

    def set(self, key: str, value: dict[str, Any]) -> None:
        if time.monotonic() < self._down_until:
            return
        try:
            self.store.set(key, value)
        except Exception as e:
            self._failed("write", e)

    async def aget(self, key: str, *, count_miss: bool = True) -> dict[str, Any] | None:
        return await to_thread.run_sync(lambda: self.get(key, count_miss=count_miss))

    async def aset(self, key: str, value: dict[str, Any]) -> None:
        await to_thread.run_sync(self.set, key, value)

    async def get_or_compute(
        self, key: str, compute: Callable[[], Awaitable[dict[str, Any]]]
    ) -> tuple[dict[str, Any], bool]:
        """The cached value, or `compute()`'s, computed once for identical concurrent calls.

        Returns (value, from_cache). Callers that arrive while the same key is being looked up
        or computed wait for that one and get its answer, from_cache included: False when it
        was computed (nobody found it in the store), True when the store had it. If compute
        raises, every waiting caller gets the exception, nothing is cached, and the next call
        computes again. The shared work runs as its own task, so a caller that goes away (a
        client disconnect cancels it) does not cancel the work the others are waiting for.
        """
        inflight = (id(asyncio.get_running_loop()), key)
        task = self._inflight.get(inflight)
        if task is None or task.done():  # done: only if cancelled before it started
            task = asyncio.ensure_future(self._get_or_compute(inflight, compute))
            # Nobody may be left to await a failure; retrieving it avoids asyncio's
            # "exception was never retrieved" noise (the callers who are there still get it).
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._inflight[inflight] = task
        else:
            with self._lock:
                self.coalesced += 1
        return await asyncio.shield(task)

    async def _get_or_compute(
        self, inflight: tuple[int, str], compute: Callable[[], Awaitable[dict[str, Any]]]
    ) -> tuple[dict[str, Any], bool]:
        key = inflight[1]
        try:
            cached = await self.aget(key)
            if cached is not None:
                return cached, True
            value = await compute()
            # Still in flight while writing, so a caller arriving now waits rather than
            # missing the store and computing a second time.
            await self.aset(key, value)
            return value, False
        finally:
            self._inflight.pop(inflight, None)

    def _failed(self, action: str, error: Exception) -> None:
        with self._lock:
            self.errors += 1
            now = time.monotonic()
            if isinstance(error, UNAVAILABLE):
                self._down_until = now + self.retry_after_s
            if now - self._last_warning < WARN_EVERY_S:
                self._suppressed += 1
                return
            self._last_warning, suppressed, self._suppressed = now, self._suppressed, 0
        log.warning(
            "result cache (%s at %s) %s failed, serving without it: %s: %s%s",
            self.store.name,
            self.store.location,
            action,
            type(error).__name__,
            error,
            f" ({suppressed} similar errors not logged)" if suppressed else "",
        )

    def stats(self) -> dict[str, Any]:
        """Counters since start; entries/bytes are None when the store can't be reached.

        Blocking (Redis stats scan our keys): async callers run it in a worker thread.
        """
        stored: dict[str, int | None] = {"entries": None, "bytes": None}
        if time.monotonic() >= self._down_until:
            try:
                stored = dict(self.store.stats())
            except Exception as e:
                self._failed("stats", e)
        with self._lock:
            lookups = self.hits + self.misses
            return {
                "store": self.store.name,
                "hits": self.hits,
                "misses": self.misses,
                "hit_rate": self.hits / lookups if lookups else 0.0,
                "entries": stored["entries"],
                "bytes": stored["bytes"],
                "errors": self.errors,
                "coalesced": self.coalesced,
            }

    def clear(self) -> int:
        """Remove every entry; raises if the store is unreachable (an operator asked)."""
        return self.store.clear()

    def close(self) -> None:
        self.store.close()


def open_cache(
    url: str, *, max_bytes: int, ttl_s: float | None, retry_after_s: float = 1.0
) -> ResultCache:
    """A ResultCache for `url`: "sqlite", "sqlite:///abs/path.sqlite3", "redis://host:port/db"
    (also rediss:// and unix://), or "none". `max_bytes` caps SQLite only (Redis has its own
    maxmemory); `ttl_s` (None or 0: no limit) applies to both."""
    scheme = url.split(":", 1)[0].lower() if url else "none"
    store: Store
    if url in ("none", ""):
        store = NoStore()
    elif url == "sqlite":
        store = SqliteStore(default_sqlite_path(), max_bytes, ttl_s)
    elif scheme == "sqlite":
        parts = urlsplit(url)
        if parts.netloc or not parts.path.startswith("/") or parts.query:
            raise ValueError(
                f"cache URL {url!r}: write an absolute path as sqlite:///abs/path.sqlite3 "
                "(three slashes), or just 'sqlite' for the default location"
            )
        store = SqliteStore(parts.path, max_bytes, ttl_s)
    elif scheme in ("redis", "rediss", "unix"):
        store = RedisStore(url, ttl_s)
    else:
        raise ValueError(
            f"unknown cache URL {redact(url)!r}: use 'sqlite' (a file under "
            f"{default_sqlite_path().parent}), 'sqlite:///abs/path.sqlite3', "
            "'redis://host:6379/0', or 'none'"
        )
    log.info("result cache: %s at %s", store.name, store.location)
    return ResultCache(store, retry_after_s=retry_after_s)
