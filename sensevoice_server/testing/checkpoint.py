"""Build a randomly initialised SenseVoiceSmall model directory in funasr's on-disk format.

Why this exists: no model hub (ModelScope, Hugging Face) is reachable from the machines that
build and test this service, yet the service must be exercised through funasr's real loading
and decoding path. This script writes a directory that ``funasr.AutoModel(model=DIR)`` loads
exactly like the published checkpoint: ``config.yaml``, ``configuration.json``, the
SentencePiece model under its real name, ``am.mvn`` and ``model.pt`` (a plain state_dict).

* ``full`` has the real architecture (234M parameters, a 936 MB model.pt), so it costs what
  the real model costs to load and run: use it for benchmarks.
* ``tiny`` has 2+1 encoder blocks of width 64 and builds in seconds: use it in tests.

The weights are random, so the text is gibberish, but the decoded string has the real shape.
funasr reads the first four CTC frames as the language, emotion, event and text-norm tags and
hard-codes their vocabulary ids, so the SentencePiece model puts every tag at a fixed id (see
``TAG_IDS``), and the model is wired so that this prefix follows the request on any audio:
``language="zh"`` gives ``<|zh|>`` ("auto" gives ``<|en|>``), then ``<|NEUTRAL|><|Speech|>``,
then ``<|withitn|>`` or ``<|woitn|>`` from ``use_itn``. Two changes to the random model do
that: what a frame takes from other frames (attention output, FSMN memory taps) is scaled by
``CONTEXT_SCALE``, so the four query frames come out of the encoder nearly independent of the
audio, and the CTC rows of those ten tags are set to fire only close to where their query
frames land. Text frames never get there, so they decode to random word pieces. The compute
is unchanged. ``config.yaml`` sets ``dither: 0.0`` so identical audio gives identical text.

Usage: ``python -m sensevoice_server.testing.checkpoint --size tiny|full [--seed N] OUTDIR``
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from sensevoice_server.testing.model_layout import (
    BPE_MODEL_NAME,
    FEATURE_DIM,
    TAG_IDS,
    VOCAB_SIZE,
    Size,
    hub_configuration,
    model_config,
    mvn_text,
)
from sensevoice_server.testing.tokenizers import build_tokenizer

# The four query frames SenseVoiceSmall.inference puts before the audio are embeddings of
# [language index, 1, 2, text-norm index]; these say what each should decode to.
LANGUAGE_TAGS: dict[int, str] = {
    0: "<|en|>",  # "auto"
    3: "<|zh|>",
    4: "<|en|>",
    7: "<|yue|>",
    11: "<|ja|>",
    12: "<|ko|>",
    13: "<|nospeech|>",
}
AUTO_QUERY, ENGLISH_QUERY = 0, 4  # "auto" gets English's embedding: it always "detects" English
EMOTION_QUERY, EVENT_QUERY = 1, 2
EMOTION_TAG, EVENT_TAG = "<|NEUTRAL|>", "<|Speech|>"
TEXTNORM_TAGS: dict[int, str] = {14: "<|withitn|>", 15: "<|woitn|>"}

CONTEXT_SCALE = 0.1  # query outputs then stay within cosine 0.98 of their audio-free value
TAG_COSINE = 0.8  # a frame decodes as a prefix tag only this close to the tag's query output
TAG_LOGIT = 20.0  # the tag's logit at its own query output; random rows peak near 2.5


def prefix_queries() -> tuple[torch.Tensor, list[list[str]]]:
    """Every (language, text-norm) query row, and the tags its four frames should decode to."""
    queries, tags = [], []
    for (lid, lang_tag), (tn, tn_tag) in itertools.product(
        LANGUAGE_TAGS.items(), TEXTNORM_TAGS.items()
    ):
        queries.append([lid, EMOTION_QUERY, EVENT_QUERY, tn])
        tags.append([lang_tag, EMOTION_TAG, EVENT_TAG, tn_tag])
    return torch.tensor(queries), tags


def encode(model: Any, queries: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    """Encoder output for the query frames followed by feats, as SenseVoiceSmall.inference."""
    speech = torch.cat((model.embed(queries), feats.expand(len(queries), -1, -1)), dim=1)
    lengths = torch.full((len(queries),), speech.size(1), dtype=torch.int32)
    hidden: torch.Tensor = model.encoder(speech, lengths)[0]
    return hidden


def damp_context(model: Any) -> None:
    """Scale what each frame takes from other frames in every encoder layer by CONTEXT_SCALE."""
    from funasr.models.sense_voice.model import MultiHeadedAttentionSANM

    for module in model.encoder.modules():
        if isinstance(module, MultiHeadedAttentionSANM):
            module.linear_out.weight.mul_(CONTEXT_SCALE)
            module.linear_out.bias.mul_(CONTEXT_SCALE)
            module.fsmn_block.weight.mul_(CONTEXT_SCALE)


def set_prefix_tag_rows(model: Any) -> None:
    """Point each prefix tag's CTC row at its query frames' audio-free encoder output.

    Encoder outputs are layer-normalised, all of about one norm, so the logit is an affine
    function of the cosine to that output: TAG_LOGIT at cosine 1, 0 at TAG_COSINE, strongly
    negative for anything unrelated (text frames stay below cosine 0.7).
    """
    queries, tags = prefix_queries()
    hidden = encode(model, queries, torch.empty(1, 0, FEATURE_DIM))
    ctc_lo = model.ctc.ctc_lo
    for tag in {tag for row in tags for tag in row}:
        where = torch.tensor([[frame_tag == tag for frame_tag in row] for row in tags])
        target = hidden[where].mean(dim=0)
        norm = hidden[where].norm(dim=1).mean()
        gain = TAG_LOGIT / (1.0 - TAG_COSINE)
        ctc_lo.weight[TAG_IDS[tag]] = gain * target / (target.norm() * norm)
        ctc_lo.bias[TAG_IDS[tag]] = -gain * TAG_COSINE


def check_prefix_decoding(model: Any, seed: int) -> None:
    """Raise unless, on some synthetic features, the prefix decodes right and the text has none
    of its tags."""
    generator = torch.Generator().manual_seed(seed)
    queries, tags = prefix_queries()
    prefix_ids = torch.tensor([[TAG_IDS[tag] for tag in row] for row in tags])
    for feats in (
        torch.randn(1, 40, FEATURE_DIM, generator=generator),
        0.3 * torch.randn(1, 120, FEATURE_DIM, generator=generator),
        torch.full((1, 30, FEATURE_DIM), -2.0),
    ):
        decoded = model.ctc.ctc_lo(encode(model, queries, feats)).argmax(dim=-1)
        if not torch.equal(decoded[:, :4], prefix_ids):
            raise RuntimeError("the prefix does not decode to the requested tags")
        if torch.isin(decoded[:, 4:], prefix_ids).any():
            raise RuntimeError("a text frame decodes to a prefix tag")


@torch.no_grad()
def build_model(size: Size, seed: int) -> Any:
    """A randomly initialised SenseVoiceSmall wired to decode the requested tag prefix."""
    from funasr.models.sense_voice.model import SenseVoiceSmall

    config = model_config(size)
    torch.manual_seed(seed)
    model = SenseVoiceSmall(
        encoder=config["encoder"],
        encoder_conf=config["encoder_conf"],
        input_size=FEATURE_DIM,
        vocab_size=VOCAB_SIZE,
        **config["model_conf"],
    ).eval()
    model.embed.weight[AUTO_QUERY] = model.embed.weight[ENGLISH_QUERY]
    damp_context(model)
    set_prefix_tag_rows(model)
    check_prefix_decoding(model, seed)
    return model


def build_checkpoint(outdir: Path, size: Size, seed: int = 0) -> Path:
    """Write a loadable SenseVoiceSmall directory into outdir and return outdir.

    The same size and seed give the same files, model.pt byte for byte.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / BPE_MODEL_NAME).write_bytes(build_tokenizer())
    (outdir / "am.mvn").write_text(mvn_text(), encoding="utf-8")
    (outdir / "config.yaml").write_text(
        yaml.safe_dump(model_config(size), sort_keys=False), encoding="utf-8"
    )
    (outdir / "configuration.json").write_text(
        json.dumps(hub_configuration(), indent=2) + "\n", encoding="utf-8"
    )
    torch.save(build_model(size, seed).state_dict(), outdir / "model.pt")
    return outdir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["tiny", "full", "trained"], default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("outdir", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.size == "trained":
        from sensevoice_server.testing.trained_model import write_trained

        write_trained(args.outdir)
    else:
        build_checkpoint(args.outdir, args.size, args.seed)
    print(f"wrote {args.size} checkpoint to {args.outdir} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
