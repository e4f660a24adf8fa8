"""Decoding: every format browsers and users send becomes 16 kHz mono float32, or a clear error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from sensevoice_server.audio import AudioLimits, declared_duration, decode, plain_wav
from sensevoice_server.errors import EmptyAudio, TooLarge, TooLong, UnsupportedAudio
from sensevoice_server.pcm import SAMPLE_RATE
from sensevoice_server.testing.audio_files import wav_bytes
from tests.support.samples import EN_SECONDS, ENGLISH_FORMATS, SAMPLES

LIMITS = AudioLimits(max_bytes=5_000_000, max_duration_s=60)


@pytest.mark.parametrize("name", ENGLISH_FORMATS)
def test_every_format_decodes_to_16k_mono_float32(name: str) -> None:
    reference = decode((SAMPLES / "en.wav").read_bytes(), LIMITS)
    samples = decode((SAMPLES / name).read_bytes(), LIMITS)
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert abs(samples.size - reference.size) < 0.1 * SAMPLE_RATE  # codec padding only
    assert 0.2 < np.abs(samples).max() <= 1.0


def test_stereo_44k_is_downmixed_and_resampled_to_the_same_signal() -> None:
    mono = decode((SAMPLES / "en.wav").read_bytes(), LIMITS)
    stereo = decode((SAMPLES / "en_44k_stereo.wav").read_bytes(), LIMITS)
    n = min(mono.size, stereo.size)
    assert np.corrcoef(mono[:n], stereo[:n])[0, 1] > 0.95


def test_silence_decodes_to_zeros() -> None:
    samples = decode((SAMPLES / "silence.wav").read_bytes(), LIMITS)
    assert samples.size == 3 * SAMPLE_RATE
    assert not samples.any()


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"", EmptyAudio, "empty"),
        (np.random.default_rng(0).bytes(20_000), UnsupportedAudio, "could not be decoded"),
        (b"this is a text file, not audio\n" * 50, UnsupportedAudio, "could not be decoded"),
        ((SAMPLES / "en.mp3").read_bytes()[:9000], UnsupportedAudio, "truncated"),
        (wav_bytes(np.zeros(0)), EmptyAudio, "no audio"),
    ],
    ids=["empty", "random-bytes", "text-file", "truncated-mp3", "wav-without-samples"],
)
def test_bad_input_gets_a_message_a_person_understands(
    data: bytes, error: type, words: str
) -> None:
    with pytest.raises(error, match=words):
        decode(data, LIMITS)


def test_over_the_byte_limit_is_refused_before_decoding() -> None:
    with pytest.raises(TooLarge, match=r"larger than the limit of 0\.001 MB"):
        decode((SAMPLES / "en.wav").read_bytes(), AudioLimits(max_bytes=1000, max_duration_s=60))


def test_over_the_duration_limit_is_refused() -> None:
    with pytest.raises(TooLong, match="longer than the limit of 2 seconds"):
        decode((SAMPLES / "en.wav").read_bytes(), AudioLimits(max_bytes=10**8, max_duration_s=2))


def test_a_wav_in_the_services_format_is_read_without_ffmpeg_to_the_same_samples(
    tmp_path: Path,
) -> None:
    """16 kHz mono 16-bit WAV (what most clients send) skips FFmpeg's probe and resampler,
    10 ms of a 10 s request; its samples are FFmpeg's to the bit. Any other WAV, and a
    plain one whose data runs short of its header (a recorder's stream WAV may declare no
    size or the largest), still go to FFmpeg, which decodes what is there."""
    data = (SAMPLES / "en.wav").read_bytes()
    assert (
        plain_wav(data) is not None and plain_wav(SAMPLES.joinpath("en.mp3").read_bytes()) is None
    )
    assert plain_wav((SAMPLES / "en_44k_stereo.wav").read_bytes()) is None
    by_ffmpeg = tmp_path / "en.f32"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(SAMPLES / "en.wav"), "-f", "f32le",
                    "-ac", "1", "-ar", str(SAMPLE_RATE), str(by_ffmpeg)], check=True)  # fmt: skip
    samples = decode(data, LIMITS)
    assert np.array_equal(samples, np.fromfile(by_ffmpeg, dtype="<f4"))
    assert declared_duration(data) == samples.size / SAMPLE_RATE
    with open(SAMPLES / "en.wav", "rb") as spooled:  # the HTTP routes pass a file
        assert np.array_equal(decode(spooled, LIMITS), samples)
    cut = data[: len(data) // 3]
    assert plain_wav(cut) is None
    assert np.array_equal(decode(cut, LIMITS), samples[: (len(cut) - 44) // 2])
    with pytest.raises(TooLong, match=r"is \d+\.\d seconds long, longer than the limit of 2"):
        decode(data, AudioLimits(max_bytes=10**8, max_duration_s=2))


@pytest.mark.parametrize("container", ["mp4", "webm"])
def test_a_video_whose_picture_outlasts_its_sound_is_not_called_truncated(
    container: str, tmp_path: Path
) -> None:
    """A screen recording often runs its picture on past its sound: the sound track's own
    length is what the header promises, not the container's."""
    video = tmp_path / f"talk.{container}"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=black:s=64x64:d=10",
         "-i", str(SAMPLES / "en.wav"), str(video)],
        check=True,
    )  # fmt: skip
    samples = decode(video.read_bytes(), LIMITS)
    assert abs(samples.size / SAMPLE_RATE - EN_SECONDS) < 0.2
