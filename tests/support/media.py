"""Media files made on the spot for tests: noise as WAV, and MP4s as a phone writes them."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np


def wav(seconds: float, rate: int = 16_000) -> bytes:
    """`seconds` of 16-bit mono noise at `rate`, as a WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(rate)
        noise = np.random.default_rng(0).integers(-3000, 3000, int(seconds * rate))
        file.writeframes(noise.astype("<i2").tobytes())
    return out.getvalue()


def movie(tmp_path: Path, video: bool, audio: bool) -> bytes:
    """An MP4 as a phone writes it: its index (moov) after the media, so its first bytes
    say only that it is an MP4."""
    import av

    path = tmp_path / f"movie-{video}-{audio}.mp4"
    with av.open(str(path), "w") as out:
        picture = out.add_stream("mpeg4", rate=10) if video else None
        sound = out.add_stream("aac", rate=16_000) if audio else None
        if picture is not None:
            picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
        for second in range(3):
            if picture is not None:
                for i in range(10):
                    pixels = np.full((48, 64, 3), (second * 10 + i) * 8, dtype=np.uint8)
                    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                    frame.pts = second * 10 + i
                    out.mux(picture.encode(frame))
            if sound is not None:
                for i in range(16):
                    block = np.zeros((1, 1000), dtype=np.int16)
                    chunk = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
                    chunk.sample_rate, chunk.pts = 16_000, (second * 16 + i) * 1000
                    out.mux(sound.encode(chunk))
        for stream in (picture, sound):
            if stream is not None:
                out.mux(stream.encode(None))
    return path.read_bytes()
