"""audio.sniff and audio.has_audio: what the Gradio upload route lets in (api/gradio_uploads.py).

Refusing too much would turn a user's recording away, so every sample format and an MP4
whose index comes last (a phone's video) must pass; random bytes, text and a picture must not.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sensevoice_server.audio import SNIFF_BYTES, has_audio, sniff
from tests.support.media import movie
from tests.support.samples import SAMPLES

FORMATS = ["en.wav", "en.mp3", "en.m4a", "en.ogg", "en.flac", "en.webm", "en_44k_stereo.wav"]


@pytest.mark.parametrize("name", FORMATS)
def test_every_sample_format_is_audio_from_its_first_bytes(name: str) -> None:
    data = (SAMPLES / name).read_bytes()
    assert sniff(data[:SNIFF_BYTES], complete=len(data) <= SNIFF_BYTES) is True


def test_an_mp4_with_its_index_last_waits_for_the_whole_file(tmp_path: Path) -> None:
    talk = movie(tmp_path, video=True, audio=True)
    assert sniff(talk[:4096], complete=False) is None  # only the whole file can tell
    assert has_audio(str(tmp_path / "movie-True-True.mp4"))
    movie(tmp_path, video=True, audio=False)
    assert not has_audio(str(tmp_path / "movie-True-False.mp4"))  # a video without sound


@pytest.mark.parametrize(
    "head",
    [
        os.urandom(SNIFF_BYTES),
        b"meeting notes: buy milk\n" * 6000,
        b"\x89PNG\r\n\x1a\n" + os.urandom(SNIFF_BYTES),
    ],
    ids=["random", "text", "png"],
)
def test_what_is_not_audio_is_known_from_its_first_bytes(head: bytes) -> None:
    assert sniff(head, complete=False) is False
