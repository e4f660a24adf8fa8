"""What each cache URL opens (cache/result_cache.open_store); the stores themselves are
exercised against real SQLite files and a real Redis in tests/e2e/test_cache_stores.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensevoice_server.cache.result_cache import open_store


@pytest.mark.parametrize("url", ["none", "off", "OFF", ""])
def test_none_and_off_turn_the_cache_off(url: str) -> None:
    store = open_store(url, max_bytes=10**6, ttl_s=None)
    assert store.name == "none"


def test_a_sqlite_url_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    store = open_store(f"sqlite://{path}", max_bytes=10**6, ttl_s=None)
    try:
        assert (store.name, store.location) == ("sqlite", str(path))
    finally:
        store.close()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite://relative.db", "absolute path"),
        ("memcached://host:11211", "unknown cache URL"),
        ("redis-typo", "unknown cache URL"),
    ],
)
def test_a_url_it_does_not_understand_says_what_it_takes(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        open_store(url, max_bytes=10**6, ttl_s=None)
