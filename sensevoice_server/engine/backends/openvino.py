"""The OpenVINO backend: the same ONNX export as onnx.py, under Intel's OpenVINO runtime.

Why a second runtime for the same files: on a CPU with AMX, OpenVINO runs the fp32 export
in bf16 (no calibration, close to fp32) and the int8 export's QDQ graph with its
non-MatMul work fused, both faster than onnxruntime's int8 here (the README's speed
table). Which one a machine serves by default is measured on it (engine/backend_choice.py).

Precisions, each from a file of the export:
- fp32: model.onnx, computed in fp32;
- bf16: model.onnx, computed in bf16 (needs a CPU that OpenVINO says computes bf16: AMX or
  AVX512_BF16);
- int8: model.int8.onnx, its MatMuls in int8 and the rest at OpenVINO's default precision
  for the CPU (bf16 where the CPU has it, else fp32).

The compiled model is cached (OpenVINO's CACHE_DIR) under ~/.cache/sensevoice/openvino/,
one folder per export file (by content hash) and precision, so a later start imports it
instead of compiling again (the full model's bf16: 0.7 s instead of 4 s, measured) and a
re-made export can never be served from a stale compilation.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sensevoice_server.engine.backends import Item
from sensevoice_server.engine.backends.export_metadata import ExportMetadata, onnx_metadata
from sensevoice_server.engine.config import EngineSettings
from sensevoice_server.engine.fingerprint import identify
from sensevoice_server.errors import ModelLoadError, StartupError
from sensevoice_server.user_dirs import cache_dir

if TYPE_CHECKING:
    import openvino

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8")
INSTALL_HINT = "pip install 'sensevoice-server[openvino]' (or pip install openvino)"


def available() -> bool:
    """Whether OpenVINO is installed (an optional dependency)."""
    return importlib.util.find_spec("openvino") is not None


def core() -> openvino.Core:
    if not available():
        raise StartupError(f"--backend openvino needs OpenVINO: {INSTALL_HINT}")
    return imported().Core()


def imported() -> Any:
    """The openvino package, imported with its usage telemetry off.

    `import openvino` starts openvino-telemetry (a dependency of the wheel): unless the user
    has opted out, it forks a process to send an event to Google Analytics, from a server
    whose threads are running and which its user never asked to report anything. OpenVINO
    ships a stub for installs without that package; hiding the package from this process
    (a None entry in sys.modules makes its import fail) makes OpenVINO use the stub.
    """
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    import openvino

    return openvino


def computes_bf16(ov_core: openvino.Core | None = None) -> bool:
    """Whether OpenVINO computes bf16 on this CPU (it reports BF16 among the CPU's
    OPTIMIZATION_CAPABILITIES where AMX or AVX512_BF16 is present)."""
    capabilities = (ov_core or core()).get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "BF16" in capabilities


def compiled_cache(model_file: Path, precision: str) -> Path:
    """The CACHE_DIR of `model_file` compiled for `precision`."""
    return cache_dir() / "openvino" / f"{identify(str(model_file))[:16]}-{precision}"


class OpenVinoBackend:
    name = "openvino"
    device = "cpu"

    def __init__(self, model_file: Path, precision: str, ncpu: int, calls: int = 1) -> None:
        """`ncpu` threads in all, shared by `calls` streams: the engine's model threads
        each call with an infer request of their own (a request runs one call at a time)."""
        if precision not in PRECISIONS:
            raise StartupError(f"--backend openvino runs {', '.join(PRECISIONS)}, not {precision}")
        ov_core = core()
        if precision == "bf16" and not computes_bf16(ov_core):
            raise StartupError(
                "--precision bf16: OpenVINO does not compute bf16 on this CPU (it needs AMX "
                "or AVX512_BF16); use --precision int8 or fp32"
            )
        started = time.perf_counter()
        config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": ncpu,
            "NUM_STREAMS": calls,
            "PERFORMANCE_HINT": "LATENCY",
            # not pinned: the VAD thread and the event loop share these cores
            "ENABLE_CPU_PINNING": False,
            "CACHE_DIR": str(compiled_cache(model_file, precision)),
        }
        if precision != "int8":  # int8: the rest of the graph at OpenVINO's default
            config["INFERENCE_PRECISION_HINT"] = "f32" if precision == "fp32" else "bf16"
        try:
            self._compiled = ov_core.compile_model(str(model_file), "CPU", config)
        except Exception as error:  # OpenVINO raises RuntimeError subclasses of its own
            raise ModelLoadError(
                f"{model_file}: OpenVINO cannot load it ({error}); delete the file (it is "
                "exported again at the next start) or point --onnx-dir at a good export."
            ) from error
        self.export = ExportMetadata.of(model_file, onnx_metadata(model_file))
        self.model_file = model_file
        self.precision = precision
        self.batch_independent = self.export.batch_independent(precision)
        self.cmvn, self.vocabulary = self.export.cmvn, self.export.vocabulary
        self.computes_in = self._compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self.from_cache = bool(self._compiled.get_property("LOADED_FROM_CACHE"))
        self._requests = threading.local()
        log.info("OpenVINO %s: %s computed in %s, %s in %.1f s", precision, model_file.name,
                 self.computes_in, "imported from its cache" if self.from_cache
                 else "compiled (cached for the next start)",
                 time.perf_counter() - started)  # fmt: skip

    @classmethod
    def for_settings(cls, settings: EngineSettings, precision: str) -> OpenVinoBackend:
        from sensevoice_server.engine.backends.onnx import export_file

        calls = settings.calls_at_once(cls.name)
        return cls(export_file(settings, precision), precision, settings.ncpu, calls)

    def logits(self, items: list[Item]) -> list[np.ndarray]:
        feeds, lengths = self.export.feeds(items)
        request = getattr(self._requests, "request", None)
        if request is None:  # this thread's first call
            request = self._requests.request = self._compiled.create_infer_request()
        out: Any = request.infer(feeds)[0]  # a copy: the request reuses its tensors
        return [out[row, : length + 4] for row, length in enumerate(lengths)]

    def identity(self) -> dict[str, str]:
        import openvino

        return {"backend": "openvino", "precision": self.precision,
                "export": identify(str(self.model_file)), "openvino": openvino.get_version(),
                "computes_in": self.computes_in}  # fmt: skip
