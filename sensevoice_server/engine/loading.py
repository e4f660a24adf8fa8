"""Which backend and precision a process runs, and loading it (exporting first if need be).

`auto` picks torch on CUDA (fp16: the GPU's fast path, where batching pays) and on a CPU
onnxruntime's static int8 (faster per core than torch's eager mode, and a fraction of its
memory; the README's speed table has the numbers), unless OpenVINO is installed: then the
CPU runtimes are timed once on this machine and the fastest that agrees with fp32 is
served (engine/backend_choice.py), onnxruntime wherever it wins.
"""

from __future__ import annotations

from pathlib import Path

from sensevoice_server.engine.backends import Backend
from sensevoice_server.engine.config import EngineSettings
from sensevoice_server.errors import StartupError

CPU_PRECISION = "int8"  # static int8: 2.2x torch on this project's 2-core CPU (README)


def choose_backend(settings: EngineSettings) -> tuple[str, str]:
    """(backend, precision) for `auto` settings on their device, or as set. On a CPU, auto's
    answer is provisional until the model loads (`load_backend` may measure another)."""
    cuda = settings.device.startswith("cuda")
    backend: str = settings.backend
    precision: str = settings.precision
    if backend == "auto":
        # bf16 runs on OpenVINO alone, so asking for it picks the runtime too
        backend = "torch" if cuda else ("openvino" if precision == "bf16" else "onnx")
    if precision == "auto":
        precision = ("fp16" if cuda else "fp32") if backend == "torch" else CPU_PRECISION
    if precision == "fp16" and not cuda:
        raise StartupError("--precision fp16 needs a CUDA device (--device cuda:N)")
    if precision == "int8" and backend == "torch":  # auto on CUDA: torch would serve fp32
        raise StartupError(
            "--precision int8 runs on a CPU (the onnx and openvino backends); on CUDA use "
            "--precision fp16 or fp32"
        )
    if precision == "bf16" and backend != "openvino":
        raise StartupError("--precision bf16 runs on the openvino backend (a CPU) only")
    if backend == "openvino":
        check_openvino(precision)
    return backend, precision


def check_openvino(precision: str) -> None:
    """OpenVINO installed, and computing bf16 on this CPU when bf16 is asked for: said at
    start-up, not when the model thread gets there."""
    from sensevoice_server.engine.backends import openvino

    if not openvino.available():
        raise StartupError(f"--backend openvino needs OpenVINO: {openvino.INSTALL_HINT}")
    if precision == "bf16" and not openvino.computes_bf16():
        raise StartupError(
            "--precision bf16: OpenVINO does not compute bf16 on this CPU (it needs AMX or "
            "AVX512_BF16); use --precision int8 or fp32"
        )


def load_backend(settings: EngineSettings, backend: str, precision: str) -> Backend:
    if backend == "torch":
        from sensevoice_server.engine.backends.torch import TorchBackend

        return TorchBackend(settings.model, settings.device, settings.ncpu, precision)
    from sensevoice_server.engine import backend_choice
    from sensevoice_server.engine.backends.onnx import OnnxBackend, export_file

    if backend_choice.applies(settings):
        export_dir = export_file(settings, "fp32").parent  # made now at the first start
        backend, precision = backend_choice.chosen(settings, export_dir)
    if backend == "openvino":
        from sensevoice_server.engine.backends.openvino import OpenVinoBackend

        return OpenVinoBackend.for_settings(settings, precision)
    from sensevoice_server.engine.int8_check import checked

    loaded = OnnxBackend.for_settings(settings, precision)
    return checked(loaded, settings) if precision == "int8" else loaded


def imports_ahead(settings: EngineSettings) -> bool:
    """Import here, on the calling thread, what loading the models imports, unless that
    includes torch; True if it did.

    main.py starts the engine's threads before it imports the web app (Gradio's modules take
    about 2 s), so that the models load meanwhile: onnxruntime and OpenVINO build their
    sessions in C++ without holding the GIL. The imports themselves must not overlap, which
    is why they are made here first: a torch import in the model's thread at the same time
    as Gradio's in the main thread hung a server for good in CI. With torch anywhere the
    models load after the app is built, as they always did.
    """
    from sensevoice_server.engine.segmenter import runs_in_torch
    from sensevoice_server.engine.vad import SILERO

    backend, _ = choose_backend(settings)
    if backend == "torch" or runs_in_torch(settings):
        return False
    if not all(
        Path(name).is_dir() for name in (settings.model, settings.vad_model) if name != SILERO
    ):
        return False  # a hub model not downloaded yet: modelscope, which imports torch, fetches it
    import email.parser  # noqa: F401  (importlib.metadata's version() imports it)

    import onnxruntime  # noqa: F401
    import sentencepiece  # noqa: F401  (the tokenizer)

    from sensevoice_server.engine import (  # noqa: F401  # noqa: F401
        backend_choice,
        fsmn_segments,
        int8_check,
        memory,
        silero_segments,
    )
    from sensevoice_server.engine.backends import onnx  # noqa: F401

    if backend == "openvino" or backend_choice.applies(settings):
        from sensevoice_server.engine.backends import openvino

        openvino.imported()
    return True
