"""The native HTTP API in-process: answers, options, errors and limits, route by route."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sensevoice_server.settings import Settings
from sensevoice_server.testing.audio_files import wav_bytes
from sensevoice_server.testing.reference import reference_text
from sensevoice_server.transcript import TAG
from tests.support.inprocess import InProcessApp, running_app
from tests.support.samples import (
    EN,
    EN_SECONDS,
    ENGLISH_FORMATS,
    ROOT,
    SAMPLES,
    SPEECH_SAMPLES,
    load,
)

pytestmark = pytest.mark.anyio


async def post_file(
    client: httpx.AsyncClient, data: bytes, route: str = "/api/transcribe", **form: str
) -> httpx.Response:
    return await client.post(route, files={"file": ("clip.wav", data)}, data=form)


def reference_words(reference_model, name: str, language: str = "auto", itn: bool = True) -> str:
    tagged = reference_text(reference_model, load(name), language, itn)
    return " ".join(TAG.sub(" ", tagged).split())


@pytest.mark.parametrize("name", sorted({*SPEECH_SAMPLES, *ENGLISH_FORMATS}))
async def test_transcribe_equals_the_reference(
    app: InProcessApp, reference_model, name: str
) -> None:
    answer = await post_file(app.client, (SAMPLES / name).read_bytes())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"text", "plain_text", "language", "duration", "no_speech",
                         "segments", "model", "processing_ms", "from_cache"}  # fmt: skip
    assert body["plain_text"] == reference_words(reference_model, name)
    assert body["model"] == "sensevoice-small"
    for segment in body["segments"]:
        assert set(segment) == {"start", "end", "text", "language", "emotion", "events"}
        assert segment["language"] and segment["emotion"]


async def test_language_and_itn_reach_the_model(app: InProcessApp, reference_model) -> None:
    body = (await post_file(app.client, EN.read_bytes(), language="ko", use_itn="false")).json()
    assert {s["language"] for s in body["segments"]} == {"ko"}
    assert body["plain_text"] == reference_words(reference_model, "en.wav", "ko", False)


async def test_batch_answers_each_file_separately_in_order(app: InProcessApp) -> None:
    files = [("files", (name, data)) for name, data in
             (("en.wav", EN.read_bytes()), ("bad.wav", b"not audio" * 10),
              ("zh.wav", (SAMPLES / "zh.wav").read_bytes()))]  # fmt: skip
    answer = await app.client.post("/api/batch", files=files)
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert [r["status"] for r in results] == [200, 415, 200]
    assert results[1]["error"]["code"] == "unsupported_audio" and results[1]["result"] is None
    single = (await post_file(app.client, (SAMPLES / "zh.wav").read_bytes())).json()
    assert results[2]["result"]["text"] == single["text"]


@pytest.mark.parametrize(
    ("content", "form", "status", "code"),
    [
        (b"", {}, 400, "empty_audio"),
        (b"plain text, not audio" * 100, {}, 415, "unsupported_audio"),
        (EN.read_bytes(), {"language": "klingon"}, 400, "invalid_request"),
        (EN.read_bytes(), {"use_itn": "maybe"}, 400, "invalid_request"),
        ((SAMPLES / "en.mp3").read_bytes()[:9000], {}, 415, "unsupported_audio"),
        (wav_bytes(np.zeros(0)), {}, 400, "empty_audio"),
    ],
    ids=["empty", "undecodable", "bad-language", "bad-itn", "truncated", "no-samples"],
)
async def test_errors_are_json_with_a_human_message(
    app: InProcessApp, content: bytes, form: dict[str, str], status: int, code: str
) -> None:
    answer = await post_file(app.client, content, **form)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["code"] == code and len(error["message"]) > 10
    assert set(error) == {"message", "type", "param", "code"}


async def test_too_large_and_too_long(app: InProcessApp) -> None:
    noise = np.random.default_rng(1).normal(0, 0.1, 16000 * 70)
    big = await post_file(app.client, wav_bytes(noise))  # 2.2 MB against 2 MB
    assert big.status_code == 413
    assert big.json()["error"]["message"] == "The file is larger than the limit of 2 MB."
    long = await post_file(app.client, wav_bytes(noise[: 16000 * 30]))  # 30 s against 20 s
    assert long.status_code == 413 and long.json()["error"]["code"] == "audio_too_long"


async def test_a_second_file_part_is_refused_not_ignored(app: InProcessApp) -> None:
    for route in ("/api/transcribe", "/v1/audio/transcriptions"):
        files = [("file", ("a.wav", EN.read_bytes())), ("file", ("b.wav", EN.read_bytes()))]
        answer = await app.client.post(route, files=files, data={"model": "whisper-1"})
        assert answer.status_code == 400, route
        assert answer.json()["error"]["param"] == "file"


async def test_the_upload_name_never_becomes_a_path(app: InProcessApp) -> None:
    target = ROOT / "pwned.wav"
    answer = await app.client.post(
        "/api/transcribe", files={"file": ("../../pwned.wav", EN.read_bytes())}
    )
    assert answer.status_code == 200
    assert not target.exists()


@pytest.mark.parametrize("path", ["/api/nothing", "/v1/nothing", "/v1/audio/translate"])
async def test_unknown_api_paths_get_a_404_in_the_api_shape(app: InProcessApp, path: str) -> None:
    answer = await app.client.post(path)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


async def test_not_ready_is_503_with_retry_after(settings: Settings) -> None:
    async with running_app(settings, ready=False) as loading:
        loading.transcriber.stop_accepting()  # as while loading or draining
        assert (await loading.client.get("/health")).status_code == 200
        ready = await loading.client.get("/ready")
        assert ready.status_code == 503 and ready.headers["Retry-After"]
        answer = await post_file(loading.client, EN.read_bytes())
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "not_ready"
        assert int(answer.headers["Retry-After"]) >= 1


def scrape(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_parse_and_move_with_requests(app: InProcessApp) -> None:
    before = scrape((await app.client.get("/metrics")).text)
    assert ("sensevoice_live_sessions", ()) in before  # there before any stream
    assert (await post_file(app.client, EN.read_bytes())).status_code == 200
    await post_file(app.client, EN.read_bytes(), language="klingon")
    after = scrape((await app.client.get("/metrics")).text)

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert moved("sensevoice_requests_total", route="/api/transcribe", status="200") == 1
    assert moved("sensevoice_requests_total", route="/api/transcribe", status="400") == 1
    assert moved("sensevoice_audio_seconds_total") == pytest.approx(EN_SECONDS, abs=0.01)
    assert moved("sensevoice_request_latency_seconds_count", route="/api/transcribe") == 2
    assert after[("sensevoice_model_loaded", ())] == 1
    assert ("sensevoice_queue_depth", ()) in after


async def test_other_methods_on_api_paths_are_405(app: InProcessApp) -> None:
    answer = await app.client.request("TRACE", "/v1/models")
    assert answer.status_code == 405 and "GET" in answer.headers["Allow"]
    assert answer.json()["error"]["code"] == "method_not_allowed"


async def test_a_new_model_fingerprint_never_serves_old_text(
    settings: Settings, tmp_path: Path
) -> None:
    """Apps sharing one cache file: the same settings hit, a changed VAD setting does not."""
    shared = settings.model_copy(update={"cache_url": f"sqlite:///{tmp_path}/shared.sqlite3"})
    clip = wav_bytes(np.tile(load("en.wav"), 2))
    answers = []
    for changed in ({}, {}, {"merge_length_s": 10}):
        async with running_app(shared.model_copy(update=changed)) as running:
            answer = await post_file(running.client, clip)
            assert answer.status_code == 200, answer.text
            answers.append(answer.json()["from_cache"])
    assert answers == [False, True, False]
