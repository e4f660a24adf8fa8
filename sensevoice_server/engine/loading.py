"""Which backend and precision a process runs, and loading it (exporting first if need be).

`auto` picks torch on CUDA (fp16: the GPU's fast path, where batching pays) and ONNX on a
CPU (onnxruntime: faster per core than torch's eager mode, and a fraction of its memory;
the README's speed table has the numbers).
"""

from __future__ import annotations

from sensevoice_server.engine.backends import Backend
from sensevoice_server.engine.config import EngineSettings
from sensevoice_server.errors import StartupError

CPU_PRECISION = "int8"  # static int8: 2.2x torch on this project's 2-core CPU (README)


def choose_backend(settings: EngineSettings) -> tuple[str, str]:
    """(backend, precision) for `auto` settings on their device, or as set."""
    cuda = settings.device.startswith("cuda")
    backend = settings.backend
    if backend == "auto":
        backend = "torch" if cuda else "onnx"
    precision: str = settings.precision
    if precision == "auto":
        precision = ("fp16" if cuda else "fp32") if backend == "torch" else CPU_PRECISION
    if precision == "fp16" and not cuda:
        raise StartupError("--precision fp16 needs a CUDA device (--device cuda:N)")
    return backend, precision


def load_backend(settings: EngineSettings, backend: str, precision: str) -> Backend:
    if backend == "torch":
        from sensevoice_server.engine.backends.torch import TorchBackend

        return TorchBackend(settings.model, settings.device, settings.ncpu, precision)
    from sensevoice_server.engine.backends.onnx import OnnxBackend
    from sensevoice_server.engine.int8_check import checked

    loaded = OnnxBackend.for_settings(settings, precision)
    return checked(loaded, settings) if precision == "int8" else loaded
