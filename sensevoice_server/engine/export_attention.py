"""The encoder's attention as it is exported: funasr's arithmetic, its two masked fills over
the attention scores replaced by one additive mask.

funasr's `MultiHeadedAttentionSANM.forward_attention` fills the padded keys' scores with -inf
before the softmax and the probabilities with 0 after it. Traced, each fill is a `Where` over
batch x heads x frames x frames floats: in the int8 graph the two took 7 % of a 10 s clip's
encoder time and 34 % of a 60 s clip's (onnxruntime's profiler, docs/FACTS.md). Adding a
0 / -inf bias of batch x 1 x 1 x frames gives the same scores bit for bit (x + 0 is x,
x + -inf is -inf), and the second fill has nothing left to do: no row is all padding (the
four query frames never are), so the softmax already gives exactly 0 where it would write 0.
The torch backend runs funasr's own method; only the export takes this one.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


def forward_attention(
    self: Any, value: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor | None,
    mask_att_chunk_encoder: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """funasr's method (sense_voice/model.py) with the additive mask; dropout is the
    identity in eval mode, so it is left out."""
    n_batch = value.size(0)
    if mask is not None:
        if mask_att_chunk_encoder is not None:
            mask = mask * mask_att_chunk_encoder
        padded = mask.unsqueeze(1).eq(0)  # (batch, 1, 1, keys): small, unlike the scores
        bias = torch.zeros_like(padded, dtype=scores.dtype).masked_fill(padded, float("-inf"))
        scores = scores + bias
    attention = torch.softmax(scores, dim=-1)
    x = torch.matmul(attention, value).transpose(1, 2).contiguous()
    out: torch.Tensor = self.linear_out(x.view(n_batch, -1, self.h * self.d_k))
    return out


@contextmanager
def additive_masks(model: torch.nn.Module) -> Iterator[int]:
    """Within the block, every SANM attention of `model` masks additively; yields how many."""
    from funasr.models.sense_voice.model import MultiHeadedAttentionSANM

    layers = [m for m in model.modules() if isinstance(m, MultiHeadedAttentionSANM)]
    for layer in layers:
        layer.forward_attention = types.MethodType(forward_attention, layer)
    try:
        yield len(layers)
    finally:
        for layer in layers:
            del layer.forward_attention
