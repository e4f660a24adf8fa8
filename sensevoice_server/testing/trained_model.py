"""The trained test model: what `checkpoint.py --size trained` lays out, and how it is scored.

The committed files (`testing/trained/`: half-precision weights with the CTC layer cut to the
rows the corpus uses, the tokenizer, am.mvn and card.json) are made by `testing/train.py`.
`write_trained(DIR)` turns them into a directory `funasr.AutoModel(model=DIR)` loads like the
published SenseVoiceSmall: the full 25,055-row output layer, fp32, config.yaml and
configuration.json. Rows the corpus never used get weight 0 and bias -100: never emitted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml

from sensevoice_server.edit_distance import edit_distance
from sensevoice_server.testing import espeak_corpus
from sensevoice_server.testing.model_layout import (
    BPE_MODEL_NAME,
    ENCODER_SIZES,
    FEATURE_DIM,
    VOCAB_SIZE,
    hub_configuration,
    model_config,
)

TRAINED_DIR = Path(__file__).resolve().parent / "trained"
WEIGHTS_NAME = "weights.pt"
TRAINED_ENCODER = ENCODER_SIZES["trained"]
UNUSED_BIAS = -100.0


def new_model() -> Any:
    """An untrained SenseVoiceSmall of the trained model's size (funasr's own class)."""
    from funasr.models.sense_voice.model import SenseVoiceSmall

    config = model_config("trained")
    return SenseVoiceSmall(
        encoder=config["encoder"],
        encoder_conf=config["encoder_conf"],
        input_size=FEATURE_DIM,
        vocab_size=VOCAB_SIZE,
        **config["model_conf"],
    )


def full_state_dict(source: Path = TRAINED_DIR) -> dict[str, torch.Tensor]:
    """The committed weights in fp32, with the output layer grown back to every row."""
    state: dict[str, torch.Tensor] = torch.load(source / WEIGHTS_NAME, weights_only=True)
    rows = state.pop("ctc_rows")
    weight, bias = state.pop("ctc.ctc_lo.weight"), state.pop("ctc.ctc_lo.bias")
    full = {key: value.float() for key, value in state.items()}
    full["ctc.ctc_lo.weight"] = torch.zeros(VOCAB_SIZE, weight.size(1))
    full["ctc.ctc_lo.weight"][rows] = weight.float()
    full["ctc.ctc_lo.bias"] = torch.full((VOCAB_SIZE,), UNUSED_BIAS)
    full["ctc.ctc_lo.bias"][rows] = bias.float()
    return full


def write_trained(outdir: Path, source: Path = TRAINED_DIR) -> Path:
    """Lay the trained model out in funasr's directory format (and its card) in `outdir`."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for name in (BPE_MODEL_NAME, "am.mvn", "card.json"):
        shutil.copyfile(source / name, outdir / name)
    (outdir / "config.yaml").write_text(
        yaml.safe_dump(model_config("trained"), sort_keys=False), encoding="utf-8"
    )
    (outdir / "configuration.json").write_text(
        json.dumps(hub_configuration(), indent=2) + "\n", encoding="utf-8"
    )
    torch.save(full_state_dict(source), outdir / "model.pt")
    return outdir


def card(source: Path = TRAINED_DIR) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((source / "card.json").read_text(encoding="utf-8"))
    return loaded


def unseen(count: int, seed: int, source: Path = TRAINED_DIR) -> list[espeak_corpus.Utterance]:
    """`count` clips the committed model never heard: sentences that are not among its
    training sentences (rebuilt from the card's seed and count), spoken by the held-out voices
    at the held-out speeds. Seed 1 gives the card's own held-out set (train.py uses seed+1)."""
    training = card(source)["training"]
    sentences = espeak_corpus.utterances(training["clips"], training["seed"], held_out=False,
                                  languages=espeak_corpus.TRAINING_LANGUAGES)  # fmt: skip
    return espeak_corpus.utterances(count, seed, held_out=True, avoid=[u.words for u in sentences])


PUNCTUATION = ".,!?;:。，！？、；："


def error_rate(language: str, reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference length): words for English (WER), characters for Mandarin (CER),
    case and punctuation ignored, as WER and CER are usually scored."""

    def units(text: str) -> list[str]:
        cleaned = "".join(" " if c in PUNCTUATION else c for c in text.lower())
        return cleaned.split() if language != "zh" else [c for c in cleaned if not c.isspace()]

    ref, hyp = units(reference), units(hypothesis)
    return edit_distance(ref, hyp), len(ref)
