"""An upload's speech segments by an FSMN VAD (fsmn-vad) on onnxruntime: funasr's offline
FSMN VAD call, without torch.

funasr's `AutoModel(model=<fsmn-vad>).generate(input=samples)` cuts the audio into 60 s
chunks and, chunk after chunk, carries its state over in a `cache`: before each chunk its
"dynamic silence" schedule sets how much silence ends a segment (2 s while a segment is
young, down to 0.1 s after a minute of speech; funasr 1.4's default for offline calls), then
its frontend makes the chunk's frames (fsmn_features.py), the network scores them with its
layer memories carried over (the ONNX export of funasr's own streaming forward:
fsmn_export.py), and its state machine (fsmn_endpoints.py) turns scores and energies into
segments. This does the same, step for step, so the segments are the same; the chunks are
also where `check` is asked, so an hour of audio can stop part-way (a chunk is a few tens of
ms of work).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sensevoice_server.engine.features import Cmvn
from sensevoice_server.engine.fsmn_config import SCHEDULED_SPEECH_NOISE_THRES, FsmnConfig
from sensevoice_server.engine.fsmn_endpoints import Endpoints
from sensevoice_server.engine.fsmn_export import exported
from sensevoice_server.engine.fsmn_features import FsmnFrontend, decibels
from sensevoice_server.errors import ModelLoadError

SAMPLES_PER_MS = 16


class FsmnSegments:
    """Segments [start_ms, end_ms] as funasr's FSMN VAD finds them in one offline call."""

    def __init__(self, vad_dir: Path, max_single_segment_ms: int) -> None:
        # the server's override, passed as funasr's AutoModel(max_single_segment_time=...)
        self.config = FsmnConfig.read(vad_dir, max_single_segment_time=max_single_segment_ms)
        cmvn_file = self.config.cmvn_file
        self._cmvn = Cmvn.from_am_mvn(cmvn_file) if cmvn_file else None
        self._frontend()  # an unsupported frontend stops start-up, not the first upload
        self._session = _session(exported(vad_dir))
        self._memories = [i for i in self._session.get_inputs() if i.name.startswith("in_cache")]

    def __call__(self, samples: np.ndarray, check: Callable[[float], None]) -> list[list[int]]:
        """`check(percent done)` is called before each chunk; it raises to stop."""
        config, options = self.config, self.config.options
        step = config.chunk_ms * SAMPLES_PER_MS
        chunks = samples.size // step + 1  # funasr's count: the last one may be empty
        frontend = self._frontend()
        endpoints = Endpoints(options, config.speech_noise_thres)
        memories = [np.zeros(m.shape, np.float32) for m in self._memories]
        speech_ms, in_speech = 0, False  # the schedule's `_dynamic_accumulated_ms`, `_in_speech`
        found: list[list[int]] = []
        for index in range(chunks):
            check(100 * index / chunks)
            final = index == chunks - 1
            if config.dynamic_silence:
                if endpoints.in_speech or in_speech:
                    speech_ms, in_speech = speech_ms + config.chunk_ms, True
                for limit_ms, silence_ms in config.silence_schedule:
                    if speech_ms <= limit_ms:
                        end_ms = max(silence_ms - options.speech_to_sil_time_thres, 0)
                        endpoints.max_end_silence_ms = end_ms
                        endpoints.speech_noise_thres = SCHEDULED_SPEECH_NOISE_THRES
                        break
            features, waveform = frontend.chunk(samples[index * step : (index + 1) * step], final)
            if not features.shape[0]:
                continue  # funasr's forward returns at once on no frames
            silence, memories = self._scores(features, memories)
            energies = decibels(waveform, frontend.frame_samples, frontend.shift_samples)
            segments = endpoints.chunk(silence, energies, final)
            if segments:
                found.extend(segments)
                speech_ms, in_speech = 0, False
        return found

    def _frontend(self) -> FsmnFrontend:
        return FsmnFrontend(self.config.frontend, self._cmvn)

    def _scores(
        self, features: np.ndarray, memories: list[np.ndarray]
    ) -> tuple[list[float], list[np.ndarray]]:
        """Each frame's silence score (the sum over `sil_pdf_ids`, as funasr sums them: in
        Python floats, in order), and the layers' memories for the next chunk."""
        feeds = {"speech": features[None], **{m.name: v for m, v in zip(self._memories, memories,
                                                                       strict=True)}}  # fmt: skip
        logits, *memories = self._session.run(None, feeds)
        ids = list(self.config.options.sil_pdf_ids)
        if len(ids) == 1:
            scores: list[float] = logits[0, :, ids[0]].tolist()
        else:
            scores = [sum(row) for row in logits[0][:, ids].tolist()]
        return scores, memories


def _session(model_file: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # one thread, as torch was pinned for it: the network is small (0.4 M parameters)
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(
            str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own kinds for a bad file
        raise ModelLoadError(
            f"{model_file}: onnxruntime cannot load it ({error}); delete its directory (it is "
            "exported again at the next start)"
        ) from error
