"""Every OpenAI response format and stream event validates against OpenAI's own schemas
(tests/support/openai_schema/), so a change that would break a strict client fails here."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from sensevoice_server.settings import Settings
from tests.support.inprocess import InProcessApp, changed, running_app
from tests.support.openai_schema import errors
from tests.support.samples import EN, SAMPLES

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def speakers_app(settings: Settings, campplus_model: Path) -> AsyncIterator[InProcessApp]:
    with_speakers = changed(settings, speakers=True, speaker_model=str(campplus_model))
    async with running_app(with_speakers) as running:
        yield running


async def transcription(
    client: httpx.AsyncClient, clip: Path = EN, **form: object
) -> httpx.Response:
    answer = await client.post(
        "/v1/audio/transcriptions",
        files={"file": (clip.name, clip.read_bytes())},
        data={"model": "whisper-1", **form},
    )
    assert answer.status_code == 200, answer.text
    return answer


def events_of(answer: httpx.Response) -> list[dict]:
    assert answer.headers["content-type"].startswith("text/event-stream")
    return [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: ")]


async def test_json_with_logprobs_validates(app: InProcessApp) -> None:
    body = (await transcription(app.client, **{"include[]": "logprobs"})).json()
    assert errors(body, "CreateTranscriptionResponseJson") == []
    assert body["logprobs"] and all(item["logprob"] <= 0 for item in body["logprobs"])


@pytest.mark.parametrize("granularities", [["segment"], ["word"], ["word", "segment"]])
async def test_verbose_json_validates_with_each_granularity(
    app: InProcessApp, granularities: list[str]
) -> None:
    form = {"response_format": "verbose_json", "timestamp_granularities[]": granularities}
    body = (await transcription(app.client, **form)).json()
    assert errors(body, "CreateTranscriptionResponseVerboseJson") == []
    assert ("words" in body) == ("word" in granularities)
    assert ("segments" in body) == ("segment" in granularities)


async def test_words_are_ordered_inside_their_segments_and_spell_the_text(
    app: InProcessApp,
) -> None:
    form = {"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]}
    clip = SAMPLES / "zh.wav"
    body = (await transcription(app.client, clip, **form)).json()
    words, segments = body["words"], body["segments"]
    assert words and all(w["start"] <= w["end"] for w in words)
    assert all(a["start"] <= b["start"] for a, b in itertools.pairwise(words))
    assert all(w["start"] >= 0 and w["end"] <= body["duration"] for w in words)
    for segment in segments:
        inside = [w for w in words if segment["start"] <= w["start"] <= segment["end"]]
        assert inside and all(w["end"] <= segment["end"] for w in inside)
    assert "".join(w["word"] for w in words) == "".join(body["text"].split())


async def test_the_stream_validates_and_its_deltas_add_up_to_the_text(app: InProcessApp) -> None:
    events = events_of(
        await transcription(app.client, **{"stream": "true", "include[]": "logprobs"})
    )
    for event in events:
        assert errors(event, "CreateTranscriptionResponseStreamEvent") == [], event
    *deltas, done = events
    assert done["type"] == "transcript.text.done" and deltas
    assert "".join(d["delta"] for d in deltas) == done["text"]


async def test_a_bad_file_is_an_error_before_the_stream_starts(app: InProcessApp) -> None:
    answer = await app.client.post(
        "/v1/audio/transcriptions", files={"file": ("bad.wav", b"not audio" * 50)},
        data={"model": "whisper-1", "stream": "true"},
    )  # fmt: skip
    assert answer.status_code == 415 and answer.json()["error"]["code"] == "unsupported_audio"


async def test_diarized_json_needs_speakers_and_validates_with_them(
    app: InProcessApp, speakers_app: InProcessApp
) -> None:
    refused = await app.client.post(
        "/v1/audio/transcriptions", files={"file": ("en.wav", EN.read_bytes())},
        data={"model": "whisper-1", "response_format": "diarized_json"},
    )  # fmt: skip
    assert refused.status_code == 400 and "--speakers" in refused.json()["error"]["message"]
    body = (await transcription(speakers_app.client, response_format="diarized_json")).json()
    assert errors(body, "CreateTranscriptionResponseDiarizedJson") == []
    assert {segment["speaker"] for segment in body["segments"]} == {"S1"}
    stream = events_of(await transcription(
        speakers_app.client, response_format="diarized_json", stream="true"
    ))  # fmt: skip
    assert any(e["type"] == "transcript.text.segment" for e in stream)
    for event in stream:
        assert errors(event, "CreateTranscriptionResponseStreamEvent") == [], event


async def test_two_speakers_asked_for_are_two_speakers(speakers_app: InProcessApp) -> None:
    long = await speakers_app.client.post(
        "/api/transcribe", files={"file": ("mix.wav", mixed_clip())},
        data={"num_speakers": "2"},
    )  # fmt: skip
    assert long.status_code == 200, long.text
    assert {s["speaker"] for s in long.json()["segments"]} == {"S1", "S2"}


def mixed_clip() -> bytes:
    """English then Chinese, 10 s each: two merged segments."""
    import numpy as np

    from sensevoice_server.testing.audio_files import wav_bytes
    from tests.support.samples import load

    return wav_bytes(np.concatenate([np.tile(load("en.wav"), 2), np.tile(load("zh.wav"), 2)]))
