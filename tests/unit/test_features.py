"""Both backends see the features funasr computes: engine/features.py equals WavFrontend.

The ONNX backend cannot use funasr's frontend (a torch module inside AutoModel), so
engine/features.py computes the same numbers with numpy. If they drift
apart (a new funasr, a new kaldi-native-fbank), the two backends stop giving the reference
transcript in ways that are hard to trace; this test names the cause.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sensevoice_server.engine.features import Cmvn, features
from tests.support.samples import load


def funasr_features(samples: np.ndarray, am_mvn: Path) -> np.ndarray:
    """What SenseVoiceSmall's WavFrontend gives, configured as the published config.yaml
    configures it (and without dither, as the service runs it)."""
    import torch
    from funasr.frontends.wav_frontend import WavFrontend

    frontend = WavFrontend(cmvn_file=str(am_mvn), fs=16000, window="hamming", n_mels=80,
                           frame_length=25, frame_shift=10, lfr_m=7, lfr_n=6,
                           dither=0.0)  # fmt: skip
    wave = torch.from_numpy(samples)[None, :]
    feats, lengths = frontend(wave, torch.tensor([samples.size]))
    return feats[0, : int(lengths[0])].numpy()


@pytest.mark.parametrize("clip", ["en.wav", "zh.wav", "silence.wav", "a 20 ms click"])
def test_features_equal_funasrs_wav_frontend(clip: str, tiny_model: Path) -> None:
    if clip == "a 20 ms click":  # shorter than one 25 ms frame: funasr frames it whole
        samples = np.zeros(320, dtype=np.float32)
        samples[100] = 0.5
    else:
        samples = load(clip)
    am_mvn = tiny_model / "am.mvn"
    ours = features(samples, Cmvn.from_am_mvn(am_mvn))
    theirs = funasr_features(samples, am_mvn)
    assert ours.shape == theirs.shape
    difference = np.abs(ours - theirs)
    # float32 rounding, in another order of summation: a wrong window, filter or frame moves
    # most values by far more than 1e-4; the log turns the rounding of a bin with next to
    # no energy (a near-silent frame's) into up to 1e-2
    assert np.quantile(difference, 0.999) < 1e-4
    assert difference.max() < 1e-2
