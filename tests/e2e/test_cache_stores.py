"""The result cache against real stores: a SQLite file and a real redis-server subprocess.

The same behaviour tests run over both stores; store-specific ones (LRU eviction and
multi-process sharing for SQLite, outages and foreign keys for Redis) follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from sensevoice_server.cache import (
    RedisStore,
    ResultCache,
    SqliteStore,
    Store,
    StoreUnusable,
    cache_key,
    encode,
    open_cache,
    sha256_hex,
)
from sensevoice_server.testing.servers import RedisServer
from sensevoice_server.transcript import Transcript, parse_segment

ROOT = Path(__file__).resolve().parent.parent.parent
FINGERPRINT = "0f" * 32
VALUE = {
    "transcript": Transcript(
        duration=3.2,
        segments=[
            parse_segment("<|en|><|HAPPY|><|Speech|><|withitn|>Hello there.", 0.0, 1.5),
            parse_segment("<|zh|><|NEUTRAL|><|Laughter|><|withitn|>你好。", 1.5, 3.2),
        ],
    ).to_dict(),
    "model": "iic/SenseVoiceSmall",
    "inference_ms": 12.5,
}


def key(name: str = "clip") -> str:
    return cache_key(
        "pcm", sha256_hex(name.encode()), language="auto", use_itn=True, fingerprint=FINGERPRINT
    )


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests sharing the server never see each other."""
    return f"test:{uuid.uuid4().hex}:"


@pytest.fixture(params=["sqlite", "redis"])
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, prefix: str
) -> Iterator[Callable[..., Store]]:
    """Builds a store of the parametrized kind with the given TTL; closes it afterwards."""
    stores: list[Store] = []

    def make(ttl_s: float | None = 3600) -> Store:
        store: Store
        if request.param == "sqlite":
            store = SqliteStore(tmp_path / "results.sqlite3", max_bytes=1 << 20, ttl_s=ttl_s)
        else:
            url = request.getfixturevalue("redis_server").url
            store = RedisStore(url, ttl_s, prefix=prefix)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def write_raw(store: Store, key: str, junk: str) -> None:
    """Puts bytes that are not a JSON object straight into the store, around its API."""
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute("UPDATE results SET value = ? WHERE key = ?", (junk, key))
    else:
        assert isinstance(store, RedisStore)
        store._redis.set(store.prefix + key, junk)


# --- keys ---------------------------------------------------------------------------------
def test_key_changes_with_every_input_that_changes_the_output() -> None:
    audio = bytes(range(256)) * 100
    digest = sha256_hex(audio)
    base = cache_key("pcm", digest, language="auto", use_itn=True, fingerprint=FINGERPRINT)
    variants = [
        cache_key("bytes", digest, language="auto", use_itn=True, fingerprint=FINGERPRINT),
        cache_key("pcm", digest, language="en", use_itn=True, fingerprint=FINGERPRINT),
        cache_key("pcm", digest, language="auto", use_itn=False, fingerprint=FINGERPRINT),
        cache_key("pcm", digest, language="auto", use_itn=True, fingerprint="1f" * 32),
        cache_key(
            "pcm", digest, language="auto", use_itn=True, fingerprint=FINGERPRINT, extras=("words",)
        ),
        cache_key(
            "pcm",
            digest,
            language="auto",
            use_itn=True,
            fingerprint=FINGERPRINT,
            extras=("words", "logprobs"),
        ),
        # one byte changed at the very end: the whole content is hashed, not a prefix
        cache_key(
            "pcm",
            sha256_hex(audio[:-1] + b"\x00"),
            language="auto",
            use_itn=True,
            fingerprint=FINGERPRINT,
        ),
    ]
    assert len({base, *variants}) == 1 + len(variants)
    assert base == cache_key("pcm", digest, language="auto", use_itn=True, fingerprint=FINGERPRINT)


@pytest.mark.parametrize(
    ("kind", "language", "fingerprint"),
    [("wav", "auto", FINGERPRINT), ("pcm", "a:b", FINGERPRINT), ("pcm", "auto", "")],
)
def test_key_rejects_parts_that_could_collide(kind: str, language: str, fingerprint: str) -> None:
    with pytest.raises(ValueError):
        cache_key(kind, "ab" * 32, language=language, use_itn=True, fingerprint=fingerprint)


# --- every store --------------------------------------------------------------------------
def test_miss_then_hit_returns_an_equal_value(make_store: Callable[..., Store]) -> None:
    cache = ResultCache(make_store())
    assert cache.get(key()) is None
    cache.set(key(), VALUE)
    assert cache.get(key()) == VALUE
    hit = cache.get(key())
    assert hit is not None
    assert Transcript.from_dict(hit["transcript"]).segments[1].text == "你好。"
    stats = cache.stats()
    assert stats["hits"] == 2 and stats["misses"] == 1 and stats["errors"] == 0
    assert stats["hit_rate"] == pytest.approx(2 / 3)
    assert stats["entries"] == 1 and stats["bytes"] > len(encode(VALUE)) // 2


def test_entries_expire_after_their_ttl(make_store: Callable[..., Store]) -> None:
    cache = ResultCache(make_store(ttl_s=0.5))
    cache.set(key(), VALUE)
    assert cache.get(key()) == VALUE
    time.sleep(0.6)
    assert cache.get(key()) is None
    assert cache.stats()["entries"] == 0  # deleted, not just hidden


def test_clear_removes_every_entry(make_store: Callable[..., Store]) -> None:
    cache = ResultCache(make_store())
    for name in ("a", "b", "c"):
        cache.set(key(name), VALUE)
    assert cache.clear() == 3
    assert cache.get(key("a")) is None
    assert cache.stats()["entries"] == 0


def test_corrupt_entry_is_a_deleted_miss_and_an_error(make_store: Callable[..., Store]) -> None:
    cache = ResultCache(make_store())
    cache.set(key(), VALUE)
    write_raw(cache.store, key(), '{"segments": [')
    assert cache.get(key()) is None
    assert cache.stats()["errors"] == 1 and cache.stats()["entries"] == 0
    cache.set(key(), VALUE)  # a corrupt entry is not an outage: the store stays in use
    assert cache.get(key()) == VALUE


def test_a_value_that_is_not_json_is_skipped_not_pickled(make_store: Callable[..., Store]) -> None:
    cache = ResultCache(make_store())
    cache.set(key("nan"), {"score": float("nan")})
    cache.set(key("object"), {"audio": object()})
    assert cache.get(key("nan")) is None and cache.get(key("object")) is None
    assert cache.stats()["errors"] == 2


# --- SQLite -------------------------------------------------------------------------------
def test_sqlite_evicts_the_least_recently_used_entry_at_the_size_cap(tmp_path: Path) -> None:
    size = len(key("k0")) + len(encode(VALUE).encode())
    store = SqliteStore(tmp_path / "r.sqlite3", max_bytes=4 * size + size // 2, ttl_s=None)
    for name in ("k0", "k1", "k2", "k3"):
        store.set(key(name), VALUE)
    assert store.get(key("k0")) == VALUE  # k0 is now the most recently used
    store.set(key("k4"), VALUE)
    assert store.get(key("k1")) is None
    assert all(store.get(key(name)) == VALUE for name in ("k0", "k2", "k3", "k4"))
    assert store.stats() == {"entries": 4, "bytes": 4 * size}
    store.close()


def test_sqlite_skips_a_value_bigger_than_the_whole_cache(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "r.sqlite3", max_bytes=2000, ttl_s=None)
    store.set(key("small"), {"text": "hi"})
    store.set(key("huge"), {"text": "x" * 5000})
    assert store.get(key("huge")) is None
    assert store.get(key("small")) == {"text": "hi"}  # not evicted to make room in vain
    store.close()


def test_a_locked_sqlite_database_still_serves_hits_and_skips_writes(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    cache = ResultCache(SqliteStore(path, max_bytes=1 << 20, ttl_s=None, busy_timeout_s=0.1))
    cache.set(key(), VALUE)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock for a long time
    try:
        assert cache.get(key()) == VALUE  # WAL: reads don't wait; the LRU touch is skipped
        cache.set(key("new"), VALUE)  # gives up after the busy timeout, without raising
        assert cache.errors == 1 and cache.hits == 1
    finally:
        other.execute("ROLLBACK")
        other.close()
        cache.close()


WRITER = """
import sys
from sensevoice_server.cache import SqliteStore
store = SqliteStore(sys.argv[1], max_bytes=1 << 24, ttl_s=None)
for i in range(100):
    store.set(f"{sys.argv[2]}:{i}", {"writer": sys.argv[2], "i": i})
print(store.get("from-parent")["text"])
"""


def test_sqlite_file_is_shared_by_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    store = SqliteStore(path, max_bytes=1 << 24, ttl_s=None)
    store.set("from-parent", {"text": "written by the parent"})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name], env=env, stdout=subprocess.PIPE
        )
        for name in ("a", "b")
    ]
    for writer in writers:
        out, _ = writer.communicate(timeout=30)
        assert writer.returncode == 0
        assert out.decode().strip() == "written by the parent"
    assert store.get("a:99") == {"writer": "a", "i": 99}
    assert store.stats()["entries"] == 201
    store.close()


def test_sqlite_store_is_safe_to_share_between_threads(tmp_path: Path) -> None:
    cache = ResultCache(SqliteStore(tmp_path / "r.sqlite3", max_bytes=1 << 24, ttl_s=None))

    def work(thread: int) -> None:
        for i in range(50):
            cache.set(key(f"{thread}:{i}"), VALUE)
            assert cache.get(key(f"{thread}:{i}")) == VALUE
            cache.get(key("shared"))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.stats()["errors"] == 0 and cache.stats()["entries"] == 400
    cache.close()


@contextlib.contextmanager
def small_disk(path: Path, size_kb: int) -> Iterator[Path]:
    """A real, tiny file system at `path` (a tmpfs of `size_kb`), so a test can fill it; the
    test is skipped where mounting needs a privilege it lacks."""
    path.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs (a disk that can really fill up) needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def fill(directory: Path) -> None:
    """Write a file into `directory` until its disk is full."""
    with (directory / "filler").open("wb", buffering=0) as filler, contextlib.suppress(OSError):
        while True:  # until ENOSPC
            filler.write(b"\0" * 4096)


def test_a_full_disk_still_serves_the_hits_it_holds(tmp_path: Path) -> None:
    """A failed write pauses writes only: reads go on within the same pause."""
    with small_disk(tmp_path / "disk", 512) as disk:
        cache = ResultCache(
            SqliteStore(disk / "r.sqlite3", max_bytes=1 << 24, ttl_s=None), retry_after_s=60
        )
        cache.set(key("kept"), VALUE)
        fill(disk)
        cache.set(key("big"), {"text": "x" * 200_000})  # needs pages the disk has not got
        assert cache.errors == 1
        assert cache.get(key("kept")) == VALUE
        assert cache.get(key("big")) is None
        assert (cache.hits, cache.errors) == (1, 1)
        cache.close()


def test_a_full_redis_still_serves_the_hits_it_holds() -> None:
    server = RedisServer()
    server.start()
    cache = ResultCache(RedisStore(server.url, 3600), retry_after_s=60)
    try:
        cache.set(key("kept"), VALUE)
        admin = redis.Redis.from_url(server.url)
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")  # every write is now refused: "OOM command not allowed"
        admin.close()
        cache.set(key("new"), VALUE)
        assert cache.errors == 1
        assert cache.get(key("kept")) == VALUE  # reads are not paused by a refused write
        assert cache.get(key("new")) is None
    finally:
        cache.close()
        server.stop()


SHARER = """
import json, sys
from sensevoice_server.cache import SqliteStore, StoreUnusable
store = SqliteStore(sys.argv[1], max_bytes=1 << 24, ttl_s=None, retry_s=0)
for line in sys.stdin:
    try:
        answer = store.get(line.strip())
    except StoreUnusable:
        answer = "unusable"
    print(json.dumps(answer), flush=True)
"""


def smash(path: Path) -> None:
    """What a failing disk or a stray writer does under running stores: the database, its
    write-ahead log and its index all overwritten with random bytes, in place."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists():
            with name.open("r+b") as handle:
                handle.write(os.urandom(name.stat().st_size))


def test_processes_sharing_a_corrupt_file_move_to_one_fresh_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One process finds the file corrupt and renames it aside; a fresh file is created only
    once the other has let go of the old one (it checks on its next use), because SQLite's
    last close of the old file would delete the fresh file's -wal by name."""
    path = tmp_path / "shared.sqlite3"
    store = SqliteStore(path, max_bytes=1 << 24, ttl_s=None, retry_s=0)
    store.set("before", {"text": "written before"})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    other = subprocess.Popen(
        [sys.executable, "-c", SHARER, str(path)], env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert other.stdin is not None and other.stdout is not None

    def other_gets(name: str) -> Any:
        assert other.stdin is not None and other.stdout is not None
        other.stdin.write(name + "\n")
        other.stdin.flush()
        return json.loads(other.stdout.readline())

    try:
        assert other_gets("before") == {"text": "written before"}  # it has the file open
        smash(path)
        with pytest.raises(StoreUnusable, match="corrupt"):
            store.get("before")
        with pytest.raises(StoreUnusable, match="being replaced"):
            store.set("after", {"text": "written after"})  # the other still has the old file
        assert not path.exists()
        assert other_gets("before") is None  # it let go, and created the fresh file
        store.set("after", {"text": "written after"})
        assert other_gets("after") == {"text": "written after"}  # one file, shared again
    finally:
        other.stdin.close()
        other.wait(10)
        store.close()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    kept = sorted(tmp_path.glob("shared.sqlite3.corrupt-*"))
    assert [p.name[len(kept[0].name) :] for p in kept] == ["", "-shm", "-wal"]
    assert str(kept[0]) in warning and str(path) in warning
    assert other.stderr is not None and other.stderr.read() == ""  # no warning there: one line


# --- Redis --------------------------------------------------------------------------------
def test_redis_clear_leaves_other_applications_keys_alone(
    redis_server: RedisServer, prefix: str
) -> None:
    cache = ResultCache(RedisStore(redis_server.url, 3600, prefix=prefix))
    other = redis.Redis.from_url(redis_server.url)
    other.set(f"other-app:{prefix}", "keep me")
    other.set(prefix.rstrip(":") + "x", "not under our prefix either")
    cache.set(key(), VALUE)
    assert cache.clear() == 1
    assert other.get(f"other-app:{prefix}") == b"keep me"
    assert other.get(prefix.rstrip(":") + "x") is not None
    other.close()
    cache.close()


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    return call(), time.perf_counter() - started


def test_redis_outage_is_a_fast_miss_and_a_restart_is_picked_up() -> None:
    server = RedisServer()
    server.start()
    cache = ResultCache(RedisStore(server.url, 3600), retry_after_s=0)
    try:
        cache.set(key(), VALUE)
        assert cache.get(key()) == VALUE
        server.stop()

        value, seconds = timed(lambda: cache.get(key()))
        assert value is None and seconds < 1
        _, seconds = timed(lambda: cache.set(key(), VALUE))
        assert seconds < 1
        stats = cache.stats()
        assert stats["errors"] == 3  # get, set, and stats itself
        assert stats["entries"] is None and stats["bytes"] is None

        server.start()  # same port, empty (no persistence); same ResultCache
        assert cache.get(key()) is None
        cache.set(key(), VALUE)
        assert cache.get(key()) == VALUE
        assert cache.stats()["errors"] == 3 and cache.stats()["entries"] == 1

        # A restart between two requests leaves a stale pooled connection: redis-py notices
        # as it takes it from the pool and reconnects, so the caller never sees it.
        server.stop()
        server.start()
        cache.set(key(), VALUE)
        assert cache.get(key()) == VALUE
        assert cache.errors == 3
    finally:
        cache.close()
        server.stop()


def test_after_a_failure_the_store_is_left_alone_for_a_while() -> None:
    server = RedisServer()  # never started: nothing listens on its port
    cache = ResultCache(RedisStore(server.url, 3600), retry_after_s=60)
    assert cache.get(key()) is None
    cache.set(key(), VALUE)
    assert cache.get(key()) is None
    assert cache.errors == 1 and cache.misses == 2  # only the first call reached the store
    cache.close()


# --- single flight ------------------------------------------------------------------------
def test_identical_concurrent_requests_compute_once(make_store: Callable[..., Store]) -> None:
    cache = ResultCache(make_store())
    calls = 0

    async def compute() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return VALUE

    async def main() -> list[tuple[dict[str, Any], bool]]:
        return await asyncio.gather(*(cache.get_or_compute(key(), compute) for _ in range(8)))

    results = asyncio.run(main())
    assert calls == 1
    # Nobody found it in the store, so nobody reports a cache hit, waiters included.
    assert results == [(VALUE, False)] * 8
    assert cache.coalesced == 7 and cache.misses == 1
    assert asyncio.run(cache.get_or_compute(key(), compute)) == (VALUE, True)
    assert calls == 1


def test_a_failed_computation_reaches_every_waiter_and_is_not_cached(
    make_store: Callable[..., Store],
) -> None:
    cache = ResultCache(make_store())
    calls = 0

    async def fail() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        raise RuntimeError("model exploded")

    async def main() -> list[Any]:
        calls = (cache.get_or_compute(key(), fail) for _ in range(8))
        return list(await asyncio.gather(*calls, return_exceptions=True))

    results = asyncio.run(main())
    assert calls == 1
    assert all(isinstance(r, RuntimeError) and str(r) == "model exploded" for r in results)
    assert cache.get(key()) is None

    async def succeed() -> dict[str, Any]:
        return VALUE

    assert asyncio.run(cache.get_or_compute(key(), succeed)) == (VALUE, False)


def test_a_caller_that_goes_away_does_not_cancel_the_others(tmp_path: Path) -> None:
    cache = ResultCache(SqliteStore(tmp_path / "r.sqlite3", max_bytes=1 << 20, ttl_s=None))
    started = asyncio.Event()

    async def compute() -> dict[str, Any]:
        started.set()
        await asyncio.sleep(0.05)
        return VALUE

    async def main() -> tuple[dict[str, Any], bool]:
        first = asyncio.create_task(cache.get_or_compute(key(), compute))
        second = asyncio.create_task(cache.get_or_compute(key(), compute))
        await started.wait()
        first.cancel()  # e.g. its client disconnected
        return await second

    assert asyncio.run(main()) == (VALUE, False)
    assert cache.get(key()) == VALUE
    cache.close()


# --- open_cache ---------------------------------------------------------------------------
def test_open_cache_defaults_to_a_sqlite_file_in_the_user_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = open_cache("sqlite", max_bytes=1 << 20, ttl_s=60)
    assert cache.store.name == "sqlite" and cache.enabled
    assert (tmp_path / "sensevoice" / "results.sqlite3").is_file()
    cache.close()


def test_open_cache_understands_each_url_form(tmp_path: Path, redis_server: RedisServer) -> None:
    sqlite_cache = open_cache(f"sqlite://{tmp_path}/x.sqlite3", max_bytes=1 << 20, ttl_s=60)
    assert sqlite_cache.store.location == str(tmp_path / "x.sqlite3")
    redis_cache = open_cache(redis_server.url, max_bytes=1 << 20, ttl_s=60)
    assert redis_cache.store.name == "redis"
    assert redis_cache.stats()["errors"] == 0
    none = open_cache("none", max_bytes=1 << 20, ttl_s=60)
    none.set(key(), VALUE)
    assert none.get(key()) is None and not none.enabled
    secret = open_cache("redis://:hunter2@127.0.0.1:1/0", max_bytes=1, ttl_s=1)
    assert "hunter2" not in secret.store.location
    for cache in (sqlite_cache, redis_cache, none, secret):
        cache.close()


@pytest.mark.parametrize("url", ["memcached://localhost", "sqlite://relative/x.db", "sqlit"])
def test_open_cache_rejects_urls_it_does_not_understand(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite"):
        open_cache(url, max_bytes=1 << 20, ttl_s=60)
