"""The model behind one narrow face: segments' features and options in, CTC logits out.

Everything before (VAD, features) and after (greedy decoding, alignment, text) is shared
(engine/), so a backend only runs the encoder: `torch.py` (funasr's own modules, on CPU or
CUDA, fp32 or fp16) and `onnx.py` (an ONNX export under onnxruntime, fp32 or int8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sensevoice_server.engine.features import Cmvn
from sensevoice_server.engine.tokens import Vocabulary


@dataclass(frozen=True)
class Item:
    """One segment for the model: its features and its own options (a batch may mix them)."""

    features: np.ndarray  # (frames, 560) float32
    language: str
    use_itn: bool


class Backend(Protocol):
    name: str  # "torch" or "onnx"
    precision: str  # "fp32", "fp16" or "int8"
    device: str
    vocabulary: Vocabulary
    cmvn: Cmvn
    batch_independent: bool  # an item's logits do not depend on its batch mates

    def logits(self, items: list[Item]) -> list[np.ndarray]:
        """(frames + 4, vocabulary) float32 logits per item, query frames first."""
        ...

    def identity(self) -> dict[str, str]:
        """What identifies the weights and the runtime, for the cache fingerprint."""
        ...
