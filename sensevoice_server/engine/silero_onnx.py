"""silero VAD's own ONNX model on onnxruntime: a speech probability per 32 ms window, no torch.

The silero-vad wheel ships its model as TorchScript (what funasr's adapter and the live VAD
ran before) and as ONNX files. `silero_vad_16k_sequence.onnx` is silero's "sequence" export
(its sequence_vad.py): the same network, whose probabilities are within 7e-6 of the
TorchScript model's (tests/unit/test_silero_onnx.py), run over a block of windows in one
call, with the LSTM's state (h, c) as an explicit input and output. Hence:

- one InferenceSession serves the file VAD and every live stream, each keeping its own
  state in a `SileroState`: onnxruntime's `InferenceSession.run` may be called concurrently
  from many threads on one session (its documented guarantee, restated in
  microsoft/onnxruntime#19301: "InferenceSession::Run() is guaranteed to be thread-safe");
- a block of windows costs one call, not one per window (the per-call overhead and the
  Python loop are what a 32 ms window mostly costs);
- the probabilities do not depend on how the audio is split into blocks (tested);
- its 1-D convolutions run as 2-D ones, 1.6x faster (silero_2d.py).

Gap filled: silero's own `SileroVADSequence` does this in numpy and onnxruntime, but
importing it imports the silero_vad package, whose `__init__` imports torch.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from sensevoice_server.engine.silero_2d import served_file
from sensevoice_server.errors import ModelLoadError

WINDOW = 512  # samples: silero's window at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window the model sees before each window
STATE_SHAPE = (1, 1, 128)  # the LSTM's h and c
MODEL_FILE = "silero_vad_16k_sequence.onnx"
_loading = threading.Lock()  # streams open in parallel: the session is made once


@functools.cache
def model_path() -> Path:
    """The ONNX file in the installed silero-vad wheel, found without importing silero_vad."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("--vad-model silero-vad: the silero-vad package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / MODEL_FILE
    if not path.is_file():
        raise ModelLoadError(
            f"--vad-model silero-vad: {path} is missing; this silero-vad version does not "
            f"ship {MODEL_FILE} (silero-vad 6.2 does)"
        )
    return path


def session() -> Any:
    """The one session every user shares (see the module docstring: Run is thread-safe)."""
    with _loading:
        return _session()


@functools.cache
def _session() -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # one thread per call, as torch was pinned for it: silero's blocks are tiny, and two
    # threads took twice the CPU for the same wall time (1.9 vs 3.6 ms per audio second)
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(
        str(served_file(model_path())), sess_options=options, providers=["CPUExecutionProvider"]
    )


class SileroState:
    """One audio's place in the model: the LSTM's state and the last window's tail.

    Used by one thread at a time (a stream's, or the VAD thread); the session is shared.
    """

    def __init__(self) -> None:
        self._hidden = np.zeros(STATE_SHAPE, np.float32)
        self._cell = np.zeros(STATE_SHAPE, np.float32)
        self._context = np.zeros(CONTEXT, np.float32)

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """The speech probability of each 512-sample window of `windows` (16 kHz float32,
        a whole number of windows), in order; the state carries on to the next call."""
        frames = np.ascontiguousarray(windows, dtype=np.float32).reshape(-1, WINDOW)
        if not frames.shape[0]:
            return np.zeros(0, np.float32)
        contexts = np.concatenate((self._context[None], frames[:-1, -CONTEXT:]))
        block = np.concatenate((contexts, frames), axis=1)
        probabilities, self._hidden, self._cell = session().run(
            ["speech_probs", "hn", "cn"], {"input": block, "h": self._hidden, "c": self._cell}
        )
        self._context = frames[-1, -CONTEXT:].copy()
        return np.asarray(probabilities, np.float32).reshape(-1)
