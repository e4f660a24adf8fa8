"""silero VAD on onnxruntime, without torch: the same probabilities as the TorchScript model
the service ran before, VADIterator's start/end rule, and the live streams' events unchanged
however a stream is chunked (the upload VAD's segments are held to funasr's in test_vad.py).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from sensevoice_server.engine.silero_onnx import WINDOW, SileroState
from sensevoice_server.live.hysteresis import Hysteresis
from sensevoice_server.live.vad import OnlineVad
from tests.support.samples import SPEECH_SAMPLES, load

SILENCE = np.zeros(16_000, np.float32)


def stream_audio() -> np.ndarray:
    """Every speech sample with a second of silence after it, and some noise: starts and
    ends of every kind, about 30 s."""
    parts = [np.concatenate([load(name), SILENCE]) for name in SPEECH_SAMPLES]
    audio = np.concatenate(parts)
    noise = np.random.default_rng(2).normal(0, 0.01, audio.size).astype(np.float32)
    return np.concatenate([audio, audio + noise])


def torchscript_events(audio: np.ndarray, threshold: float, end_silence_ms: int) -> list:
    """What the live VAD gave before: silero's TorchScript model and its VADIterator, one
    window at a time."""
    import torch
    from silero_vad import VADIterator, load_silero_vad

    iterator = VADIterator(load_silero_vad(), threshold=threshold, sampling_rate=16_000,
                           min_silence_duration_ms=end_silence_ms, speech_pad_ms=30)  # fmt: skip
    events = []
    for offset in range(0, audio.size - audio.size % WINDOW, WINDOW):
        found = iterator(torch.from_numpy(audio[offset : offset + WINDOW].copy()))
        events.extend(found.items() if found else [])
    return events


def test_the_onnx_model_gives_the_torchscript_models_probabilities() -> None:
    """The ONNX file is silero's own export of the model the service ran in torch; and a
    stream's probabilities do not depend on how its windows are grouped into calls."""
    import torch
    from silero_vad import load_silero_vad

    audio = stream_audio()[: 40 * 16_000]
    audio = audio[: audio.size - audio.size % WINDOW]
    torchscript = load_silero_vad()
    expected = np.array([
        torchscript(torch.from_numpy(audio[i : i + WINDOW].copy()), 16_000).item()
        for i in range(0, audio.size, WINDOW)
    ])  # fmt: skip
    whole = SileroState().probabilities(audio)
    assert np.abs(whole - expected).max() < 1e-4
    state = SileroState()
    in_pieces = [
        state.probabilities(audio[i : i + 7 * WINDOW]) for i in range(0, audio.size, 7 * WINDOW)
    ]
    assert np.array_equal(np.concatenate(in_pieces), whole)


def test_silero_runs_its_convolutions_in_2d_with_the_shipped_files_probabilities() -> None:
    """The served file is silero's with each 1-D Conv as a 2-D one (onnxruntime's fast
    path, silero_2d.py), made once and kept; it answers what the shipped file answers."""
    import onnx
    import onnxruntime

    from sensevoice_server.engine.silero_onnx import CONTEXT, STATE_SHAPE, model_path, session

    served = onnx.load(session()._model_path, load_external_data=False).graph
    kernels = [next(a.ints for a in node.attribute if a.name == "kernel_shape")
               for node in served.node if node.op_type == "Conv"]  # fmt: skip
    assert len(kernels) == 6 and all(len(kernel) == 2 and kernel[0] == 1 for kernel in kernels)
    windows = stream_audio()[: 300 * WINDOW].reshape(-1, WINDOW)
    contexts = np.concatenate([np.zeros((1, CONTEXT), np.float32), windows[:-1, -CONTEXT:]])
    block = np.concatenate([contexts, windows], axis=1)
    state = np.zeros(STATE_SHAPE, np.float32)
    feeds = {"input": block, "h": state, "c": state}
    shipped = onnxruntime.InferenceSession(str(model_path()), providers=["CPUExecutionProvider"])
    expected = shipped.run(["speech_probs"], feeds)[0]
    # another order of summation: 9e-6 at most on this speech (the TorchScript model: 1e-4)
    assert np.abs(session().run(["speech_probs"], feeds)[0] - expected).max() < 5e-5


class ScriptedModel:
    """A stand-in for silero's model that VADIterator can drive: it answers the next of the
    given probabilities, so VADIterator and Hysteresis see exactly the same ones."""

    def __init__(self, probabilities: list[float]) -> None:
        self.probabilities = iter(probabilities)

    def reset_states(self) -> None:
        pass

    def __call__(self, _x: Any, _sr: int) -> Any:
        import torch

        return torch.tensor(next(self.probabilities))


@pytest.mark.parametrize(("threshold", "min_silence_ms", "pad_ms"), [(0.5, 500, 30), (0.3, 100, 0),
                                                                    (0.8, 1000, 200)])  # fmt: skip
def test_hysteresis_is_vaditerators_rule_on_the_same_probabilities(
    threshold: float, min_silence_ms: int, pad_ms: int
) -> None:
    """Runs of speech, silence and values near both thresholds (threshold, threshold - 0.15),
    some exactly on them: every start and end where VADIterator puts it."""
    import torch
    from silero_vad import VADIterator

    rng = np.random.default_rng(3)
    speech = [threshold, threshold + 0.01, 0.99, threshold - 0.05]
    quiet = [0.0, 0.1, threshold - 0.15, threshold - 0.151, threshold - 0.05]
    probabilities = np.array([  # float32, as the models give them (and VADIterator's .item())
        rng.choice(speech if run % 2 else quiet)
        for run in range(80)
        for _ in range(rng.integers(1, 60))  # runs of up to 1.9 s
    ], np.float32).tolist()  # fmt: skip
    iterator = VADIterator(
        ScriptedModel(probabilities), threshold=threshold, sampling_rate=16_000,
        min_silence_duration_ms=min_silence_ms, speech_pad_ms=pad_ms,
    )  # fmt: skip
    window = torch.zeros(WINDOW)
    expected = [
        event for _ in probabilities if (found := iterator(window)) for event in found.items()
    ]
    hysteresis = Hysteresis(threshold, min_silence_ms, pad_ms)
    found = [event for p in probabilities if (event := hysteresis.step(p)) is not None]
    assert len(expected) >= 10
    assert found == expected


@pytest.mark.parametrize("chunk", [1600, WINDOW, 333, 4000, 10**7])
def test_the_live_vad_gives_todays_events_however_the_stream_is_chunked(chunk: int) -> None:
    """The live VAD's starts and ends, on onnxruntime, are those the TorchScript model and
    VADIterator gave, whether the client sends 100 ms chunks, single windows, odd sizes or
    everything at once."""
    audio = stream_audio()
    expected = torchscript_events(audio, threshold=0.5, end_silence_ms=500)
    vad = OnlineVad(threshold=0.5, end_silence_ms=500)
    events = []
    for offset in range(0, audio.size, chunk):
        events += vad(audio[offset : offset + chunk])
    assert len(expected) >= 10
    assert events == expected


def test_streams_in_parallel_threads_share_one_session_and_keep_their_own_state() -> None:
    """Every live stream (and the upload VAD) runs on one onnxruntime session at once, from
    its own thread: each must get the events it gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    audio = stream_audio()
    clips = [audio, audio[::-1].copy(), audio[16_000 * 7 :], audio * 0.3]

    def events(clip: np.ndarray) -> list[tuple[str, int]]:
        vad = OnlineVad(threshold=0.5, end_silence_ms=300)
        return [
            e for offset in range(0, clip.size, 1600) for e in vad(clip[offset : offset + 1600])
        ]

    alone = [events(clip) for clip in clips]
    with ThreadPoolExecutor(len(clips)) as pool:
        together = list(pool.map(events, clips * 2))
    assert together == alone * 2
    assert len({len(found) for found in alone}) > 1  # different streams, different events


def test_the_silero_paths_import_neither_torch_nor_funasr() -> None:
    """The reason for all this: a CPU server on onnxruntime need not load torch and funasr
    (about 540 MB resident) for its VAD. A fresh process runs both silero paths."""
    script = """
import sys
import numpy as np
from sensevoice_server.engine.vad import VadStage
from sensevoice_server.live.vad import OnlineVad
from tests.support.samples import load
audio = load("en.wav")
stage = VadStage("silero-vad", max_single_segment_ms=30_000, merge_length_s=15, device="cpu")
assert stage.segments(audio), "no speech found"
assert OnlineVad(0.5, 500)(audio), "no live events"
print(sorted(name for name in ("torch", "funasr", "silero_vad") if name in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
