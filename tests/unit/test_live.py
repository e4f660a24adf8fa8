"""Live sessions in-process: how utterances are cut and decoded, the registry's limits, the
rules every stream obeys (pace, idle, the drain), and the UI's Live tab turning microphone
chunks into caption lines."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from sensevoice_server.errors import GoingAway, PolicyViolation, TryAgainLater
from sensevoice_server.live import Heard, LiveSessions, ready_events
from sensevoice_server.live.rules import AHEAD_ALLOWANCE_S, Activity, Pace
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
    async with sessions.open(DecodeOptions(), sample_rate=16000) as stream:
        for start in range(0, samples.size, chunk):
            await stream.feed(samples[start : start + chunk])
        await stream.finish()
        return [e for e in ready_events(stream.session) if isinstance(e, Heard)]


async def test_each_sentence_becomes_one_tagged_final(app: InProcessApp) -> None:
    finals = await stream_through(sessions_of(app), load("en.wav"))
    assert [(f.segment, round(f.start, 1), round(f.end, 1)) for f in finals] == [
        (0, 0.2, 2.3),
        (1, 3.2, 5.4),
    ]
    assert all(f.text and f.language == "en" and f.emotion == "neutral" for f in finals)


async def test_an_utterance_longer_than_the_maximum_is_cut_where_it_reaches_it(
    app: InProcessApp,
) -> None:
    finals = await stream_through(sessions_of(app, live_max_utterance_s=1.5), load("en.wav"))
    assert [(f.segment, f.start, f.end) for f in finals] == [
        (0, 0.226, 1.726),
        (1, 1.726, 2.302),
        (2, 3.17, 4.67),
        (3, 4.67, 5.358),
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
    async with sessions.open(DecodeOptions(), sample_rate=16000, session_id="s1") as stream:
        assert sessions.count == 1
        with pytest.raises(TryAgainLater):
            sessions.reserve()
        await stream.feed(load("en.wav"))
        await stream.finish()
    assert sessions.count == 0
    async with sessions.open(DecodeOptions(), sample_rate=16000, session_id="s1") as again:
        assert again.session.next_segment == 2  # where the first connection stopped
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
    tab = LiveTab(sessions)
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
    assert captions.stream is None
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


# --- the rules every stream obeys (live/rules.py), on a clock of the test's own ----------------
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_real_time_audio_and_a_short_file_sent_at_once_keep_the_pace() -> None:
    clock = Clock()
    pace = Pace(max_speed=4, clock=clock)
    for _ in range(36_000):  # an hour at real time, in 100 ms frames
        pace.take(0.1)
        clock.now += 0.1
    burst = Pace(max_speed=4, clock=clock)
    for _ in range(int(AHEAD_ALLOWANCE_S * 10) - 1):  # a minute of audio at once
        burst.take(0.1)


def test_a_flood_of_tiny_frames_is_too_fast_within_a_fraction_of_a_second() -> None:
    """70,000 one-sample frames a second is only 4.4x real time in samples, but each frame
    costs the server as much as a 5 ms one: the pace counts it so, and ends the flood."""
    clock, frames = Clock(), 0
    pace = Pace(max_speed=4, clock=clock)
    with pytest.raises(PolicyViolation) as refused:
        while True:
            pace.take(1 / 16000)
            frames += 1
            clock.now += 1 / 70_000
    assert refused.value.code == "too_fast" and "real time" in refused.value.message
    assert clock.now < 0.25 and frames < 20_000


def test_a_trickle_is_idle_after_the_window_however_often_it_sends() -> None:
    clock = Clock()
    activity = Activity(window_s=5, min_speed=0.5, clock=clock)
    while (left := activity.time_left()) > 4.0:  # 2 bytes (one sample) every 4 s
        clock.now += 4.0
        activity.heard(1 / 16000)
    assert 5.0 <= clock.now + left < 5.1  # idle when the window ends, as if it sent nothing
    assert activity.idle_error().code == "idle_timeout"


def test_real_time_audio_is_never_idle_and_waiting_for_the_model_does_not_count() -> None:
    clock = Clock()
    activity = Activity(window_s=5, min_speed=0.5, clock=clock)
    for _ in range(1000):  # 100 s at real time
        clock.now += 0.1
        activity.heard(0.1)
    assert activity.time_left() == pytest.approx(5.0)
    with activity.server_busy():  # 60 s spent waiting for the model
        clock.now += 60
    assert activity.time_left() == pytest.approx(5.0)
    clock.now += 5  # then the client says nothing
    assert activity.time_left() <= 0


# --- the drain --------------------------------------------------------------------------------
async def test_a_drain_gives_an_open_stream_the_finals_of_what_it_sent(app: InProcessApp) -> None:
    """No protocol waits on the stream here: the live core decodes what was sent by itself,
    so a stream whose client is slow to come back still has its finals when it does."""
    sessions = sessions_of(app)
    waiting = asyncio.create_task(asyncio.to_thread(sessions.wait_closed, 30))
    async with sessions.open(DecodeOptions(), sample_rate=16000) as stream:
        await stream.feed(load("en.wav")[: 16000 * 4])  # mid-way through the second sentence
        await asyncio.to_thread(sessions.begin_drain)  # as the server's drain thread calls it
        await asyncio.wait_for(stream.stopped.wait(), 5)
        with pytest.raises(Exception) as refused:
            await stream.feed(np.zeros(1600, dtype=np.float32))
        assert isinstance(stream.stop_reason, GoingAway)
        assert "shutting down" in str(refused.value)
        await stream.finish()
        events = ready_events(stream.session)
    finals = [e for e in events if isinstance(e, Heard)]
    assert [(round(f.start, 1), round(f.end, 1)) for f in finals] == [(0.2, 2.3), (3.2, 4.0)]
    assert events[-1] is None
    assert await waiting is True and sessions.count == 0
    with pytest.raises(GoingAway):
        sessions.reserve()  # no new stream while draining


# --- the UI's Live tab ------------------------------------------------------------------------
async def test_the_live_tab_refuses_a_rate_the_websocket_refuses_before_any_work(
    app: InProcessApp,
) -> None:
    """A WAV header through Gradio's queue API can claim any rate; 20 KB at "10 Hz" was
    resampled to 16 million samples (17 s of CPU, +370 MB). Now it costs nothing."""
    sessions = sessions_of(app)
    tab = LiveTab(sessions)
    chunk = np.zeros(10_000, dtype=np.int16)
    started = time.perf_counter()
    with pytest.raises(gr.Error, match="10 Hz"):
        await tab.on_chunk((10, chunk), "auto", True, None)
    assert time.perf_counter() - started < 0.5
    assert sessions.count == 0


async def test_the_live_tabs_keywords_reach_the_stream_and_bad_ones_are_refused(
    app: InProcessApp,
) -> None:
    sessions = sessions_of(app)
    tab = LiveTab(sessions)
    chunk = (load("en.wav")[:8000] * 32767).astype(np.int16)
    with pytest.raises(gr.Error, match="at most 50 characters"):
        await tab.on_chunk((16000, chunk), "auto", True, None, "x" * 60)
    assert sessions.count == 0  # refused before a place was taken
    _, captions = await tab.on_chunk((16000, chunk), "auto", True, None, "Kessler, Acme")
    assert captions.stream is not None
    assert captions.stream.session.options.keywords == ("Kessler", "Acme")
    await tab.on_stop(captions)


async def test_a_drain_shows_the_live_tab_its_finals_then_warns(app: InProcessApp) -> None:
    sessions = sessions_of(app)
    tab = LiveTab(sessions)
    microphone = (load("en.wav")[: 16000 * 4] * 32767).astype(np.int16)
    captions = None
    for start in range(0, len(microphone), 8000):
        _, captions = await tab.on_chunk(
            (16000, microphone[start : start + 8000]), "auto", True, captions
        )
    sessions.begin_drain()
    await asyncio.wait_for(captions.stream.stopped.wait(), 5)  # the next chunk comes after
    with pytest.warns(UserWarning, match="shutting down"):  # gr.Warning outside a request
        text, captions = await tab.on_chunk((16000, microphone[:8000]), "auto", True, captions)
    assert re.findall(r"\[(\d+\.\d)–(\d+\.\d) s\]", text) == [("0.2", "2.3"), ("3.2", "4.0")]
    assert captions.stream is None and sessions.count == 0
    with pytest.raises(gr.Error, match="shutting down"):
        await tab.on_chunk((16000, microphone[:8000]), "auto", True, captions)
