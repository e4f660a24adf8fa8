"""A live session's speakers, labelled one utterance at a time (live/speakers.py).

The test CAM++ has random weights and hears one voice, so the labelling rules are checked
here on embeddings whose speakers are known: directions in the 192-dimensional space CAM++
embeds into, with each utterance a little off its speaker's direction."""

from __future__ import annotations

import numpy as np

from sensevoice_server.engine.speakers import MERGE_COSINE
from sensevoice_server.live.speakers import SpeakerTrack

RNG = np.random.default_rng(0)
VOICES = np.linalg.qr(RNG.normal(size=(192, 3)))[0].T  # three orthonormal voices


def said_by(voice: int, spread: float = 0.3) -> np.ndarray:
    """An utterance's embedding: its voice's direction plus its own variation."""
    return VOICES[voice] + spread * RNG.normal(size=192) / np.sqrt(192)


def test_speakers_are_numbered_by_first_appearance_and_recognised_when_they_return() -> None:
    track = SpeakerTrack()
    voices = [2, 2, 0, 2, 1, 0, 1]
    assert [track.label(said_by(v), 2.0) for v in voices] == [0, 0, 1, 0, 2, 1, 2]
    assert track.count == 3


def test_a_voice_less_alike_than_funasrs_merge_threshold_is_a_new_speaker() -> None:
    """Just below the threshold is someone else; just above is the same speaker."""
    for cosine, expected in ((MERGE_COSINE - 0.02, 1), (MERGE_COSINE + 0.02, 0)):
        track = SpeakerTrack()
        assert track.label(VOICES[0], 2.0) == 0
        close = cosine * VOICES[0] + np.sqrt(1 - cosine**2) * VOICES[1]
        assert track.label(close, 2.0) == expected


def test_a_short_or_silent_utterance_takes_the_previous_speaker() -> None:
    """Under half a second there is too little voice to embed reliably; nothing to embed
    (digital silence) says nothing about the speaker either."""
    track = SpeakerTrack()
    assert track.label(said_by(0), 2.0) == 0
    assert track.label(said_by(1), 2.0) == 1
    assert track.label(said_by(0), 0.3) == 1  # short: not even a different voice moves it
    assert track.label(None, 2.0) == 1
    assert track.count == 2


def test_the_first_utterance_is_labelled_even_when_short() -> None:
    track = SpeakerTrack()
    assert track.label(said_by(1), 0.3) == 0
    assert track.label(None, 0.2) == 0
    assert SpeakerTrack().label(None, 1.0) == 0
