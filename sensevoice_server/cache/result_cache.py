"""The cache the service uses: never raises, counts, coalesces identical requests."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import redis
from anyio import to_thread

from sensevoice_server.cache.redis_store import RedisStore
from sensevoice_server.cache.sqlite_store import SqliteStore, default_sqlite_path
from sensevoice_server.cache.store import NoStore, Store, StoreUnusable
from sensevoice_server.redaction import redact

log = logging.getLogger("sensevoice_server.cache")

WARN_EVERY_S = 10.0
PROBE_KEY = "probe:start-up"  # never written: a lookup that shows the store answers
# Failures that mean "the store is unavailable" (as opposed to one bad entry or value): after
# one of these, ResultCache leaves the store alone for `retry_after_s`: writes only when a write
# failed (a full disk, a read-only file, Redis at maxmemory still serve hits), reads too when a
# read failed or the store cannot be reached at all.
UNAVAILABLE = (redis.RedisError, sqlite3.DatabaseError, OSError)
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)


class ResultCache:
    """A store that never raises, with counters and single flight.

    Any store failure (Redis down, disk full, database locked, corrupt entry) is a miss or a
    skipped write: it bumps `errors` and logs at most one warning per `WARN_EVERY_S` (none for
    `StoreUnusable`: the store has logged that itself). After the store proves unavailable it
    is left alone for `retry_after_s`, so an unreachable Redis costs one timeout per interval
    instead of one per request; lookups in that window are misses (not errors). A failed write
    pauses writes only: a store that cannot write (a full disk) still serves its hits. A
    corrupt entry or a value that is not JSON is an error but not an outage.

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
        self._reads_down_until = 0.0
        self._writes_down_until = 0.0
        self._last_warning = -WARN_EVERY_S
        self._suppressed = 0
        # One in-flight computation per (event loop, key): asyncio tasks belong to one loop.
        self._inflight: dict[tuple[int, str], asyncio.Task[tuple[dict[str, Any], bool]]] = {}
        self._waiting: dict[asyncio.Task[tuple[dict[str, Any], bool]], int] = {}

    @property
    def enabled(self) -> bool:
        return not isinstance(self.store, NoStore)

    def get(self, key: str, *, count_miss: bool = True) -> dict[str, Any] | None:
        """The stored value or None. `count_miss=False` for a first look that, on a miss,
        is followed by a second one (upload bytes, then PCM): one request, one count."""
        value = None
        if time.monotonic() >= self._reads_down_until:
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
        if time.monotonic() < self._writes_down_until:
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
        client disconnect cancels it) does not cancel the work the others are waiting for;
        when the last one waiting goes away, the work is cancelled: nobody wants it any more.
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
        self._waiting[task] = self._waiting.get(task, 0) + 1
        try:
            return await asyncio.shield(task)
        finally:
            self._waiting[task] -= 1
            if not self._waiting[task]:
                del self._waiting[task]
                if not task.done():
                    task.cancel()

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
            if isinstance(error, StoreUnusable):
                return  # the store said why, once, and retries on its own schedule
            now = time.monotonic()
            if isinstance(error, UNAVAILABLE):
                self._writes_down_until = now + self.retry_after_s
                if action != "write" or isinstance(error, UNREACHABLE):
                    self._reads_down_until = now + self.retry_after_s
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
        if time.monotonic() >= self._reads_down_until:
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

    def check(self) -> str | None:
        """Reach the store once (at start-up): None if it answers, else what went wrong.

        The cache is optional, so a store that fails here does not stop the service; the
        caller warns loudly, and every request then degrades to "no cache" as it would later.
        A store that has reported its own trouble (`StoreUnusable`) counts as answering: one
        warning is enough.
        """
        try:
            self.store.get(PROBE_KEY)
        except StoreUnusable:
            return None
        except Exception as error:
            return f"{type(error).__name__}: {error}"
        return None

    def check_soon(self, url: str) -> None:
        """`check()` once in a thread of its own, off the start-up path (an unknown host can
        take seconds to resolve), warning loudly if the store does not answer: the service
        runs on without a cache until it does."""

        def check() -> None:
            problem = self.check()
            if problem:
                log.warning(
                    "RESULT CACHE UNAVAILABLE: %s does not answer (%s). Serving without a "
                    "cache until it does; check --cache-url / SENSEVOICE_CACHE_URL.",
                    redact(url), problem,
                )  # fmt: skip

        if self.enabled:
            threading.Thread(target=check, name="cache-check", daemon=True).start()

    def clear(self) -> int:
        """Remove every entry; raises if the store is unreachable (an operator asked)."""
        return self.store.clear()

    def close(self) -> None:
        self.store.close()


def open_cache(
    url: str, *, max_bytes: int, ttl_s: float | None, retry_after_s: float = 1.0
) -> ResultCache:
    """A ResultCache over `open_store(url, ...)`."""
    store = open_store(url, max_bytes=max_bytes, ttl_s=ttl_s)
    log.info("result cache: %s at %s", store.name, store.location)
    return ResultCache(store, retry_after_s=retry_after_s)


def open_store(url: str, *, max_bytes: int, ttl_s: float | None) -> Store:
    """The store for `url`: "sqlite", "sqlite:///abs/path.sqlite3", "redis://host:port/db"
    (also rediss:// and unix://), or "none" (also "off"). `max_bytes` caps SQLite only
    (Redis has its own maxmemory); `ttl_s` (None or 0: no limit) applies to both. A URL it
    does not understand is a ValueError saying what it takes."""
    scheme = url.split(":", 1)[0].lower() if url else "none"
    store: Store
    if url.lower() in ("none", "off", ""):
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
    return store
