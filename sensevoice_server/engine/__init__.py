"""The models and the one path to them: loaded once, each touched by one thread.

Where the service runs funasr's models. Outside engine/, funasr is imported only by testing/
(checkpoints, the reference pipeline); its tag renderer and a few VAD functions are loaded
from their files alone (library_source.py). torch is imported by what runs in it: the torch
backend, CAM++ and funasr's other VAD models, and the exports (each in a child process,
cli_subprocess.py); gpu.py asks for it only when the CUDA driver reports a device. silero
VAD and an FSMN VAD (fsmn-vad) run on onnxruntime.

- `engine.py`: the Engine, the front callers submit jobs to: its bounded queue, life cycle;
- `config.py`: `EngineSettings`, the slice of the service's settings the engine reads;
- `workers.py`: its threads, "sensevoice-vad" and "sensevoice-engine" (two of those where
  the backend takes concurrent calls), and what they load (docs/ARCHITECTURE.md, invariants
  1 and 2);
- `jobs.py`: jobs, their segments and results; `batcher.py`: one batcher for every request;
- `segmenter.py`: what the VAD thread does with a job: `vad.py` (the VAD stage: funasr's VAD
  model, or silero / an FSMN VAD on onnxruntime via `silero_segments.py` / `fsmn_segments.py`;
  funasr's merge), then `speakers.py` (CAM++ labels, when on), with `auxiliary.py` loading
  those helper models;
- `decoder.py`: what the model thread does with a batch: `features.py` (fbank + LFR + CMVN,
  for every backend), the backend's logits, `tokens.py` (greedy CTC decoding) or, when a
  request gives keywords, `beam_search.py` with `keyword_graph.py` (the boost), and
  `alignment.py` (word times, when asked); `language_set.py` decodes again a segment whose
  detected language a request's `languages` leaves out;
- `backends/`: torch (funasr's modules) and onnx (onnxruntime), logits only;
- `loading.py`: which backend and precision a process runs; `export.py`: the ONNX export
  (`export_attention.py`, `int8_graph.py`: what makes its graph lean), `int8_check.py`: int8
  against fp32, once per export;
- `fingerprint.py`: what identifies a model, for the cache keys and the exports.
"""

from sensevoice_server.engine.config import EngineSettings
from sensevoice_server.engine.engine import Engine
from sensevoice_server.engine.jobs import DecodedSegment, EngineResult, Priority, SegmentProgress

__all__ = [
    "DecodedSegment",
    "Engine",
    "EngineResult",
    "EngineSettings",
    "Priority",
    "SegmentProgress",
]
