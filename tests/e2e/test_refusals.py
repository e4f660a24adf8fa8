"""A refusal reaches a client that is still sending as its status, not as a connection reset.

HTTP clients send the whole body before they read the answer. A server that answered 429 or
503 and closed with megabytes still unread reset the connection, which took the answer with
it: through one pooled httpx client (as the batch CLI and the SDKs hold one), 5 MB and
9.7 MB uploads to a full server got `ReadError` every time, so no retry ever ran. Now the
rest of the body is read and dropped first. Two apps with room for one job, each held by a
long transcription: one stays full, the other is sent SIGTERM and drains.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from sensevoice_server.audio import decode
from sensevoice_server.testing.audio_files import wav_bytes
from sensevoice_server.testing.servers import AppProcess, run_apps, wait_until
from tests.support.samples import ANY_LENGTH, EN, ROOT

SIZES_MB = [5.0, 9.7]  # the sizes that got ReadError


@pytest.fixture(scope="module")
def apps(model_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[AppProcess, AppProcess]]:  # fmt: skip
    """(full, draining): two apps with room for one job, started together."""
    env = {**model_env, "SENSEVOICE_QUEUE_SIZE": "1", "SENSEVOICE_MAX_DURATION_S": "7200",
           "SENSEVOICE_MAX_UPLOAD_MB": "50"}  # fmt: skip
    with run_apps([env, env], tmp_path_factory.mktemp("refusals")) as (full, draining):
        yield full, draining


@pytest.fixture(scope="module")
def long_clip() -> bytes:
    """10 minutes of the English sample: holds the only job place for several seconds."""
    return wav_bytes(np.tile(decode(EN.read_bytes(), ANY_LENGTH), 120))


def hold_the_queue(app: AppProcess, clip: bytes) -> threading.Thread:
    """Start a long transcription and return once the app counts it; the thread checks
    that it finishes (200)."""

    def transcribe() -> None:
        answer = httpx.post(f"{app.url}/api/transcribe", files={"file": ("long.wav", clip)},
                            timeout=300)  # fmt: skip
        assert answer.status_code == 200, answer.text

    job = threading.Thread(target=transcribe)
    job.start()
    assert wait_until(lambda: httpx.get(f"{app.url}/health").json()["queue_depth"] >= 1, 60)
    return job


def noise(megabytes: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return wav_bytes(rng.normal(0, 0.1, int(megabytes * 1e6 / 2)))


async def post_each(url: str, bodies: list[bytes]) -> list[httpx.Response | str]:
    """Post each body in turn through one pooled client; a transport error by its name."""
    answers: list[httpx.Response | str] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for body in bodies:
            try:
                answers.append(
                    await client.post("/api/transcribe", files={"file": ("a.wav", body)})
                )
            except httpx.TransportError as error:
                answers.append(type(error).__name__)
    return answers


def test_a_client_sending_megabytes_to_a_full_server_sees_429_with_retry_after(
    apps: tuple[AppProcess, AppProcess], long_clip: bytes
) -> None:
    full, _ = apps
    job = hold_the_queue(full, long_clip)
    bodies = [noise(size, seed) for size in SIZES_MB for seed in range(2)]

    answers = asyncio.run(post_each(full.url, bodies))
    for answer in answers:
        assert isinstance(answer, httpx.Response), f"{answer} instead of 429"
        assert answer.status_code == 429, answer.text
        assert int(answer.headers["Retry-After"]) >= 1
        assert answer.json()["error"]["type"] == "rate_limit_error"
    job.join(300)


def test_the_batch_cli_retries_429s_through_its_pooled_client(
    apps: tuple[AppProcess, AppProcess], tmp_path: Path
) -> None:
    """Four 5 MB files at --concurrency 4 into one job place: three are told 429 at first,
    wait their Retry-After and go in; none fails on a reset."""
    full, _ = apps
    (tmp_path / "in").mkdir()
    for seed in range(4):
        (tmp_path / "in" / f"{seed}.wav").write_bytes(noise(5.0, 100 + seed))
    result = subprocess.run(
        [sys.executable, "-m", "sensevoice_server.cli", "batch", str(tmp_path / "in"),
         "--out", str(tmp_path / "out"), "--url", full.url, "--concurrency", "4"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{i}.txt" for i in range(4)]
    assert " 429 " in full.log()  # some were refused, and came back


def test_an_upload_during_a_drain_sees_503_with_retry_after(
    apps: tuple[AppProcess, AppProcess], long_clip: bytes
) -> None:
    _, draining = apps
    job = hold_the_queue(draining, long_clip)
    draining.process.send_signal(signal.SIGTERM)
    assert wait_until(lambda: httpx.get(f"{draining.url}/ready").status_code == 503, 10)
    bodies = [noise(size, seed) for size in SIZES_MB for seed in range(2)]
    answers = asyncio.run(post_each(draining.url, bodies))
    for answer in answers:
        assert isinstance(answer, httpx.Response), f"{answer} instead of 503"
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["Retry-After"]) >= 1
    job.join(300)  # the job that was running still finished
    assert draining.process.wait(60) == 0
