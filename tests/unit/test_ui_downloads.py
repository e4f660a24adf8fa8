"""The web UI's downloads (ui/downloads.py) for a 224 s clip transcribed as the Transcribe tab
does it (words always timed): readable cues in the SRT and VTT files, every format written,
and nothing offered when there was no speech."""

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
from sensevoice_server.ui.downloads import FORMATS, button_updates, write_downloads
from tests.support.cues import LIMIT_S, assert_cues_within_limits
from tests.support.inprocess import InProcessApp, running_app

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
    assert sorted(paths) == sorted(FORMATS)
    for fmt in ("srt", "vtt"):
        assert assert_cues_within_limits(paths[fmt].read_text()) > 224 / LIMIT_S
    assert json.loads(paths["json"].read_text())["text"] == result.transcript.rich_text
    assert paths["txt"].read_text().strip()


async def test_silence_offers_no_download(long_app: InProcessApp) -> None:
    silence = wav_bytes(np.zeros(32_000, dtype=np.float32))
    result = await long_app.transcriber.transcribe(silence, DecodeOptions())
    assert result.transcript.no_speech
    assert all(button.visible is False for button in button_updates(result.transcript, "s"))
