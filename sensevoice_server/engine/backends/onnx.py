"""The ONNX backend: an export of the checkpoint under onnxruntime, on the CPU.

onnxruntime rather than sherpa-onnx's own runtime: sherpa-onnx fixes the language per
recognizer (one recognizer per language) and calls exit() on a bad model file, while here
the language and ITN are inputs per row, the features are the ones the torch backend sees
(features.py), and a bad file is a clear start-up error. The export is made from --model at
first start (engine/export.py) and kept under ~/.cache/sensevoice/onnx/<checkpoint hash>/;
--onnx-dir points at one made earlier, or at sherpa-onnx's SenseVoice download.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from sensevoice_server.engine.backends import Item
from sensevoice_server.engine.backends.export_metadata import ExportMetadata
from sensevoice_server.engine.cli_subprocess import run_cli
from sensevoice_server.engine.config import EngineSettings
from sensevoice_server.engine.cpu import exact_byte_products
from sensevoice_server.engine.export import ATTENTION_KEY, ATTENTION_TYPES, EXPORT_VERSION, FILES
from sensevoice_server.engine.export_cache import kept_export, model_directory
from sensevoice_server.engine.fingerprint import identify
from sensevoice_server.errors import ModelLoadError

log = logging.getLogger(__name__)


class OnnxBackend:
    name = "onnx"
    device = "cpu"

    def __init__(self, model_file: Path, precision: str, ncpu: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = ncpu
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # idle pool threads sleep instead of spinning: the VAD and the event loop share the
        # cores, and spinning showed as CPU time with no work done
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # no arena: its blocks, sized for the longest segment so far, were kept for good
        # (about 270 MB after one 60 s call on the full-size model); without it that memory
        # goes back after each call, at no measured cost in speed (docs/FACTS.md)
        options.enable_cpu_mem_arena = False
        try:
            self._session = ort.InferenceSession(
                str(model_file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own kinds for a bad file
            raise ModelLoadError(
                f"{model_file}: onnxruntime cannot load it ({error}); delete the file (it is "
                "exported again at the next start) or point --onnx-dir at a good export."
            ) from error
        meta = self._session.get_modelmeta().custom_metadata_map
        self.export = ExportMetadata.of(model_file, meta)
        if meta.get(ATTENTION_KEY) == ATTENTION_TYPES[True] and not exact_byte_products():
            log.warning(
                "%s was made for a CPU with VNNI or AMX; this one lacks them, and its "
                "attention may saturate here. Export again on this machine (or with "
                "cli export --int8-attention unsigned) for full accuracy.", model_file,
            )  # fmt: skip
        self.model_file = model_file
        self.precision = precision
        self.batch_independent = self.export.batch_independent(precision)
        self.cmvn, self.vocabulary = self.export.cmvn, self.export.vocabulary

    @classmethod
    def for_settings(cls, settings: EngineSettings, precision: str) -> OnnxBackend:
        return cls(export_file(settings, precision), precision, settings.threads_per_call(cls.name))

    def logits(self, items: list[Item]) -> list[np.ndarray]:
        feeds, lengths = self.export.feeds(items)
        out: Any = self._session.run(["logits"], feeds)[0]
        return [out[row, : length + 4] for row, length in enumerate(lengths)]

    def identity(self) -> dict[str, str]:
        export_hash = identify(str(self.model_file))
        return {"backend": "onnx", "precision": self.precision, "export": export_hash}


def export_file(settings: EngineSettings, precision: str) -> Path:
    """The file of the export `settings` name (--onnx-dir, else --model's own, made now if
    need be) that holds `precision`'s model (int8's, or fp32's for fp32 and bf16)."""
    directory = (Path(settings.onnx_dir) if settings.onnx_dir
                 else exported(settings.model, settings.calibration_audio))  # fmt: skip
    model_file = directory / FILES["int8" if precision == "int8" else "fp32"]
    if not model_file.exists():
        raise ModelLoadError(
            f"--onnx-dir {directory}: no {model_file.name} for --precision {precision}."
        )
    return model_file


def exported(model: str, calibration_audio: str | None = None) -> Path:
    """The export of `model` (a local directory by now: model_source.py resolves hub ids),
    made now if there is none yet, kept by the checkpoint's content hash and the export's
    version (a newer export is made again, not mistaken for an old one), and apart for CPUs
    that take signed int8 attention (export.quantize): a cache shared by machines of both
    kinds holds one export for each."""
    source = model_directory(model)
    return kept_export(
        "onnx", "ONNX", source, FILES["fp32"],
        lambda directory: export_in_subprocess(source, directory, calibration_audio),
        version=EXPORT_VERSION, variant="vnni" if exact_byte_products() else "",
    )  # fmt: skip


def export_in_subprocess(
    source: Path, directory: Path, calibration_audio: str | None = None
) -> None:
    """The export in a process of its own: tracing needs a deeper stack than a thread has
    (it fails with a SystemError in the engine's thread), and its peak memory (about twice
    the model) is given back to the system when that process ends."""
    arguments = ["export", str(source), str(directory)]
    if calibration_audio:
        arguments += ["--calibration-audio", calibration_audio]
    status = run_cli(*arguments, label="export")
    if status != 0 or not (directory / FILES["fp32"]).exists():
        raise ModelLoadError(
            f"--model {source}: the ONNX export failed (exit {status}); run "
            f"python -m sensevoice_server.cli export {source} to see why, or use --backend torch"
        )
