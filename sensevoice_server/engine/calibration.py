"""The audio int8 is scaled by and checked on: the calibration set.

Static int8 fixes each activation's scale from what the calibration clips make the model
compute (engine/export.py), and at every start the int8 model is checked against fp32 on
the same clips (engine/int8_check.py). By default they are the synthetic clips shipped in
the package, calibration_clips/ beside this module (espeak-ng speech in the five languages,
made by samples/make_samples.py), so `pip install .` has them too; `--calibration-audio
DIR` puts an operator's own audio in their place, which is what the check should run on
when the audio served is unlike them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path(__file__).resolve().parent / "calibration_clips"
SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".webm", ".opus")
MAX_CLIP_S = 30.0  # one model call per clip: the longest segment the server decodes
LANGUAGES = ("zh", "en", "yue", "ja", "ko")


@dataclass(frozen=True)
class Clip:
    name: str
    language: str  # from the file name's first part (en-2.wav: "en"), else "auto"
    samples: np.ndarray  # 16 kHz float32, at most MAX_CLIP_S


def clip_files(directory: str | Path | None = None) -> list[Path]:
    """The audio files of `directory` (default: the shipped set), sorted; none if absent."""
    folder = Path(directory) if directory else DEFAULT_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())


def clips(directory: str | Path | None = None) -> Iterator[Clip]:
    """Each file decoded as an upload is; one that does not decode is skipped, not fatal
    (an operator's folder may hold other files)."""
    from sensevoice_server.audio import AudioLimits, decode
    from sensevoice_server.errors import ServiceError

    limits = AudioLimits(max_bytes=10**9, max_duration_s=10**6)
    for path in clip_files(directory):
        try:
            samples = decode(path.read_bytes(), limits)
        except (ServiceError, OSError):  # not audio, empty, or unreadable
            continue
        language = path.stem.split("-")[0].split("_")[0]
        yield Clip(path.name, language if language in LANGUAGES else "auto",
                   samples[: int(MAX_CLIP_S * 16000)])  # fmt: skip
