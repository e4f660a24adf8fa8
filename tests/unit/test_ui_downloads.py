"""The web UI's downloads (ui/downloads.py) for a 224 s clip transcribed as the Transcribe tab
does it (words always timed): readable cues in the SRT and VTT files, every format written,
the API's bytes exactly, and nothing offered when there was no speech."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from samples.make_samples import make_long_clip
from sensevoice_server.options import DecodeOptions
from sensevoice_server.settings import Settings
from sensevoice_server.testing.audio_files import wav_bytes
from sensevoice_server.ui.downloads import OFFERED, button_updates, write_downloads
from tests.support.cues import LIMIT_S, assert_cues_within_limits
from tests.support.inprocess import InProcessApp, running_app
from tests.support.samples import EN

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def long_app(settings: Settings) -> AsyncIterator[InProcessApp]:
    async with running_app(settings.model_copy(update={"max_duration_s": 600.0})) as running:
        yield running


async def test_subtitle_downloads_of_a_long_clip_keep_the_cue_limits(
    long_app: InProcessApp, tmp_path: Path
) -> None:
    clip = make_long_clip(224, tmp_path / "talk.wav").read_bytes()
    options = DecodeOptions(word_timestamps=True)  # as ui/transcribe.py asks
    result = await long_app.transcriber.transcribe(clip, options)
    paths = write_downloads(result.transcript, "talk")
    assert sorted(paths) == sorted(fmt.name for fmt in OFFERED)
    for fmt in ("srt", "vtt"):
        assert assert_cues_within_limits(paths[fmt].read_text()) > 224 / LIMIT_S
    assert json.loads(paths["verbose_json"].read_text())["text"] == result.transcript.rich_text
    assert paths["text"].read_text().strip()


async def test_each_download_is_the_apis_answer_in_that_format(long_app: InProcessApp) -> None:
    """The UI's JSON was the native API's shape and its TXT ended in a newline the API's text
    lacked. Each file is now the OpenAI route's bytes for the same transcript (the UI times
    words, so it matches a request for word and segment times)."""
    result = await long_app.transcriber.transcribe(
        EN.read_bytes(), DecodeOptions(word_timestamps=True)
    )
    paths = write_downloads(result.transcript, "en")
    assert [path.name for path in paths.values()] == [
        "en.txt",
        "en.srt",
        "en.vtt",
        "en.verbose.json",
    ]
    for fmt in OFFERED:
        answer = await long_app.client.post(
            "/v1/audio/transcriptions", files={"file": ("en.wav", EN.read_bytes())},
            data={"model": "whisper-1", "response_format": fmt.name,
                  "timestamp_granularities[]": ["word", "segment"]},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert paths[fmt.name].read_bytes() == answer.content, fmt.name


async def test_silence_offers_no_download(long_app: InProcessApp) -> None:
    silence = wav_bytes(np.zeros(32_000, dtype=np.float32))
    result = await long_app.transcriber.transcribe(silence, DecodeOptions())
    assert result.transcript.no_speech
    assert all(button.visible is False for button in button_updates(result.transcript, "s"))
