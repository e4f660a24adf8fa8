"""An FSMN VAD's input, chunk by chunk: what funasr's WavFrontendOnline gives it, without torch.

fsmn-vad's frontend (its config.yaml: WavFrontendOnline, hamming window, 80 mels, 25/10 ms
frames, LFR 5 frames every 1, am.mvn) turns each 60 s chunk of an upload into

    log-mel fbank frames (kaldi's, 16-bit scale; the samples left over after the last whole
      frame wait for the next chunk)
      -> LFR: frame i becomes frames i-2 .. i+2 side by side (the first frame repeated in
         front, the last at the very end), so a chunk's last 2 frames wait for the next one
      -> CMVN from am.mvn
      -> (frames, 400) float32

and, for each of those frames, the 25 ms of samples it was made from: the VAD's decibel
rule reads them. Over a whole upload these are the frames an offline frontend would make,
cut where funasr's chunks cut them; the cut matters to the VAD (it decides per chunk), so it
is kept. The fbank is kaldi-native-fbank's, with engine/features.py's options: the one
funasr itself runs when torchaudio is absent (funasr/utils/fbank.py), so the same numbers.

Gap filled: WavFrontendOnline is a torch module. tests/unit/test_fsmn_onnx.py holds these
features to it, chunk by chunk.
"""

from __future__ import annotations

from typing import Any

import kaldi_native_fbank as knf
import numpy as np

from sensevoice_server.engine.features import Cmvn, fbank_options
from sensevoice_server.errors import ModelLoadError

SAMPLE_RATE = 16_000
WAV_FRONTEND_ONLINE = {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25,
                       "frame_shift": 10, "lfr_m": 1, "lfr_n": 1, "dither": 1.0}  # fmt: skip
"""WavFrontendOnline's defaults (funasr/frontends/wav_frontend.py), under frontend_conf."""


class FsmnFrontend:
    """One upload's frontend state, fed its chunks in order."""

    def __init__(self, frontend_conf: dict[str, Any], cmvn: Cmvn | None) -> None:
        conf = {**WAV_FRONTEND_ONLINE, **frontend_conf}
        if conf["fs"] != SAMPLE_RATE or conf["lfr_n"] != 1 or float(conf["dither"]) != 0.0:
            raise ModelLoadError(
                f"an FSMN VAD frontend with fs {conf['fs']}, lfr_n {conf['lfr_n']}, dither "
                f"{conf['dither']}: only 16 kHz, lfr_n 1 and no dither run on onnxruntime"
            )
        self._options = fbank_options(float(conf["frame_length"]))
        self._options.frame_opts.frame_shift_ms = float(conf["frame_shift"])
        self._options.frame_opts.window_type = str(conf["window"])
        self._options.mel_opts.num_bins = int(conf["n_mels"])
        self.frame_samples = int(conf["frame_length"]) * SAMPLE_RATE // 1000
        self.shift_samples = int(conf["frame_shift"]) * SAMPLE_RATE // 1000
        self._lfr_m = int(conf["lfr_m"])
        self._left = (self._lfr_m - 1) // 2  # frames of left context (the first repeated)
        self._cmvn = cmvn
        self._leftover = np.zeros(0, np.float32)  # samples after the last whole frame
        self._pending: np.ndarray | None = None  # fbank frames not yet emitted, with context
        self._wave = np.zeros(0, np.float32)  # samples from the next frame to emit on

    def chunk(self, samples: np.ndarray, final: bool) -> tuple[np.ndarray, np.ndarray]:
        """(features (F, dim), waveform) for the frames this chunk completes; `waveform` is
        the (F - 1) * shift + frame_length samples those frames were made from."""
        samples = np.asarray(samples, dtype=np.float32)
        self._wave = np.concatenate([self._wave, samples])
        frames = self._fbank(np.concatenate([self._leftover, samples]))
        if self._pending is None and frames.shape[0]:
            self._pending = np.repeat(frames[:1], self._left, axis=0)
        if self._pending is None:  # no whole frame yet
            return np.zeros((0, 0), np.float32), np.zeros(0, np.float32)
        stream = np.concatenate([self._pending, frames])
        if final:  # the last frame repeated for the right context
            right = self._lfr_m - 1 - self._left
            count = stream.shape[0] - self._left
            stream = np.concatenate([stream, np.repeat(stream[-1:], right, axis=0)])
        else:
            count = max(stream.shape[0] - (self._lfr_m - 1), 0)
        stream = np.ascontiguousarray(stream)
        row = stream.strides[0]  # frames i .. i + lfr_m - 1 side by side: a view, no copy
        features = np.lib.stride_tricks.as_strided(
            stream,
            (count, self._lfr_m * stream.shape[1]),
            (row, stream.strides[1]),
            writeable=False,
        )
        self._pending = stream[count:].copy()
        if self._cmvn is not None:  # funasr: inputs += means; inputs *= vars, in float32
            features = (features + self._cmvn.shift) * self._cmvn.scale
        else:
            features = features.copy()
        span = (count - 1) * self.shift_samples + self.frame_samples if count else 0
        waveform = self._wave[:span]
        self._wave = self._wave[count * self.shift_samples :]
        return features.astype(np.float32, copy=False), waveform

    def _fbank(self, wave: np.ndarray) -> np.ndarray:
        """The whole frames of `wave` (kaldi's snip_edges framing); the rest waits."""
        if wave.size < self.frame_samples:
            self._leftover = wave
            return np.zeros((0, self._options.mel_opts.num_bins), np.float32)
        count = (wave.size - self.frame_samples) // self.shift_samples + 1
        self._leftover = wave[count * self.shift_samples :]
        computer = knf.OnlineFbank(self._options)
        computer.accept_waveform(SAMPLE_RATE, wave * np.float32(32768.0))
        computer.input_finished()
        return np.stack([computer.get_frame(i) for i in range(count)]).astype(np.float32)


def decibels(waveform: np.ndarray, frame_samples: int, shift_samples: int) -> list[float]:
    """Each frame's energy in dB, computed as funasr's ComputeDecibel computes it (the same
    numpy expression on the same float32 samples, so the same numbers)."""
    offsets = np.arange(0, waveform.shape[0] - frame_samples + 1, shift_samples)
    frames = waveform[offsets[:, np.newaxis] + np.arange(frame_samples)]
    values: list[float] = (10 * np.log10(np.sum(np.square(frames), axis=1) + 0.000001)).tolist()
    return values
