"""The models and the one path to them: the only code that imports funasr (and torch).

- `engine.py`: the Engine, its two threads (VAD, model) and its bounded queue;
- `jobs.py`: jobs, their segments and results; `batcher.py`: one batcher for every request;
- `vad.py`: the VAD stage (funasr's VAD model, funasr's merge);
- `features.py`: fbank + LFR + CMVN for every backend; `tokens.py`: greedy CTC decoding;
- `backends/`: torch (funasr's modules) and onnx (onnxruntime), logits only;
- `loading.py`: which backend a process runs; `export.py`: ONNX export;
- `fingerprint.py`: what identifies a model, for the cache and the exports.
"""

from sensevoice_server.engine.engine import Engine
from sensevoice_server.engine.jobs import DecodedSegment, EngineResult, Priority, Progress

__all__ = ["DecodedSegment", "Engine", "EngineResult", "Priority", "Progress"]
