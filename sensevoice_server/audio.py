"""Turn uploaded bytes into what the model eats: 16 kHz mono float32, within limits.

This is the only module that knows about containers and codecs. funasr can decode files
itself, but it would be handed client-chosen names (it treats some suffixes as lists of
paths), so we decode with PyAV and give funasr arrays only (docs/ARCHITECTURE.md, invariant 3).
"""

from __future__ import annotations

import io
import struct
import threading
import wave
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import av
import numpy as np

from sensevoice_server.errors import (
    ClientClosedRequest,
    EmptyAudio,
    TooLarge,
    TooLong,
    UnsupportedAudio,
)
from sensevoice_server.pcm import SAMPLE_RATE
from sensevoice_server.settings import flag, variable

PROGRESS_EVERY = 10 * SAMPLE_RATE  # report decoded audio to the caller this often
DecodedSeconds = Callable[[float], None]
"""Called from the decoding thread with the seconds decoded so far; may raise to stop."""
Upload = bytes | BinaryIO
"""An upload's content: its bytes, or a seekable binary file (the HTTP routes pass the one
Starlette spooled to disk), which PyAV reads in chunks, so it is never held whole."""


@dataclass(frozen=True)
class AudioLimits:
    max_bytes: int
    max_duration_s: float


def check_size(size: int, limits: AudioLimits) -> None:
    """Refuse an upload by its size alone, before anything is read or decoded."""
    if size == 0:
        raise EmptyAudio("The uploaded file is empty.")
    if size > limits.max_bytes:
        raise too_large(limits.max_bytes)


def too_large(max_bytes: int) -> TooLarge:
    # One wording everywhere (nginx's 413 page repeats it), so it names the limit only.
    return TooLarge(f"The file is larger than the limit of {max_bytes / 1e6:g} MB.")


def too_long(max_duration_s: float, declared_s: float = 0.0) -> TooLong:
    """The refusal names the file's length where its header states one (decoding stops at
    the limit, so that is all that is known) and the setting that raises the limit."""
    length = f"{declared_s:.1f} seconds long, " if declared_s > max_duration_s else ""
    return TooLong(
        f"The audio is {length}longer than the limit of {max_duration_s:g} seconds. The "
        f"server's operator can raise the limit with {variable('max_duration_s')} "
        f"({flag('max_duration_s')})."
    )


SNIFF_BYTES = 128 * 1024
"""How much of a file's beginning sniff() wants (the whole file when it is shorter)."""
# Containers whose beginning may not say what they hold: MP4/M4A/MOV/3GP (ISO BMFF boxes at
# byte 4) can keep their index after the media, and an ID3 tag or FLAC metadata can carry a
# picture larger than the head. Only the whole file tells (has_audio).
_WHOLE_FILE_TELLS = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid")


def sniff(head: bytes, complete: bool) -> bool | None:
    """Whether a file that begins with `head` holds audio, as FFmpeg's own probe sees it:
    True, False, or None when only the whole file can tell (then ask has_audio()).
    `complete`: the head is the whole file. Costs a few milliseconds, no decoding."""
    try:
        with av.open(io.BytesIO(head), mode="r") as container:
            if container.streams.audio:
                return True
            if container.format.name == "image2" or container.format.name.endswith("_pipe"):
                return False  # a picture (FFmpeg's image demuxers)
        recognised = True  # a container whose audio track may be declared further on
    except (av.FFmpegError, ValueError, IndexError, EOFError):
        recognised = False
    if complete:
        return False
    if recognised or head[4:8] in _WHOLE_FILE_TELLS or head.startswith((b"ID3", b"fLaC")):
        return None
    return False


def has_audio(path: str) -> bool:
    """Whether FFmpeg opens the file and finds an audio track in it (headers only)."""
    try:
        with av.open(path, mode="r") as container:
            return bool(container.streams.audio)
    except (av.FFmpegError, ValueError, IndexError, EOFError, OSError):
        return False


def declared_duration(data: Upload) -> float | None:
    """The duration the container's header declares, without decoding; None if it declares
    none or cannot be opened (decode() then says what is wrong)."""
    if (plain := plain_wav(data)) is not None:
        return plain[1] / SAMPLE_RATE
    try:
        with av.open(readable(data), mode="r") as container:
            if container.duration is None or not container.streams.audio:
                return None
            return float(container.duration / av.time_base)
    except (av.FFmpegError, ValueError, IndexError, EOFError):
        return None


def decode(
    data: Upload,
    limits: AudioLimits,
    *,
    progress: DecodedSeconds | None = None,
    cancelled: threading.Event | None = None,
) -> np.ndarray:
    """Decode any container/codec FFmpeg knows to 16 kHz mono float32 samples.

    Stops as soon as the duration limit is passed, so a huge file costs no more than the
    limit; `progress` hears of the audio decoded so far (and may raise to stop), and a set
    `cancelled` event stops the decode between two frames (the client has gone).
    """
    check_size(upload_size(data), limits)
    watch = _Watch(int(limits.max_duration_s * SAMPLE_RATE), limits, progress, cancelled)
    try:
        if (plain := plain_wav(data)) is not None:
            samples = _read_plain(data, *plain, watch)
        else:
            with av.open(readable(data), mode="r") as container:
                if not container.streams.audio:
                    raise UnsupportedAudio("The file has no audio track.")
                samples = _decode_stream(container, watch)
                _check_complete(container, samples)
    except (av.FFmpegError, ValueError, IndexError, EOFError) as error:
        raise UnsupportedAudio(
            "The file could not be decoded as audio. Supported: WAV, MP3, M4A/AAC, "
            "OGG/Opus, FLAC, WebM and other formats FFmpeg reads."
        ) from error
    if samples.size == 0:
        raise EmptyAudio("The file contains no audio samples.")
    return samples


def plain_wav(data: Upload) -> tuple[int, int] | None:
    """Where the samples of a WAV already in the service's format (16 kHz mono 16-bit PCM)
    begin, and how many there are; None for anything else, which FFmpeg decodes.

    The gap: PyAV opens every file with FFmpeg's probe and a resampler, 3.5 ms to read a
    10 s WAV's header and 6.5 ms to decode it, where this format needs one conversion
    (0.3 ms); the samples are the same to the bit (s16 to float is a division by 32768 in
    FFmpeg too). A file whose data runs short of its header goes to FFmpeg, which says so.
    """
    handle = readable(data)
    try:
        with wave.open(handle, "rb") as reader:  # leaves `handle` open: it did not open it
            start, frames = handle.tell(), reader.getnframes()
            format_ = (reader.getnchannels(), reader.getsampwidth(), reader.getframerate())
    except (wave.Error, EOFError, struct.error, ValueError):
        return None
    whole = start + 2 * frames <= upload_size(data)
    return (start, frames) if format_ == (1, 2, SAMPLE_RATE) and whole else None


def _read_plain(data: Upload, start: int, frames: int, watch: _Watch) -> np.ndarray:
    watch.declared_s = frames / SAMPLE_RATE
    watch(frames)  # the duration limit, cancellation and progress, before reading
    handle = readable(data)
    handle.seek(start)
    steps = np.frombuffer(handle.read(2 * frames), dtype="<i2")
    samples: np.ndarray = np.multiply(steps, np.float32(1 / 32768), dtype=np.float32)
    return samples


def upload_size(data: Upload) -> int:
    return len(data) if isinstance(data, bytes) else data.seek(0, io.SEEK_END)


def readable(data: Upload) -> BinaryIO:
    """What PyAV opens: bytes in a BytesIO (which shares them, no copy), a file rewound."""
    if isinstance(data, bytes):
        return io.BytesIO(data)
    data.seek(0)
    return data


@dataclass
class _Watch:
    """What a decode checks as it goes: the duration limit, progress, cancellation."""

    max_samples: int
    limits: AudioLimits
    progress: DecodedSeconds | None
    cancelled: threading.Event | None
    reported: int = 0
    declared_s: float = 0.0  # the container header's duration, when it states one

    def __call__(self, total: int) -> None:
        if total > self.max_samples:
            raise too_long(self.limits.max_duration_s, self.declared_s)
        if self.cancelled is not None and self.cancelled.is_set():
            raise ClientClosedRequest("The decode was stopped: the client has gone.")
        if self.progress is not None and total - self.reported >= PROGRESS_EVERY:
            self.reported = total
            self.progress(total / SAMPLE_RATE)


class _Samples:
    """A growing float32 buffer: one copy in, one trim out (a list of chunks and a final
    concatenate would hold the whole audio twice at the end)."""

    def __init__(self, expected: int) -> None:
        self._data = np.empty(max(expected, SAMPLE_RATE), dtype=np.float32)
        self.size = 0

    def extend(self, frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            samples = frame.to_ndarray().reshape(-1)
            if self.size + samples.size > self._data.size:
                self._data = np.resize(
                    self._data, max(2 * self._data.size, self.size + samples.size)
                )
            self._data[self.size : self.size + samples.size] = samples
            self.size += samples.size

    def result(self) -> np.ndarray:
        self._data.resize((self.size,), refcheck=False)  # in place: no second copy
        return self._data


def _decode_stream(container: av.container.InputContainer, watch: _Watch) -> np.ndarray:
    stream = container.streams.audio[0]
    declared = container.duration / av.time_base if container.duration else 0.0
    expected = min(
        int(declared * 1.02 * SAMPLE_RATE) + SAMPLE_RATE, watch.max_samples + SAMPLE_RATE
    )
    watch.declared_s = declared
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    samples = _Samples(expected)
    for frame in container.decode(stream):
        samples.extend(resampler.resample(frame))
        watch(samples.size)
    samples.extend(resampler.resample(None))  # flush the resampler
    watch(samples.size)
    return samples.result()


def _check_complete(container: av.container.InputContainer, samples: np.ndarray) -> None:
    """Refuse a file that stops well before the duration its header declares.

    FFmpeg happily decodes the intact part of a truncated upload; transcribing half a
    recording without a word would be a silent lie, so we say so instead.
    """
    declared = declared_audio_s(container)
    if declared is None:
        return
    decoded = duration_s(samples)
    if decoded < 0.9 * declared and declared - decoded > 0.5:
        raise UnsupportedAudio(
            f"The file looks truncated: its header says {declared:.1f} s of audio, "
            f"but only {decoded:.1f} s could be decoded."
        )


def declared_audio_s(container: av.container.InputContainer) -> float | None:
    """How long the header says the sound track is: its own stream's duration where the
    header gives one (a video's picture may run on past its sound), else the container's
    when sound is all it holds; None when it says nothing to go by."""
    stream = container.streams.audio[0]
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is None or len(container.streams) > len(container.streams.audio):
        return None
    return float(container.duration / av.time_base)


def duration_s(samples: np.ndarray) -> float:
    return samples.size / SAMPLE_RATE
