"""The OpenAI-compatible route in-process: every response format, and OpenAI's errors."""

from __future__ import annotations

import httpx
import pytest

from tests.support.inprocess import InProcessApp
from tests.support.samples import EN

pytestmark = pytest.mark.anyio


async def transcription(client: httpx.AsyncClient, **form: str) -> httpx.Response:
    data = {"model": "whisper-1", **form}
    return await client.post(
        "/v1/audio/transcriptions", files={"file": ("en.wav", EN.read_bytes())}, data=data
    )


async def native(client: httpx.AsyncClient) -> dict:
    answer = await client.post("/api/transcribe", files={"file": ("en.wav", EN.read_bytes())})
    return answer.json()


async def test_json_and_text_carry_the_rich_text(app: InProcessApp) -> None:
    """text ends with one newline, as the same format's file does (formats.py says why)."""
    expected = (await native(app.client))["text"]
    assert (await transcription(app.client)).json() == {"text": expected}
    text = await transcription(app.client, response_format="text")
    assert text.headers["content-type"].startswith("text/plain") and text.text == expected + "\n"


async def test_subtitles_are_cut_at_word_times_within_the_cue_limits(app: InProcessApp) -> None:
    srt = (await transcription(app.client, response_format="srt")).text
    vtt = (await transcription(app.client, response_format="vtt")).text
    assert srt.startswith("1\n00:00:00,") and vtt.startswith("WEBVTT\n\n00:00:00.")
    assert srt.count(" --> ") == vtt.count(" --> ") > 2  # one 5 s segment, several cues
    for block in srt.strip().split("\n\n"):
        lines = block.splitlines()[2:]
        assert 1 <= len(lines) <= 2 and all(len(line) <= 42 for line in lines), block


async def test_subtitle_options_and_segment_only_cues(app: InProcessApp) -> None:
    narrow = await transcription(app.client, response_format="srt", max_line_chars="20")
    assert all(len(line) <= 20 for line in narrow.text.splitlines() if " --> " not in line)
    segments = (await native(app.client))["segments"]
    plain = await transcription(
        app.client, response_format="vtt", **{"timestamp_granularities[]": "segment"}
    )
    assert plain.text.count(" --> ") >= len(segments)  # cues from segment times alone


async def test_verbose_json_keeps_our_tags_per_segment(app: InProcessApp) -> None:
    ours = await native(app.client)
    verbose = (await transcription(app.client, response_format="verbose_json")).json()
    assert verbose["duration"] == ours["duration"] and verbose["language"] == "english"
    for theirs, segment in zip(verbose["segments"], ours["segments"], strict=True):
        assert (theirs["start"], theirs["end"]) == (segment["start"], segment["end"])
        assert theirs["emotion"] == segment["emotion"] and theirs["events"] == segment["events"]


async def test_unknown_model_is_refused_and_not_echoed_whole(app: InProcessApp) -> None:
    answer = await transcription(app.client, model="x" * 100_000)
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert len(error["message"]) < 300 and "sensevoice-small" in error["message"]


async def test_empty_model_name_is_a_400(app: InProcessApp) -> None:
    assert (await transcription(app.client, model="")).status_code == 400


@pytest.mark.parametrize("language", ["klingon", "x" * 5000])
async def test_unsupported_language_is_a_short_400(app: InProcessApp, language: str) -> None:
    answer = await transcription(app.client, language=language)
    assert answer.status_code == 400 and len(answer.json()["error"]["message"]) < 300


async def test_models_lists_what_is_served(app: InProcessApp) -> None:
    listed = (await app.client.get("/v1/models")).json()
    assert [m["id"] for m in listed["data"]] == ["sensevoice-small", "whisper-1"]
