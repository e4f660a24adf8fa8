"""The reference pipeline (docs/ARCHITECTURE.md, "Reference behaviour"): what every front end
must match."""

from __future__ import annotations

from typing import Any

import numpy as np


def reference_model(model: str, ncpu: int, vad_model: str = "silero-vad") -> Any:
    """Bare funasr, built as the reference is: no code of ours between it and the model.

    funasr reads `merge_length_s` from the constructor only and `merge_vad` from generate()
    only (docs/FACTS.md, "VAD"), so each goes where funasr reads it.
    """
    from funasr import AutoModel

    return AutoModel(
        model=model,
        vad_model=vad_model,
        vad_kwargs={"max_single_segment_time": 30000},
        merge_length_s=15,
        frontend_conf={"dither": 0.0},  # as the service: identical audio, identical text
        device="cpu",
        ncpu=ncpu,
        disable_update=True,
        disable_pbar=True,
        disable_log=True,
    )


def reference_text(model: Any, samples: np.ndarray, language: str, use_itn: bool) -> str:
    """Bare funasr: generate() on the 16 kHz array; the tagged text of all segments."""
    out = model.generate(
        input=samples, language=language, use_itn=use_itn, batch_size_s=60, merge_vad=True
    )
    return out[0]["text"] if out else ""


def without_spaces(text: str) -> str:
    """Rich text compared across our segment-join fix, which only adds spaces."""
    return "".join(text.split())
