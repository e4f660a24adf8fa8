"""The result cache inside the running service: hits, keys, sharing, outages, single flight."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sensevoice_server.testing.audio_files import unique_speech
from sensevoice_server.testing.servers import AppProcess, RedisServer, run_apps
from tests.e2e.test_http_clients import post_file, scrape

TRANSCRIPT_FIELDS = ("text", "plain_text", "language", "duration", "segments", "model")


def clip(tmp_path: Path) -> Path:
    return unique_speech(tmp_path / f"{uuid.uuid4().hex}.wav", seed=uuid.uuid4().int % 2**32)


def transcribe(app: AppProcess, path: Path, **form) -> dict:
    answer = post_file(app.url, path, **form)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_hit_equals_the_fresh_answer(app_server: AppProcess, tmp_path: Path) -> None:
    path = clip(tmp_path)
    fresh = transcribe(app_server, path)
    cached = transcribe(app_server, path)
    assert (fresh["from_cache"], cached["from_cache"]) == (False, True)
    assert {k: cached[k] for k in TRANSCRIPT_FIELDS} == {k: fresh[k] for k in TRANSCRIPT_FIELDS}
    assert cached["processing_ms"] < fresh["processing_ms"]


def test_other_options_or_one_changed_byte_miss(app_server: AppProcess, tmp_path: Path) -> None:
    path = clip(tmp_path)
    assert not transcribe(app_server, path)["from_cache"]
    assert not transcribe(app_server, path, language="zh")["from_cache"]
    assert not transcribe(app_server, path, use_itn="false")["from_cache"]
    changed = bytearray(path.read_bytes())
    changed[-1] ^= 0x01  # the last sample, deep inside the audio data
    (tmp_path / "changed.wav").write_bytes(bytes(changed))
    assert not transcribe(app_server, tmp_path / "changed.wav")["from_cache"]
    assert transcribe(app_server, path, language="zh")["from_cache"]


def test_same_pcm_in_another_container_hits(app_server: AppProcess, tmp_path: Path) -> None:
    wav = clip(tmp_path)
    flac = tmp_path / "same.flac"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), str(flac)], check=True)
    assert flac.read_bytes() != wav.read_bytes()
    fresh = transcribe(app_server, wav)
    again = transcribe(app_server, flac)
    assert again["from_cache"] and again["segments"] == fresh["segments"]


def test_eight_identical_concurrent_requests_run_the_model_once(
    app_server: AppProcess, tmp_path: Path
) -> None:
    path = clip(tmp_path)
    before = scrape(app_server.url)[("sensevoice_model_inferences_total", ())]
    answers: list[dict] = []
    threads = [threading.Thread(target=lambda: answers.append(transcribe(app_server, path)))
               for _ in range(8)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = scrape(app_server.url)[("sensevoice_model_inferences_total", ())]
    assert after - before == 1
    assert len(answers) == 8 and len({a["text"] for a in answers}) == 1


def test_stats_and_clear(app_server: AppProcess, tmp_path: Path) -> None:
    path = clip(tmp_path)
    transcribe(app_server, path)
    transcribe(app_server, path)
    stats = httpx.get(f"{app_server.url}/cache/stats").json()
    assert stats["store"] == "sqlite" and stats["hits"] >= 1 and stats["entries"] >= 2
    assert 0 < stats["hit_rate"] < 1 and stats["bytes"] > 0
    cleared = httpx.delete(f"{app_server.url}/cache")
    assert cleared.status_code == 200 and cleared.json()["removed"] >= 2
    assert httpx.get(f"{app_server.url}/cache/stats").json()["entries"] == 0
    assert not transcribe(app_server, path)["from_cache"]


@pytest.fixture(scope="module")
def redis_apps(
    model_env: dict[str, str], redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AppProcess, AppProcess]]:
    env = {**model_env, "SENSEVOICE_CACHE_URL": redis_server.url}
    logs = tmp_path_factory.mktemp("redis-apps")
    with run_apps([env, env], logs) as (first, second):
        yield first, second


def test_two_instances_share_redis(
    redis_apps: tuple[AppProcess, AppProcess], tmp_path: Path
) -> None:
    first, second = redis_apps
    path = clip(tmp_path)
    assert not transcribe(first, path)["from_cache"]
    assert transcribe(second, path)["from_cache"]
    assert httpx.get(f"{second.url}/cache/stats").json()["store"] == "redis"


def test_redis_outage_fails_no_request_and_hits_resume(
    redis_apps: tuple[AppProcess, AppProcess], redis_server: RedisServer, tmp_path: Path
) -> None:
    app = redis_apps[0]
    path = clip(tmp_path)
    statuses = []
    for step in range(12):
        if step == 3:
            redis_server.stop()
        if step == 8:
            redis_server.start()
            time.sleep(1.2)  # the cache leaves a failed store alone for retry_after_s = 1 s
        statuses.append(post_file(app.url, path).status_code)
    assert statuses == [200] * 12
    assert httpx.get(f"{app.url}/cache/stats").json()["errors"] >= 1
    transcribe(app, path)
    assert transcribe(app, path)["from_cache"]
