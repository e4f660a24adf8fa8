"""The model's input features, computed once for every backend: what funasr's WavFrontend
computes for SenseVoiceSmall, in numpy: kaldi's fbank (which funasr computes with
kaldi-native-fbank when torchaudio is absent) over every frame at once.

    16 kHz float32 samples in [-1, 1]
      -> x 32768 (WavFrontend's upsacle_samples)
      -> log-mel fbank: 80 bins, 25/10 ms hamming frames, no dither, snip_edges
      -> LFR: 7 frames stacked every 6 (first frame repeated 3x in front, last at the end)
      -> CMVN: (x + shift) * scale, from am.mvn (or the ONNX file's neg_mean/inv_stddev)
      -> (T, 560) float32

Gap filled: funasr's frontend is a torch module wired into AutoModel; the ONNX backend needs
the same numbers without torch, and both backends must see identical input.
tests/unit/test_features.py holds this equal to WavFrontend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import kaldi_native_fbank as knf
import numpy as np
from numpy.fft import rfft  # numpy imports its fft module lazily: here, at import

from sensevoice_server.pcm import SAMPLE_RATE

N_MELS = 80
LFR_M, LFR_N = 7, 6
WINDOW, SHIFT = 400, 160  # 25 and 10 ms at 16 kHz
FFT_SIZE = 512  # the window rounded up to a power of two
PREEMPHASIS = 0.97
FEATURE_DIM = N_MELS * LFR_M


@dataclass(frozen=True)
class Cmvn:
    """Per-dimension shift (the negated mean) and scale (1 / stddev), each (560,)."""

    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def from_am_mvn(cls, path: str | Path) -> Cmvn:
        """am.mvn is a Kaldi nnet text file: each row follows its <AddShift> or <Rescale>
        line as `<LearnRateCoef> 0 [ v1 ... vN ]`."""
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        rows: dict[str, np.ndarray] = {}
        for index, line in enumerate(lines[:-1]):
            head = line.split()[:1]
            if head and head[0] in ("<AddShift>", "<Rescale>"):
                rows[head[0]] = np.array(lines[index + 1].split()[3:-1], dtype=np.float32)
        if set(rows) != {"<AddShift>", "<Rescale>"}:
            raise ValueError(f"{path}: not a CMVN file (no <AddShift> and <Rescale> rows)")
        return cls(rows["<AddShift>"], rows["<Rescale>"])

    @classmethod
    def from_strings(cls, shift: str, scale: str) -> Cmvn:
        """From sherpa-onnx's metadata: comma-separated neg_mean and inv_stddev."""
        return cls(
            np.array(shift.split(","), dtype=np.float32),
            np.array(scale.split(","), dtype=np.float32),
        )


def fbank_options(frame_length_ms: float) -> knf.FbankOptions:
    """What funasr passes to kaldi's fbank in WavFrontend.forward; knf's own defaults differ
    (dither 3e-5, povey window), so every option that matters is set."""
    options = knf.FbankOptions()
    frame = options.frame_opts
    frame.samp_freq = float(SAMPLE_RATE)
    frame.frame_length_ms = frame_length_ms
    frame.frame_shift_ms = 10.0
    frame.dither = 0.0
    frame.snip_edges = True
    frame.window_type = "hamming"
    frame.preemph_coeff = PREEMPHASIS
    frame.remove_dc_offset = True
    frame.round_to_power_of_two = True
    options.mel_opts.num_bins = N_MELS
    options.mel_opts.low_freq = 20.0
    options.mel_opts.high_freq = 0.0
    options.energy_floor = 0.0
    options.raw_energy = True
    options.use_energy = False
    options.use_log_fbank = True
    options.use_power = True
    options.htk_compat = False
    return options


def fbank(samples: np.ndarray) -> np.ndarray:
    """(frames, 80) log-mel fbank of float32 samples in [-1, 1].

    kaldi's fbank with `fbank_options`, every frame at once: kaldi-native-fbank computes it
    frame by frame (12.6 ms per 10 s of audio here), this in 3 ms, the same numbers to float32
    rounding (docs/FACTS.md, "ONNX and onnxruntime"). Clips shorter than one 25 ms frame,
    which funasr frames with their own length, go to kaldi-native-fbank itself."""
    wave = np.asarray(samples, dtype=np.float32) * np.float32(32768.0)
    if wave.size < WINDOW:
        return fbank_by_frame(wave)
    count = 1 + (wave.size - WINDOW) // SHIFT
    frames = np.lib.stride_tricks.sliding_window_view(wave, WINDOW)[::SHIFT][:count]
    frames = frames - frames.mean(axis=1, keepdims=True)
    emphasised = np.empty_like(frames)  # pre-emphasis; the first sample against itself
    np.multiply(frames[:, :-1], -PREEMPHASIS, out=emphasised[:, 1:])
    emphasised[:, 1:] += frames[:, 1:]
    emphasised[:, 0] = frames[:, 0] * np.float32(1 - PREEMPHASIS)
    # float64 for the FFT: numpy's is 2.5x faster in it than in float32 (scipy's fast
    # float32 FFT would cost 0.15 s of import at every start)
    padded = np.zeros((count, FFT_SIZE))
    np.multiply(emphasised, hamming(), out=padded[:, :WINDOW])
    spectrum = rfft(padded, axis=1)
    power = np.square(np.abs(spectrum)).astype(np.float32)
    energies = power @ mel_banks()
    logs: np.ndarray = np.log(np.maximum(energies, np.finfo(np.float32).eps), dtype=np.float32)
    return logs


def fbank_by_frame(wave: np.ndarray) -> np.ndarray:
    """kaldi-native-fbank's fbank of `wave` (16-bit scale); funasr frames clips shorter than
    25 ms with their own length: one frame, not none."""
    frame_length_ms = min(25.0, wave.size / SAMPLE_RATE * 1000)
    computer = knf.OnlineFbank(fbank_options(frame_length_ms))
    computer.accept_waveform(SAMPLE_RATE, wave)
    computer.input_finished()
    frames = computer.num_frames_ready
    if frames == 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    return np.stack([computer.get_frame(i) for i in range(frames)]).astype(np.float32)


@cache
def hamming() -> np.ndarray:
    """kaldi's hamming window over one 25 ms frame."""
    n = np.arange(WINDOW)
    return (0.54 - 0.46 * np.cos(2 * np.pi * n / (WINDOW - 1))).astype(np.float32)


@cache
def mel_banks() -> np.ndarray:
    """(257, 80) kaldi's triangular mel filters over the power spectrum (20 Hz to Nyquist;
    the Nyquist bin has no weight, as in kaldi)."""

    def mel(hz: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)

    low, high = mel(20.0), mel(SAMPLE_RATE / 2)
    delta = (high - low) / (N_MELS + 1)
    bins = mel(SAMPLE_RATE / FFT_SIZE * np.arange(FFT_SIZE // 2))[:, None]
    left = low + delta * np.arange(N_MELS)[None, :]
    center, right = left + delta, left + 2 * delta
    rising, falling = (bins - left) / (center - left), (right - bins) / (right - center)
    weights = np.where(bins <= center, rising, falling)
    weights[(bins <= left) | (bins >= right)] = 0.0
    return np.vstack([weights, np.zeros((1, N_MELS))]).astype(np.float32)


def lfr(frames: np.ndarray, m: int = LFR_M, n: int = LFR_N) -> np.ndarray:
    """Low frame rate: output i stacks input frames 6i-3 .. 6i+3, clamped to the first and
    last frame; ceil(T / 6) outputs."""
    count = frames.shape[0]
    if count == 0:
        return np.zeros((0, m * frames.shape[1]), dtype=np.float32)
    outputs = math.ceil(count / n)
    left = (m - 1) // 2
    right = max(0, (outputs - 1) * n + m - (count + left))
    padded = np.concatenate(
        [np.repeat(frames[:1], left, 0), frames, np.repeat(frames[-1:], right, 0)]
    )
    index = np.arange(outputs)[:, None] * n + np.arange(m)[None, :]
    return padded[index].reshape(outputs, m * frames.shape[1])


def features(samples: np.ndarray, cmvn: Cmvn) -> np.ndarray:
    """(T, 560) float32 model input for one segment."""
    stacked = lfr(fbank(samples))
    normalised: np.ndarray = ((stacked + cmvn.shift) * cmvn.scale).astype(np.float32, copy=False)
    return normalised


def pad_batch(batch: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded with zeros, as funasr pads: (N, T_max, 560) and lengths (N,) int32."""
    lengths = np.array([item.shape[0] for item in batch], dtype=np.int32)
    padded = np.zeros((len(batch), int(lengths.max()), FEATURE_DIM), dtype=np.float32)
    for row, item in enumerate(batch):
        padded[row, : item.shape[0]] = item
    return padded, lengths
