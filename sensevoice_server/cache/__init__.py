"""The result cache: transcripts kept under content-hash keys, so identical audio is decoded once.

docs/ARCHITECTURE.md, invariant 4, "the cache never lies": a key covers the whole audio
content, every option that changes the output and the model's fingerprint, so a new model or
setting never serves stale text; values are JSON (never pickle, so a shared Redis can't run
code in us); and a cache that fails degrades to "no cache" for that request, never to a
failed request.

Stores (all behind one small `Store` protocol):
- `SqliteStore`, the default: one SQLite file under the user's cache directory, shared safely
  by every process on the machine (WAL, busy timeout, short transactions), with TTL and a
  size cap enforced by least-recently-used eviction. A corrupt file is renamed aside and a
  fresh one takes its place (sqlite_file.py: safely, while other processes share it).
- `RedisStore`, when several machines share one cache: JSON strings with a TTL under our own
  key prefix; Redis's own `maxmemory` policy bounds its size.
- `NoStore`, for `none`.

`ResultCache` wraps a store: it never raises, counts hits, misses and errors, and coalesces
identical concurrent requests (single flight) so one upload sent twice at once is decoded once.
"""

from sensevoice_server.cache.keys import cache_key, sha256_hex
from sensevoice_server.cache.redis_store import RedisStore
from sensevoice_server.cache.result_cache import ResultCache, open_cache, open_store
from sensevoice_server.cache.sqlite_store import SqliteStore, default_sqlite_path
from sensevoice_server.cache.store import (
    CorruptEntry,
    NoStore,
    Store,
    StoreUnusable,
    decode,
    encode,
)

__all__ = [
    "CorruptEntry",
    "NoStore",
    "RedisStore",
    "ResultCache",
    "SqliteStore",
    "Store",
    "StoreUnusable",
    "cache_key",
    "decode",
    "default_sqlite_path",
    "encode",
    "open_cache",
    "open_store",
    "sha256_hex",
]
