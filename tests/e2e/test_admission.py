"""Admit before working: a flood of long uploads is refused at once, memory stays bounded, the
health check stays fast, and work whose client gave up stops.

Forty clients each send the same 55-minute Opus file (2.5 MB) at once to an app with the
default limits (16 jobs, 2 hours of queued audio). Two fit the audio budget; the rest must
get a 429 with Retry-After before anything is decoded for them.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from sensevoice_server.testing.audio_files import wav_bytes
from sensevoice_server.testing.servers import AppProcess, run_app, wait_until
from tests.support.samples import EN, load

CLIENTS = 40
HEALTH_POLLER = """
import sys, time, httpx
with httpx.Client(base_url=sys.argv[1], timeout=5) as client:
    while True:
        started = time.perf_counter()
        client.get("/health").raise_for_status()
        print((time.perf_counter() - started) * 1000, flush=True)
        time.sleep(0.02)
"""
GIVE_UP_S = 8.0  # the clients' patience: then they disconnect


def rss_kb(pid: int, field: str) -> int:
    """VmRSS (now) or VmHWM (the peak so far) of a process, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


@pytest.fixture(scope="module")
def opus_encoder(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """ffmpeg making the 55-minute Opus file (5 s of CPU), started before the app so that
    the two overlap."""
    path = tmp_path_factory.mktemp("opus") / "55min.opus"
    process = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=f=220:d=3300:sample_rate=16000",
         "-ac", "1", "-c:a", "libopus", "-b:a", "6k", "-compression_level", "0",
         "-frame_duration", "60", str(path)],
    )  # fmt: skip
    yield process, path
    if process.poll() is None:
        process.kill()


@pytest.fixture(scope="module")
def default_app(model_env: dict[str, str], tmp_path_factory) -> Iterator[AppProcess]:
    with run_app(model_env, tmp_path_factory.mktemp("flood")) as app:
        yield app


@pytest.fixture(scope="module")
def long_opus(opus_encoder: tuple[subprocess.Popen[bytes], Path], default_app: AppProcess
              ) -> bytes:  # fmt: skip
    process, path = opus_encoder
    assert process.wait(120) == 0
    return path.read_bytes()


def test_a_flood_of_long_uploads_is_refused_before_any_work(
    long_opus: bytes, default_app: AppProcess
) -> None:
    pid = default_app.process.pid
    before_kb = rss_kb(pid, "VmRSS")
    # /health is timed from a process of its own: the 40 client threads here share one GIL
    poller = subprocess.Popen(
        [sys.executable, "-c", HEALTH_POLLER, default_app.url], stdout=subprocess.PIPE, text=True
    )

    def upload(_: int) -> int | str:
        try:
            answer = httpx.post(
                f"{default_app.url}/api/transcribe",
                files={"file": ("long.opus", long_opus)},
                timeout=GIVE_UP_S,
            )
        except httpx.TimeoutException:
            return "gave up"
        if answer.status_code == 429:
            assert int(answer.headers["Retry-After"]) >= 1
            assert answer.json()["error"]["type"] == "rate_limit_error"
        return answer.status_code

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            outcomes = list(pool.map(upload, range(CLIENTS)))
    finally:
        poller.terminate()
    health_ms = [float(line) for line in poller.communicate(timeout=10)[0].split()]
    peak_kb = rss_kb(pid, "VmHWM")
    refused = outcomes.count(429)
    assert refused >= CLIENTS - 3, outcomes
    assert set(outcomes) <= {429, "gave up", 200}, outcomes
    grown_mb = (peak_kb - before_kb) / 1024
    p50, p95 = statistics.median(health_ms), statistics.quantiles(health_ms, n=20)[-1]
    print(
        f"\n[admission] {refused}/{CLIENTS} refused; RSS {before_kb / 1024:.0f} MB, peak "
        f"+{grown_mb:.0f} MB; /health p50 {p50:.1f} ms, p95 {p95:.1f} ms ({len(health_ms)})"
    )
    assert grown_mb < 1500, f"memory grew by {grown_mb:.0f} MB"
    assert p95 < 50, sorted(health_ms)[-10:]
    # the clients that were let in gave up: their work stops instead of running for nobody
    health = f"{default_app.url}/health"
    assert wait_until(lambda: httpx.get(health).json()["queue_depth"] == 0, 60), httpx.get(
        health
    ).json()


@pytest.fixture(scope="module")
def long_wav() -> bytes:
    """20 minutes of speech and pauses as a 38 MB WAV: its VAD takes about 2 s here with
    silero on onnxruntime (10 s and more when it ran in torch), its decoding longer."""
    clip = np.concatenate([load("en.wav"), np.zeros(3 * 16_000, np.float32)])
    return wav_bytes(np.tile(clip, 150))


@pytest.mark.parametrize(
    ("path", "form"),
    [("/api/transcribe", {}),
     ("/v1/audio/transcriptions", {"model": "whisper-1", "stream": "true"})],
    ids=["json", "stream"],
)  # fmt: skip
def test_a_client_that_leaves_during_the_vad_frees_it_at_once(
    default_app: AppProcess, long_wav: bytes, path: str, form: dict[str, str]
) -> None:
    """A client gives up on a long upload while the VAD works on it: the VAD stops at its
    next chunk, so the next upload is answered at once, not when the VAD and the decoding of
    its segments would have finished; with stream=true, where nothing is sent until the first
    segment, the server notices the client left within a second (a 499 in the access log)."""
    url = default_app.url
    assert wait_until(lambda: httpx.get(f"{url}/health").json()["queue_depth"] == 0, 60)
    gone = f"POST {path} 499"
    logged_before = default_app.log().count(gone)  # the flood's clients left too
    with pytest.raises(httpx.TimeoutException):  # read in well under a second; then the VAD
        httpx.post(url + path, files={"file": ("long.wav", long_wav)}, data=form, timeout=1.0)
    left = time.monotonic()
    answer = httpx.post(f"{url}/api/transcribe", files={"file": ("en.wav", EN.read_bytes())},
                        timeout=60)  # fmt: skip
    answered = time.monotonic() - left
    assert answer.status_code == 200, answer.text
    assert wait_until(lambda: default_app.log().count(gone) > logged_before, 10)
    logged = time.monotonic() - left
    print(
        f"\n[leaves during the VAD, {path}] next upload answered {answered:.2f} s after; "
        f"499 logged within {logged:.2f} s"
    )
    assert answered < 3.0
    assert logged < 3.0
