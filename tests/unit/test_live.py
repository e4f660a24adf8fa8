"""Live sessions in-process: how utterances are cut and decoded, the registry's limits, and
the UI's Live tab turning microphone chunks into caption lines."""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from sensevoice_server.errors import PolicyViolation, TryAgainLater
from sensevoice_server.live import Final, LiveSessions, drain
from sensevoice_server.options import DecodeOptions
from sensevoice_server.settings import Settings
from sensevoice_server.ui.live import LiveTab, build_live_tab
from tests.support.inprocess import InProcessApp, running_app
from tests.support.samples import load, resampled

pytestmark = pytest.mark.anyio


def sessions_of(app: InProcessApp, **changes: object) -> LiveSessions:
    """A registry over the app's transcriber, with other live settings."""
    settings = app.transcriber.settings.model_copy(update=changes)
    return LiveSessions(settings, app.transcriber)


async def stream_through(sessions: LiveSessions, samples: np.ndarray, chunk: int = 1600) -> list:
    async with sessions.open(DecodeOptions(), sample_rate=16000) as session:
        for start in range(0, samples.size, chunk):
            await session.feed(samples[start : start + chunk])
        await session.finish()
        return [e for e in drain(session) if isinstance(e, Final)]


async def test_each_sentence_becomes_one_tagged_final(app: InProcessApp) -> None:
    finals = await stream_through(sessions_of(app), load("en.wav"))
    assert [(f.segment, round(f.start, 1), round(f.end, 1)) for f in finals] == [
        (0, 0.2, 2.7),
        (1, 3.6, 5.1),
    ]
    assert all(f.text and f.language == "en" and f.emotion == "neutral" for f in finals)


async def test_an_utterance_longer_than_the_maximum_is_cut_where_it_reaches_it(
    app: InProcessApp,
) -> None:
    finals = await stream_through(sessions_of(app, live_max_utterance_s=2.0), load("en.wav"))
    assert [(f.segment, f.start, f.end) for f in finals] == [
        (0, 0.226, 2.226),
        (1, 2.226, 2.686),
        (2, 3.554, 5.062),
    ]
    assert all(f.text and f.language == "en" for f in finals)


async def test_chunk_size_does_not_change_the_cuts(app: InProcessApp) -> None:
    samples = load("en.wav")
    runs = [await stream_through(sessions_of(app), samples, chunk) for chunk in (160, 16000)]
    assert [(f.start, f.end, f.text) for f in runs[0]] == [
        (f.start, f.end, f.text) for f in runs[1]
    ]


async def test_the_registry_bounds_sessions_and_resumes_numbering(app: InProcessApp) -> None:
    sessions = sessions_of(app, live_max_sessions=1)
    async with sessions.open(DecodeOptions(), sample_rate=16000, session_id="s1") as session:
        assert sessions.count == 1
        with pytest.raises(TryAgainLater):
            sessions.reserve()
        await session.feed(load("en.wav"))
        await session.finish()
    assert sessions.count == 0
    async with sessions.open(DecodeOptions(), sample_rate=16000, session_id="s1") as again:
        assert again.next_segment == 2  # where the first connection stopped
    off = sessions_of(app, live_max_sessions=0)
    with pytest.raises(PolicyViolation, match="turned off"):
        off.reserve()


async def test_a_session_id_in_use_is_refused(app: InProcessApp) -> None:
    sessions = sessions_of(app)
    async with sessions.open(DecodeOptions(), sample_rate=16000, session_id="twin"):
        with pytest.raises(PolicyViolation, match="already streaming"):
            async with sessions.open(DecodeOptions(), sample_rate=16000, session_id="twin"):
                pass
    assert sessions.count == 0


async def test_live_tab_turns_microphone_chunks_into_caption_lines(app: InProcessApp) -> None:
    sessions = sessions_of(app)
    with gr.Blocks():
        build_live_tab(sessions, app.transcriber.settings)  # builds inside any Blocks
    tab = LiveTab(sessions, idle_s=30)
    microphone = (resampled(load("en.wav"), 48000) * 32767).astype(np.int16)
    stereo = np.stack([microphone, microphone], axis=1)  # what Gradio hands over: int16, 2 ch
    captions = None
    for start in range(0, len(stereo), 24000):  # Gradio's stream_every=0.5
        _, captions = await tab.on_chunk(
            (48000, stereo[start : start + 24000]), "auto", True, captions
        )
    text, captions, *downloads = await tab.on_stop(captions)
    lines = text.splitlines()
    assert len(lines) == 2, text
    assert all(re.match(r"\[\d+\.\d–\d+\.\d s\] en neutral  \S", line) for line in lines), text
    assert captions.session is None
    assert sessions.count == 0
    files = [Path(button.value["path"]) for button in downloads]  # TXT, SRT, VTT, JSON
    assert [f.suffix for f in files] == [".txt", ".srt", ".vtt", ".json"]
    assert all(button.visible for button in downloads)
    srt = files[1].read_text()
    assert srt.startswith("1\n00:00:00,") and " --> " in srt


async def test_the_live_gauge_is_exported_before_any_stream(settings: Settings) -> None:
    async with running_app(settings, lifespan=False) as fresh:
        metrics = (await fresh.client.get("/metrics")).text
        assert "\nsensevoice_live_sessions 0.0\n" in metrics
