"""The SQLite store's file never stops the service: a corrupt one is kept aside and replaced,
one that cannot be opened means "no cache" (and is tried again), one that cannot be written
still serves its hits. Each case says so in one WARNING line, never a traceback.

(Several processes sharing one file, and a full disk: tests/e2e/test_cache_stores.py; the
whole app on a corrupt file: tests/e2e/test_cache_recovery.py.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sensevoice_server.cache import ResultCache, SqliteStore, StoreUnusable

LOGGER = "sensevoice_server.cache"
VALUE = {"text": "hello", "segments": []}


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def kept_files(path: Path) -> list[Path]:
    """The corrupt files set aside (their -wal and -shm, when kept, go with them)."""
    kept = path.parent.glob(f"{path.name}.corrupt-*")
    return sorted(p for p in kept if not p.name.endswith(("-wal", "-shm")))


def real_database(path: Path, entries: int = 300) -> None:
    """A cache file as the store writes it, with its log folded in (so every page is in it)."""
    store = SqliteStore(path, max_bytes=1 << 26, ttl_s=None)
    for i in range(entries):
        store.set(f"k{i}", {"text": "x" * 2000, "i": i})
    store.close()


def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def truncated(path: Path) -> None:
    real_database(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def damaged_pages(path: Path) -> None:
    real_database(path)
    data = bytearray(path.read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)  # the header page intact, every other page not
    path.write_bytes(bytes(data))


def smash(path: Path) -> None:
    """What a failing disk or a stray writer does under a running store: the database, its
    write-ahead log and its index all overwritten with random bytes, in place."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists():
            size = name.stat().st_size
            with name.open("r+b") as handle:
                handle.write(os.urandom(size))


@pytest.mark.parametrize("damage", [garbage, truncated, damaged_pages])
def test_a_corrupt_file_is_kept_aside_and_a_fresh_one_serves(
    damage: Callable[[Path], None], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "results.sqlite3"
    damage(path)
    before = path.read_bytes()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        cache = ResultCache(SqliteStore(path, max_bytes=1 << 20, ttl_s=None))
        cache.set("key", VALUE)
        assert cache.get("key") == VALUE
    (kept,) = kept_files(path)
    assert kept.read_bytes() == before  # kept as it was, for whoever wants to look
    (warning,) = warnings_of(caplog)
    assert str(path) in warning and str(kept) in warning and "corrupt" in warning
    assert "Traceback" not in caplog.text and cache.errors == 0
    cache.close()


def test_a_path_that_is_a_directory_serves_without_a_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "results.sqlite3"
    path.mkdir()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        cache = ResultCache(SqliteStore(path, max_bytes=1 << 20, ttl_s=None, retry_s=0))
        for _ in range(3):
            cache.set("key", VALUE)
            assert cache.get("key") is None
        assert cache.check() is None  # reported once already: no second warning at start-up
    (warning,) = warnings_of(caplog)
    assert f"cannot use {path}" in warning and "serving without a result cache" in warning
    assert path.is_dir() and not kept_files(path)  # an operator's directory is not moved
    assert cache.errors == 6 and cache.stats()["entries"] is None
    cache.close()


def test_an_unusable_directory_is_tried_again_and_used_once_it_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be")
    path = blocker / "results.sqlite3"
    with caplog.at_level(logging.INFO, logger=LOGGER):
        store = SqliteStore(path, max_bytes=1 << 20, ttl_s=None, retry_s=0.05)
        with pytest.raises(StoreUnusable):
            store.get("key")
        blocker.unlink()
        time.sleep(0.06)
        store.set("key", VALUE)
        assert store.get("key") == VALUE
    (warning,) = warnings_of(caplog)
    assert f"cannot use {path}" in warning and "trying again every 0.05 s" in warning
    assert f"result cache: {path} is in use again" in caplog.messages
    store.close()


def test_corruption_found_while_running_is_a_miss_and_the_next_call_is_fresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "results.sqlite3"
    cache = ResultCache(SqliteStore(path, max_bytes=1 << 20, ttl_s=None))
    cache.set("old", VALUE)
    assert cache.get("old") == VALUE
    smash(path)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert cache.get("old") is None  # that request runs without the cache
        assert cache.errors == 1
        cache.set("new", VALUE)  # the next one already has a fresh file
        assert cache.get("new") == VALUE and cache.get("old") is None
    (kept,) = kept_files(path)
    (warning,) = warnings_of(caplog)
    assert str(path) in warning and str(kept) in warning
    assert cache.errors == 1 and "Traceback" not in caplog.text
    cache.close()


def test_a_fresh_file_waits_for_a_thread_still_using_the_corrupt_one(tmp_path: Path) -> None:
    """SQLite's last close of a file deletes `PATH-wal` by name, so a fresh file at PATH must
    not exist while any connection to the old one is open: until that thread is done, calls
    are served without the cache; then the fresh file is used."""
    path = tmp_path / "results.sqlite3"
    store = SqliteStore(path, max_bytes=1 << 20, ttl_s=None)
    store.set("old", VALUE)
    holding, release = threading.Event(), threading.Event()

    def slow_reader() -> None:  # a thread in the middle of a call when the file goes bad
        with store._connection():
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=slow_reader)
    thread.start()
    assert holding.wait(10)
    smash(path)
    with pytest.raises(StoreUnusable):
        store.get("old")
    with pytest.raises(StoreUnusable, match="being replaced"):
        store.set("new", VALUE)
    assert not path.exists()  # set aside; no fresh file yet
    release.set()
    thread.join()
    store.set("new", VALUE)
    assert store.get("new") == VALUE and len(kept_files(path)) == 1
    store.close()


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """The file made unwritable even for root (ext4's immutable flag), or the test skipped."""
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (needs root on ext4 or similar)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_file_still_serves_its_hits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "results.sqlite3"
    store = SqliteStore(path, max_bytes=1 << 20, ttl_s=None)
    store.set("kept", VALUE)
    store.close()
    with immutable(path), caplog.at_level(logging.INFO, logger=LOGGER):
        cache = ResultCache(SqliteStore(path, max_bytes=1 << 20, ttl_s=None))
        assert cache.store.read_only  # type: ignore[attr-defined]
        cache.set("new", VALUE)  # not stored, and not an error each time: it was said once
        assert cache.get("kept") == VALUE
        assert cache.get("new") is None
        assert (cache.hits, cache.errors) == (1, 0)
        cache.close()
    (warning,) = warnings_of(caplog)
    assert "is read-only: serving the hits it holds" in warning
    assert "Traceback" not in caplog.text


def test_a_store_closed_mid_call_closes_that_connection_when_it_comes_back(
    tmp_path: Path,
) -> None:
    path = tmp_path / "results.sqlite3"
    store = SqliteStore(path, max_bytes=1 << 20, ttl_s=None)
    with store._connection() as conn:
        store.close()
        store.close()  # idempotent
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")
    with pytest.raises(RuntimeError, match="closed"):
        store.get("key")


@pytest.mark.parametrize("name", ["plain.sqlite3", "odd ?#%& name.sqlite3"])
def test_any_path_opens_as_given(name: str, tmp_path: Path) -> None:
    """The store opens files through SQLite URIs (mode=rw: never create one by accident);
    characters that mean something in a URI, and the leading "//" that
    sqlite:////abs/path gives, still name the file itself."""
    for path in (tmp_path / name, Path("/" + str(tmp_path / name))):
        store = SqliteStore(path, max_bytes=1 << 20, ttl_s=None)
        store.set("key", VALUE)
        assert store.get("key") == VALUE
        store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name, f"{name}.lock"]
