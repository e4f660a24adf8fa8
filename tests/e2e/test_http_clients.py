"""The HTTP API on a real server, through the clients people use: httpx, curl, the OpenAI SDK."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sensevoice_server.audio import AudioLimits, decode
from sensevoice_server.testing.audio_files import write_samples
from sensevoice_server.testing.reference import reference_text
from sensevoice_server.testing.servers import AppProcess, wait_until
from sensevoice_server.transcript import TAG
from tests.support.keys import KEYS
from tests.support.samples import SAMPLES

ROOT = Path(__file__).resolve().parent.parent.parent
EN = SAMPLES / "en.wav"


def post_file(url: str, path: Path, route: str = "/api/transcribe", **form) -> httpx.Response:
    with path.open("rb") as handle:
        return httpx.post(
            f"{url}{route}", files={"file": (path.name, handle)}, data=form, timeout=120
        )


def reference_words(
    reference_model, path: Path, language: str = "auto", use_itn: bool = True
) -> str:
    samples = decode(path.read_bytes(), AudioLimits(10**8, 3600))
    return " ".join(
        TAG.sub(" ", reference_text(reference_model, samples, language, use_itn)).split()
    )


# --- /api/transcribe (every format and error: tests/unit/test_api.py) ----------------------


@pytest.mark.parametrize("name", ["en.wav", "zh.wav", "en.webm"])
def test_api_transcribe_equals_the_reference(
    app_server: AppProcess, reference_model, name: str
) -> None:
    answer = post_file(app_server.url, SAMPLES / name, language="auto", use_itn="true")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"text", "plain_text", "language", "duration", "no_speech",
                         "segments", "model", "processing_ms", "from_cache"}  # fmt: skip
    assert body["plain_text"] == reference_words(reference_model, SAMPLES / name)
    assert body["model"] == "sensevoice-small"
    for segment in body["segments"]:
        assert set(segment) == {"start", "end", "text", "language", "emotion", "events"}
        assert segment["language"] and segment["emotion"]


# --- keys and a full queue -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("Bearer wrong", 401),
        ("Basic key-one", 401),
        ("Bearer key-one", 200),
        ("Bearer key-two", 200),
    ],
)
def test_api_keys(keyed_app: AppProcess, header: str | None, status: int) -> None:
    headers = {"Authorization": header} if header else {}
    for route in ("/api/transcribe", "/v1/audio/transcriptions"):
        with EN.open("rb") as handle:
            answer = httpx.post(
                f"{keyed_app.url}{route}", files={"file": ("en.wav", handle)},
                data={"model": "sensevoice-small"}, headers=headers, timeout=60,
            )  # fmt: skip
        assert answer.status_code == status, (route, answer.text)
        if status == 401:
            assert answer.json()["error"]["type"] == "authentication_error"
    assert httpx.get(f"{keyed_app.url}/v1/models", headers=headers).status_code == status


def test_health_ready_and_metrics_stay_open_with_keys(keyed_app: AppProcess) -> None:
    for route in ("/health", "/ready", "/metrics"):
        assert httpx.get(f"{keyed_app.url}{route}").status_code == 200


def test_a_full_queue_answers_429_with_retry_after(keyed_app: AppProcess, tmp_path: Path) -> None:
    samples = decode(EN.read_bytes(), AudioLimits(10**8, 3600))
    long_clip = tmp_path / "long.wav"
    write_samples(long_clip, np.tile(samples, 120))
    auth = {"Authorization": f"Bearer {KEYS[0]}"}
    results: list[httpx.Response] = []

    def long_request() -> None:
        with long_clip.open("rb") as handle:
            files = {"file": ("long.wav", handle)}
            url = f"{keyed_app.url}/api/transcribe"
            results.append(httpx.post(url, files=files, headers=auth, timeout=600))

    worker = threading.Thread(target=long_request)
    worker.start()
    assert wait_until(lambda: httpx.get(f"{keyed_app.url}/health").json()["queue_depth"] >= 1, 60)
    with EN.open("rb") as handle:
        busy = httpx.post(f"{keyed_app.url}/api/transcribe", files={"file": ("en.wav", handle)},
                          headers=auth, timeout=60)  # fmt: skip
    assert busy.status_code == 429
    assert int(busy.headers["Retry-After"]) >= 1
    assert busy.json()["error"]["type"] == "rate_limit_error"
    worker.join(600)
    assert results[0].status_code == 200  # the running job was not lost


# --- OpenAI compatibility ----------------------------------------------------------------


@pytest.fixture(scope="module")
def openai_client(app_server: AppProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{app_server.url}/v1", api_key="unused", max_retries=0)


@pytest.mark.parametrize("name", ["en.wav", "zh.wav", "en.mp3", "en.webm"])
def test_openai_sdk_json_and_text(
    openai_client: openai.OpenAI, app_server: AppProcess, name: str
) -> None:
    native = post_file(app_server.url, SAMPLES / name).json()
    with (SAMPLES / name).open("rb") as audio:
        as_json = openai_client.audio.transcriptions.create(model="whisper-1", file=audio)
    with (SAMPLES / name).open("rb") as audio:
        as_text = openai_client.audio.transcriptions.create(
            model="sensevoice-small", file=audio, response_format="text"
        )
    assert as_json.text == native["text"]
    assert as_text.strip() == native["text"]


def test_openai_sdk_subtitles(openai_client: openai.OpenAI) -> None:
    with EN.open("rb") as audio:
        srt = openai_client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="srt"
        )
    with EN.open("rb") as audio:
        vtt = openai_client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="vtt"
        )
    assert srt.startswith("1\n00:00:00,") and vtt.startswith("WEBVTT\n\n00:00:00.")
    assert srt.count(" --> ") == vtt.count(" --> ") >= 2


def test_openai_sdk_verbose_json_keeps_our_tags(
    openai_client: openai.OpenAI, app_server: AppProcess
) -> None:
    native = post_file(app_server.url, EN).json()
    with EN.open("rb") as audio:
        verbose = openai_client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="verbose_json",
            timestamp_granularities=["segment"],
        )  # fmt: skip
    assert verbose.duration == pytest.approx(native["duration"])
    assert verbose.language == "english" if native["language"] == "en" else verbose.language
    assert len(verbose.segments) == len(native["segments"])
    for ours, theirs in zip(verbose.segments, native["segments"], strict=True):
        extra = ours.model_extra or {}
        assert (ours.start, ours.end) == (theirs["start"], theirs["end"])
        assert extra["emotion"] == theirs["emotion"] and extra["language"] == theirs["language"]
        assert extra["events"] == theirs["events"]


def test_openai_unknown_model_is_refused_in_openais_shape(openai_client: openai.OpenAI) -> None:
    with EN.open("rb") as audio, pytest.raises(openai.NotFoundError) as refused:
        openai_client.audio.transcriptions.create(model="gpt-4o-transcribe", file=audio)
    assert refused.value.body["code"] == "model_not_found"
    assert refused.value.body["param"] == "model"


def test_openai_models_lists_what_is_served(openai_client: openai.OpenAI) -> None:
    assert [m.id for m in openai_client.models.list()] == ["sensevoice-small", "whisper-1"]


def test_openai_sdk_gets_words_from_verbose_json(openai_client: openai.OpenAI) -> None:
    with EN.open("rb") as audio:
        verbose = openai_client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="verbose_json",
            timestamp_granularities=["word"],
        )  # fmt: skip
    assert verbose.words and all(w.start <= w.end for w in verbose.words)
    assert verbose.segments is None  # only what was asked for, as OpenAI does


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"{url}/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
