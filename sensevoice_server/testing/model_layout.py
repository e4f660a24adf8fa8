"""funasr's on-disk layout of a SenseVoiceSmall directory, shared by the random checkpoints
(checkpoint.py) and the trained test model (trained_model.py, train.py).

The names, sizes and ids here are the ones funasr's loader and SenseVoiceSmall hard-code, so
a directory written with them loads through `funasr.AutoModel(model=DIR)` like the published
model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

Size = Literal["tiny", "full", "trained"]

BPE_MODEL_NAME = "chn_jpn_yue_eng_ko_spectok.bpe.model"
VOCAB_SIZE = 25055
FEATURE_DIM = 80 * 7  # n_mels * lfr_m

TAG_IDS: dict[str, int] = {
    # languages: ids hard-coded in funasr's SenseVoiceSmall.lid_int_dict
    "<|zh|>": 24884,
    "<|en|>": 24885,
    "<|yue|>": 24888,
    "<|ja|>": 24892,
    "<|ko|>": 24896,
    "<|nospeech|>": 24992,
    # audio events (free choice, between <|nospeech|> and the emotions)
    "<|Speech|>": 24993,
    "<|BGM|>": 24994,
    "<|Applause|>": 24995,
    "<|Laughter|>": 24996,
    "<|Cry|>": 24997,
    "<|Sneeze|>": 24998,
    "<|Breath|>": 24999,
    "<|Cough|>": 25000,
    # emotions: HAPPY, SAD, ANGRY, NEUTRAL hard-coded in SenseVoiceSmall.emo_dict
    "<|HAPPY|>": 25001,
    "<|SAD|>": 25002,
    "<|ANGRY|>": 25003,
    "<|NEUTRAL|>": 25004,
    "<|FEARFUL|>": 25005,
    "<|DISGUSTED|>": 25006,
    "<|SURPRISED|>": 25007,
    "<|EMO_UNKNOWN|>": 25009,  # hard-coded (ban_emo_unk)
    # other tags rich_transcription_postprocess knows (free choice)
    "<|Sing|>": 25010,
    "<|Speech_Noise|>": 25011,
    "<|GBG|>": 25012,
    "<|Event_UNK|>": 25013,
    # text normalisation: hard-coded in SenseVoiceSmall.textnorm_int_dict
    "<|withitn|>": 25016,
    "<|woitn|>": 25017,
}

ENCODER_SIZES: dict[Size, dict[str, int]] = {
    "full": {
        "output_size": 512,
        "attention_heads": 4,
        "linear_units": 2048,
        "num_blocks": 50,
        "tp_blocks": 20,
    },
    "tiny": {
        "output_size": 64,
        "attention_heads": 2,
        "linear_units": 128,
        "num_blocks": 2,
        "tp_blocks": 1,
    },
    # the trained test model (testing/train.py): small enough to train on 2 cores in minutes
    "trained": {
        "output_size": 256,
        "attention_heads": 4,
        "linear_units": 1024,
        "num_blocks": 6,
        "tp_blocks": 2,
    },
}

FRONTEND_CONF: dict[str, object] = {
    "fs": 16000,
    "window": "hamming",
    "n_mels": 80,
    "frame_length": 25,
    "frame_shift": 10,
    "lfr_m": 7,
    "lfr_n": 6,
    "dither": 0.0,
    "cmvn_file": None,  # funasr fills in am.mvn from configuration.json
}
MVN_MEAN = 11.0  # about the log-mel mean of speech at a normal level (samples scaled by 2**15)
MVN_STD = 4.0


def mvn_text(mean: Sequence[float] | None = None, scale: Sequence[float] | None = None) -> str:
    """am.mvn in Kaldi nnet text format: add -mean, then multiply by 1/std, per LFR dim
    (by default one speech-like level for every dim)."""
    means = mean if mean is not None else [MVN_MEAN] * FEATURE_DIM
    scales = scale if scale is not None else [1.0 / MVN_STD] * FEATURE_DIM
    shift = " ".join(f"{-m:.6f}" for m in means)
    scale_text = " ".join(f"{s:.6f}" for s in scales)
    return (
        "<Nnet>\n"
        f"<Splice> {FEATURE_DIM} {FEATURE_DIM}\n"
        "[ 0 ]\n"
        f"<AddShift> {FEATURE_DIM} {FEATURE_DIM}\n"
        f"<LearnRateCoef> 0 [ {shift} ]\n"
        f"<Rescale> {FEATURE_DIM} {FEATURE_DIM}\n"
        f"<LearnRateCoef> 0 [ {scale_text} ]\n"
        "</Nnet>\n"
    )


def model_config(size: Size) -> dict[str, Any]:
    """config.yaml's content, the real one's but for the encoder size and dither."""
    return {
        "encoder": "SenseVoiceEncoderSmall",
        "encoder_conf": {
            **ENCODER_SIZES[size],
            "dropout_rate": 0.1,
            "positional_dropout_rate": 0.1,
            "attention_dropout_rate": 0.1,
            "input_layer": "pe",
            "pos_enc_class": "SinusoidalPositionEncoder",
            "normalize_before": True,
            "kernel_size": 11,
            "sanm_shfit": 0,
            "selfattention_layer_type": "sanm",
        },
        "model": "SenseVoiceSmall",
        "model_conf": {"length_normalized_loss": True, "sos": 1, "eos": 2, "ignore_id": -1},
        "tokenizer": "SentencepiecesTokenizer",
        "tokenizer_conf": {"bpemodel": None, "unk_symbol": "<unk>", "split_with_space": True},
        "frontend": "WavFrontend",
        "frontend_conf": FRONTEND_CONF,
    }


def hub_configuration() -> dict[str, object]:
    """configuration.json's content: which files the config's empty paths refer to."""
    return {
        "framework": "pytorch",
        "task": "auto-speech-recognition",
        "model": {"type": "funasr"},
        "pipeline": {"type": "funasr-pipeline"},
        "model_name_in_hub": {"ms": "", "hf": ""},
        "file_path_metas": {
            "init_param": "model.pt",
            "config": "config.yaml",
            "tokenizer_conf": {"bpemodel": BPE_MODEL_NAME},
            "frontend_conf": {"cmvn_file": "am.mvn"},
        },
    }
