"""The torch backend: SenseVoiceSmall as funasr loads it, its encoder run on our features.

Loading is funasr's own (`AutoModel`, hub download included); the forward pass is the one
`SenseVoiceSmall.inference` runs (four query frames, then the encoder and the CTC layer),
written as a module so that the language and ITN may differ per row of a batch, which
funasr's generate() cannot do (one language per call), and so that the ONNX export
(engine/export.py) traces exactly this computation. fp16 on CUDA halves memory and time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sensevoice_server.engine.backends import Item
from sensevoice_server.engine.features import Cmvn, pad_batch
from sensevoice_server.engine.queries import ITN_QUERY, LANGUAGE_QUERY
from sensevoice_server.engine.tokens import Vocabulary
from sensevoice_server.errors import ModelLoadError

log = logging.getLogger(__name__)


class SenseVoiceLogits(torch.nn.Module):
    """Features to CTC logits, with the query frames funasr prepends:
    [embed(language), embed(1), embed(2), embed(text_norm)] + features, lengths + 4."""

    # funasr's modules are untyped: typed here as what they are to us
    embed: Any
    encoder: Any
    ctc_lo: Any

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.embed = model.embed
        self.encoder = model.encoder
        self.ctc_lo = model.ctc.ctc_lo

    def forward(
        self, x: torch.Tensor, x_length: torch.Tensor, language: torch.Tensor,
        text_norm: torch.Tensor,
    ) -> torch.Tensor:  # fmt: skip
        rows = x.shape[0]
        language_query = self.embed(language.long()).unsqueeze(1)
        event_emotion_query = self.embed.weight[1:3].unsqueeze(0).expand(rows, -1, -1)
        text_norm_query = self.embed(text_norm.long()).unsqueeze(1)
        speech = torch.cat((language_query, event_emotion_query, text_norm_query, x), dim=1)
        encoded = self.encoder(speech, x_length + 4)[0]
        if isinstance(encoded, tuple):
            encoded = encoded[0]
        logits: torch.Tensor = self.ctc_lo(encoded)
        return logits


def load_funasr_model(model: str, device: str, ncpu: int) -> Any:
    """funasr's AutoModel for `model` (a directory or a hub id, downloaded if need be)."""
    from funasr import AutoModel

    try:
        return AutoModel(
            model=model, device=device, ncpu=ncpu, disable_update=True, disable_pbar=True,
            disable_log=True,
        )  # fmt: skip
    except Exception as error:
        raise ModelLoadError(f"--model {model}: funasr could not load it: {error}") from error


class TorchBackend:
    name = "torch"
    batch_independent = True  # masks keep padded rows apart (tests/unit/test_engine.py)

    def __init__(self, model: str, device: str, ncpu: int, precision: str = "fp32") -> None:
        automodel = load_funasr_model(model, device, ncpu)
        self.device = device
        self.precision = precision
        self.model_dir = Path(automodel.kwargs.get("model_path") or model)
        self.vocabulary = Vocabulary.from_sentencepiece(
            automodel.kwargs["tokenizer_conf"]["bpemodel"]
        )
        self.cmvn = Cmvn.from_am_mvn(automodel.kwargs["frontend_conf"]["cmvn_file"])
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        self.module = SenseVoiceLogits(automodel.model).eval().to(device, self._dtype)
        self._ncpu = ncpu

    @torch.inference_mode()
    def logits(self, items: list[Item]) -> list[np.ndarray]:
        if torch.get_num_threads() != self._ncpu:  # per thread: set where the work runs
            torch.set_num_threads(self._ncpu)
        padded, lengths = pad_batch([item.features for item in items])
        languages = [LANGUAGE_QUERY.get(item.language, 0) for item in items]
        itn = [ITN_QUERY[item.use_itn] for item in items]
        out = self.module(
            torch.from_numpy(padded).to(self.device, self._dtype),
            torch.from_numpy(lengths).to(self.device),
            torch.tensor(languages, device=self.device),
            torch.tensor(itn, device=self.device),
        )
        out = out.float().cpu().numpy()
        return [out[row, : length + 4] for row, length in enumerate(lengths)]

    def identity(self) -> dict[str, str]:
        return {"backend": "torch", "precision": self.precision}
