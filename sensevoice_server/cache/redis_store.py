"""The shared store: Redis, for several processes or machines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sensevoice_server.cache.store import CorruptEntry, decode, encode
from sensevoice_server.redaction import redact


class RedisStore:
    """JSON strings under `prefix` in a Redis shared by several processes or machines.

    Timeouts are short and retries few, so a dead Redis costs each call milliseconds (refused)
    or about a second at worst (unreachable host). redis-py reconnects on its own: it checks a
    pooled connection as it takes it and reopens one the server closed (a restart), and its
    one retry covers a connection that drops mid-command (a restart:
    tests/e2e/test_cache_stores.py::test_redis_outage_is_a_fast_miss_and_a_restart_is_picked_up).
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
