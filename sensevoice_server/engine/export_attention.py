"""The encoder's attention as it is exported: funasr's arithmetic, in two places in a form
onnxruntime runs faster.

The masks.
funasr's `MultiHeadedAttentionSANM.forward_attention` fills the padded keys' scores with -inf
before the softmax and the probabilities with 0 after it. Traced, each fill is a `Where` over
batch x heads x frames x frames floats: in the int8 graph the two took 7 % of a 10 s clip's
encoder time and 34 % of a 60 s clip's (onnxruntime's profiler, docs/FACTS.md). Adding a
0 / -inf bias of batch x 1 x 1 x frames gives the same scores bit for bit (x + 0 is x,
x + -inf is -inf), and the second fill has nothing left to do: no row is all padding (the
four query frames never are), so the softmax already gives exactly 0 where it would write 0.

The FSMN memory block. Its depthwise convolution over time is a 1-D Conv in funasr; run as
a 2-D one over a height of 1 (the same weights, the same sums), onnxruntime takes 59 us
instead of 169 us for 512 channels x 166 frames (a 10 s clip), 70 times per clip: its 1-D
depthwise Conv misses the fast path its 2-D one has (docs/FACTS.md).

The torch backend runs funasr's own methods; only the export takes these.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F


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


def forward_fsmn(
    self: Any, inputs: torch.Tensor, mask: torch.Tensor | None,
    mask_shfit_chunk: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """funasr's method (sense_voice/model.py) with its convolution in 2-D; dropout left out
    as above."""
    b, _, _ = inputs.size()
    if mask is not None:
        mask = torch.reshape(mask, (b, -1, 1))
        if mask_shfit_chunk is not None:
            mask = mask * mask_shfit_chunk
        inputs = inputs * mask
    x = inputs.transpose(1, 2).unsqueeze(2)  # (batch, channels, 1, frames)
    conv, (left, right) = self.fsmn_block, self.pad_fn.padding  # depthwise, no bias, stride 1
    weight = conv.weight.unsqueeze(2)
    if left == right:  # the Conv pads (SenseVoiceSmall's: 5 and 5), no Pad of its own
        x = F.conv2d(x, weight, padding=(0, left), groups=conv.groups)
    else:
        x = F.conv2d(F.pad(x, (left, right)), weight, groups=conv.groups)
    x = x.squeeze(2)
    x = x.transpose(1, 2) + inputs
    return x * mask if mask is not None else x


@contextmanager
def lean_attention(model: torch.nn.Module) -> Iterator[int]:
    """Within the block, every SANM attention of `model` masks additively and convolves in
    2-D; yields how many there are."""
    from funasr.models.sense_voice.model import MultiHeadedAttentionSANM

    layers = [m for m in model.modules() if isinstance(m, MultiHeadedAttentionSANM)]
    for layer in layers:
        layer.forward_attention = types.MethodType(forward_attention, layer)
        layer.forward_fsmn = types.MethodType(forward_fsmn, layer)
    try:
        yield len(layers)
    finally:
        for layer in layers:
            del layer.forward_attention, layer.forward_fsmn
