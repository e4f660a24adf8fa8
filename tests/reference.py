"""The reference pipeline of DESIGN.md ("Reference behaviour"): what every front end must match."""

from __future__ import annotations

from typing import Any

import numpy as np


def reference_text(model: Any, samples: np.ndarray, language: str, use_itn: bool) -> str:
    """Bare funasr: generate() on the 16 kHz array; the tagged text of all segments."""
    out = model.generate(input=samples, language=language, use_itn=use_itn, batch_size_s=60)
    return out[0]["text"] if out else ""


def without_spaces(text: str) -> str:
    """Rich text compared across our segment-join fix, which only adds spaces."""
    return "".join(text.split())
