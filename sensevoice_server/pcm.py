"""The one audio format every stage after decoding speaks: 16 kHz mono float32 in [-1, 1].

SenseVoiceSmall, its VAD and CAM++ were all trained at 16 kHz; uploads (audio.py) and live
streams (live/audio.py) are resampled to it once, on the way in, and nothing after that
converts again.
"""

from __future__ import annotations

import io
import wave

import numpy as np

SAMPLE_RATE = 16_000


def wav_bytes(samples: np.ndarray, rate: int = 16_000) -> bytes:
    """Float samples as the bytes of a 16-bit mono WAV file: each sample rounded to the
    nearest step of 1/32768, the scale decoders read it back with, so samples already on
    those steps come back exactly."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        steps = np.clip(np.round(np.asarray(samples, np.float64) * 32768), -32768, 32767)
        out.writeframes(steps.astype("<i2").tobytes())
    return buffer.getvalue()


def g711_samples(data: bytes, law: str) -> np.ndarray:
    """G.711 bytes (telephony's 8 kHz audio) as float32 samples: "mu" for mu-law (PCMU), "a"
    for A-law (PCMA). Python's audioop did this and is gone from 3.13; a 256-entry table
    per law is all it takes."""
    table = _ULAW if law == "mu" else _ALAW
    return table[np.frombuffer(data, dtype=np.uint8)]


def _ulaw_table() -> np.ndarray:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent, mantissa = (code >> 4) & 7, code & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return (np.where(code & 0x80, -magnitude, magnitude) / 32768.0).astype(np.float32)


def _alaw_table() -> np.ndarray:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    exponent, mantissa = (code >> 4) & 7, code & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8,
                         ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))  # fmt: skip
    return (np.where(code & 0x80, magnitude, -magnitude) / 32768.0).astype(np.float32)


_ULAW, _ALAW = _ulaw_table(), _alaw_table()
