"""A tiny FSMN VAD (funasr's fsmn-vad architecture, random weights) in a local directory,
so the default VAD's code path runs here without the model hub.

Its network says "speech" almost everywhere (random weights spread the silence class thin);
`decibel_thres` makes quiet frames silence, so speech with pauses between it comes out as
separate segments, and a long stretch of noise is cut at `max_single_segment_time`, as the
real model cuts it. Good for comparing two ways of running one model, not for accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml

LFR_DIM = 400  # 80 mel bins, 5 frames stacked (lfr_m), as fsmn-vad's frontend gives

CONFIG: dict[str, Any] = {
    "frontend": "WavFrontendOnline",
    "frontend_conf": {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25,
                      "frame_shift": 10, "dither": 0.0, "lfr_m": 5, "lfr_n": 1},
    "model": "FsmnVADStreaming",
    "model_conf": {
        "sample_rate": 16000, "detect_mode": 1, "snr_mode": 0, "max_end_silence_time": 800,
        "max_start_silence_time": 3000, "do_start_point_detection": True,
        "do_end_point_detection": True, "window_size_ms": 200, "sil_to_speech_time_thres": 150,
        "speech_to_sil_time_thres": 150, "speech_2_noise_ratio": 1.0, "do_extend": 1,
        "lookback_time_start_point": 200, "lookahead_time_end_point": 100,
        "max_single_segment_time": 60000, "snr_thres": -100.0,
        "noise_frame_num_used_for_snr": 100,
        "decibel_thres": -30.0,  # fsmn-vad's is -100: this network needs the help
        "speech_noise_thres": 0.6, "fe_prior_thres": 0.0001, "silence_pdf_num": 1,
        "sil_pdf_ids": [0], "speech_noise_thresh_low": -0.1, "speech_noise_thresh_high": 0.3,
        "output_frame_probs": False, "frame_in_ms": 10, "frame_length_ms": 25,
    },
    "encoder": "FSMN",
    "encoder_conf": {"input_dim": LFR_DIM, "input_affine_dim": 32, "fsmn_layers": 2,
                     "linear_dim": 32, "proj_dim": 16, "lorder": 20, "rorder": 0, "lstride": 1,
                     "rstride": 0, "output_affine_dim": 32, "output_dim": 248},
}  # fmt: skip
FULL_ENCODER: dict[str, Any] = {
    "input_dim": LFR_DIM, "input_affine_dim": 140, "fsmn_layers": 4, "linear_dim": 250,
    "proj_dim": 128, "lorder": 20, "rorder": 0, "lstride": 1, "rstride": 0,
    "output_affine_dim": 140, "output_dim": 248,
}  # fmt: skip
"""The hub's fsmn-vad network (about 0.4 M parameters): what the VAD costs in production."""


def mvn_text() -> str:
    """am.mvn (Kaldi nnet text): log-mel energies of speech sit around 10, spread about 3."""
    shift = " ".join(["-10.0"] * LFR_DIM)
    scale = " ".join(["0.333333"] * LFR_DIM)
    return (
        f"<Nnet>\n<Splice> {LFR_DIM} {LFR_DIM}\n[ 0 ]\n"
        f"<AddShift> {LFR_DIM} {LFR_DIM}\n<LearnRateCoef> 0 [ {shift} ]\n"
        f"<Rescale> {LFR_DIM} {LFR_DIM}\n<LearnRateCoef> 0 [ {scale} ]\n</Nnet>\n"
    )


def build_fsmn_vad(outdir: Path, seed: int = 0, *, full_size: bool = False) -> Path:
    """config.yaml, configuration.json, am.mvn and model.pt, as the hub's fsmn-vad has them;
    `full_size`: the hub model's network (FULL_ENCODER) instead of the tiny one."""
    from funasr.models.fsmn_vad_streaming.model import FsmnVADStreaming

    config = {**CONFIG, "encoder_conf": FULL_ENCODER} if full_size else CONFIG
    outdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = FsmnVADStreaming(
        encoder=config["encoder"], encoder_conf=config["encoder_conf"], **config["model_conf"]
    )
    torch.save(model.state_dict(), outdir / "model.pt")
    (outdir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (outdir / "am.mvn").write_text(mvn_text(), encoding="utf-8")
    configuration = {
        "framework": "pytorch", "task": "voice-activity-detection",
        "model": {"type": "funasr"}, "pipeline": {"type": "funasr-pipeline"},
        "file_path_metas": {"init_param": "model.pt", "config": "config.yaml",
                            "frontend_conf": {"cmvn_file": "am.mvn"}},
    }  # fmt: skip
    (outdir / "configuration.json").write_text(json.dumps(configuration), encoding="utf-8")
    return outdir
