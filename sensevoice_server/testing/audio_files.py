"""Audio files made on the fly for tests: long clips and limit-breaking uploads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sensevoice_server.pcm import wav_bytes

__all__ = ["unique_speech", "wav_bytes", "write_samples", "write_wav"]


def write_samples(path: Path, samples: np.ndarray, rate: int = 16_000) -> Path:
    """Write float samples as a 16-bit mono WAV file."""
    path.write_bytes(wav_bytes(samples, rate))
    return path


def write_wav(path: Path, seconds: float, rate: int = 16_000) -> Path:
    """Noise of a given length: enough to test limits, too random for a VAD to find speech."""
    return write_samples(path, np.random.default_rng(1).normal(0, 0.1, int(seconds * rate)), rate)


def unique_speech(path: Path, seed: int) -> Path:
    """The English sample with a little seeded noise: speech no earlier test has cached."""
    from sensevoice_server.audio import AudioLimits, decode

    speech = decode((Path(__file__).parent.parent.parent / "samples" / "en.wav").read_bytes(),
                    AudioLimits(10**8, 3600))  # fmt: skip
    noise = np.random.default_rng(seed).normal(0, 0.003, speech.size)
    return write_samples(path, speech + noise)
