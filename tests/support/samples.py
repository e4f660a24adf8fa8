"""The sample clips in samples/ (espeak-ng speech, made by samples/make_samples.py)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from sensevoice_server.audio import AudioLimits, decode

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLES = ROOT / "samples"
SPEECH_SAMPLES = ["en.wav", "zh.wav", "yue.wav", "ja.wav", "ko.wav"]
ENGLISH_FORMATS = ["en.wav", "en.mp3", "en.m4a", "en.ogg", "en.flac", "en.webm",
                   "en_44k_stereo.wav"]  # fmt: skip
EN = SAMPLES / "en.wav"
with wave.open(str(EN)) as _en:
    EN_SECONDS = _en.getnframes() / _en.getframerate()
ANY_LENGTH = AudioLimits(10**9, 24 * 3600)


def load(name: str) -> np.ndarray:
    """A sample decoded to 16 kHz mono float32, as the service decodes it."""
    return decode((SAMPLES / name).read_bytes(), ANY_LENGTH)


def resampled(samples: np.ndarray, rate: int) -> np.ndarray:
    """16 kHz samples at another rate, as a microphone would deliver them (PyAV)."""
    import av

    out = av.AudioResampler(format="flt", layout="mono", rate=rate)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = 16000
    frames = [*out.resample(frame), *out.resample(None)]
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
