"""Turn uploaded bytes into what the model eats: 16 kHz mono float32, within limits.

This is the only module that knows about containers and codecs. funasr can decode files
itself, but it would be handed client-chosen names (it treats some suffixes as lists of
paths), so we decode with PyAV and give funasr arrays only (DESIGN.md, invariant 3).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

from sensevoice_server.errors import EmptyAudio, TooLarge, TooLong, UnsupportedAudio

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class AudioLimits:
    max_bytes: int
    max_duration_s: float


def check_size(size: int, limits: AudioLimits) -> None:
    """Refuse an upload by its size alone, before anything is read or decoded."""
    if size == 0:
        raise EmptyAudio("The uploaded file is empty.")
    if size > limits.max_bytes:
        raise too_large(limits)


def too_large(limits: AudioLimits) -> TooLarge:
    # One wording everywhere (nginx's 413 page repeats it), so it names the limit only.
    return TooLarge(f"The file is larger than the limit of {limits.max_bytes / 1e6:g} MB.")


def decode(data: bytes, limits: AudioLimits) -> np.ndarray:
    """Decode any container/codec FFmpeg knows to 16 kHz mono float32 samples.

    Stops reading as soon as the duration limit is passed, so a huge file costs no more
    than the limit.
    """
    check_size(len(data), limits)
    max_samples = int(limits.max_duration_s * SAMPLE_RATE)
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise UnsupportedAudio("The file has no audio track.")
            samples = _decode_stream(container, max_samples, limits)
            _check_complete(container, samples)
    except (av.FFmpegError, ValueError, IndexError, EOFError) as error:
        raise UnsupportedAudio(
            "The file could not be decoded as audio. Supported: WAV, MP3, M4A/AAC, "
            "OGG/Opus, FLAC, WebM and other formats FFmpeg reads."
        ) from error
    if samples.size == 0:
        raise EmptyAudio("The file contains no audio samples.")
    return samples


def _decode_stream(
    container: av.container.InputContainer, max_samples: int, limits: AudioLimits
) -> np.ndarray:
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    for frame in container.decode(stream):
        total += _append(chunks, resampler.resample(frame))
        _check_length(total, max_samples, limits)
    total += _append(chunks, resampler.resample(None))  # flush the resampler
    _check_length(total, max_samples, limits)
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks)


def _append(chunks: list[np.ndarray], frames: list[av.AudioFrame]) -> int:
    added = 0
    for frame in frames:
        samples = frame.to_ndarray().reshape(-1).astype(np.float32, copy=False)
        chunks.append(samples)
        added += samples.size
    return added


def _check_length(total: int, max_samples: int, limits: AudioLimits) -> None:
    if total > max_samples:
        raise TooLong(f"The audio is longer than the limit of {limits.max_duration_s:g} seconds.")


def _check_complete(container: av.container.InputContainer, samples: np.ndarray) -> None:
    """Refuse a file that stops well before the duration its header declares.

    FFmpeg happily decodes the intact part of a truncated upload; transcribing half a
    recording without a word would be a silent lie, so we say so instead.
    """
    if container.duration is None:
        return
    declared = container.duration / av.time_base
    decoded = duration_s(samples)
    if decoded < 0.9 * declared and declared - decoded > 0.5:
        raise UnsupportedAudio(
            f"The file looks truncated: its header says {declared:.1f} s of audio, "
            f"but only {decoded:.1f} s could be decoded."
        )


def duration_s(samples: np.ndarray) -> float:
    return samples.size / SAMPLE_RATE
