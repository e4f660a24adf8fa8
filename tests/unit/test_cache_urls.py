"""What each cache URL opens (cache/result_cache.open_store), and an app whose cache does not
answer; the stores themselves are exercised against real SQLite files and a real Redis in
tests/e2e/test_cache_stores.py."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from sensevoice_server.cache.result_cache import open_store
from sensevoice_server.settings import Settings
from tests.support.inprocess import running_app
from tests.support.samples import EN


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


@pytest.mark.anyio
async def test_an_unreachable_redis_only_warns_and_the_app_serves(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    url = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once
    with caplog.at_level(logging.WARNING, logger="sensevoice_server.app"):
        async with running_app(settings.model_copy(update={"cache_url": url})) as running:
            answer = await running.client.post(
                "/api/transcribe", files={"file": ("en.wav", EN.read_bytes())}
            )
            assert answer.status_code == 200, answer.text
            deadline = time.monotonic() + 10  # the check runs beside start-up, in a thread
            while "RESULT CACHE UNAVAILABLE" not in caplog.text:
                assert time.monotonic() < deadline, caplog.text
                await asyncio.sleep(0.05)
    assert f"RESULT CACHE UNAVAILABLE: {url} does not answer" in caplog.text
