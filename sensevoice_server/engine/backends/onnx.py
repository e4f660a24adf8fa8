"""The ONNX backend: an export of the checkpoint under onnxruntime, on the CPU.

onnxruntime rather than sherpa-onnx's own runtime: sherpa-onnx fixes the language per
recognizer (one recognizer per language) and calls exit() on a bad model file, while here
the language and ITN are inputs per row, the features are the ones the torch backend sees
(features.py), and a bad file is a clear start-up error. The export is made from --model at
first start (engine/export.py) and kept under ~/.cache/sensevoice/onnx/<checkpoint hash>/;
--onnx-dir points at one made earlier, or at sherpa-onnx's SenseVoice download.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sensevoice_server.engine.backends import Item
from sensevoice_server.engine.config import EngineSettings
from sensevoice_server.engine.export import FILES
from sensevoice_server.engine.features import Cmvn, pad_batch
from sensevoice_server.engine.fingerprint import identify
from sensevoice_server.engine.tokens import Vocabulary
from sensevoice_server.errors import ModelLoadError
from sensevoice_server.user_dirs import cache_dir

log = logging.getLogger(__name__)

REQUIRED_METADATA = ("vocab_size", "lfr_window_size", "lfr_window_shift", "neg_mean",
                     "inv_stddev", "with_itn", "without_itn", "lang_auto", "lang_zh",
                     "lang_en", "lang_yue", "lang_ja", "lang_ko")  # fmt: skip


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
        missing = [key for key in REQUIRED_METADATA if key not in meta]
        if missing:
            raise ModelLoadError(
                f"{model_file}: not a SenseVoice export (its metadata has no "
                f"{', '.join(missing)}); export one with python -m sensevoice_server.cli export"
            )
        self.model_file = model_file
        self.precision = precision
        # dynamic int8 (sherpa-onnx's downloads, or ours without calibration clips) scales
        # activations over the whole padded batch, so an item's text would depend on its
        # batch mates (docs/FACTS.md, "ONNX and onnxruntime"): one item at a time. Static
        # scales do not depend on it.
        self.batch_independent = precision == "fp32" or meta.get("quantization") == "static"
        self.cmvn = Cmvn.from_strings(meta["neg_mean"], meta["inv_stddev"])
        self.vocabulary = Vocabulary.from_model_dir(model_file.parent)
        if len(self.vocabulary) != int(meta["vocab_size"]):
            raise ModelLoadError(
                f"{model_file}: its vocabulary ({meta['vocab_size']}) does not match "
                f"{model_file.parent}'s tokens ({len(self.vocabulary)}): a mismatched export"
            )
        self._languages = {k[5:]: int(v) for k, v in meta.items() if k.startswith("lang_")}
        self._itn = {True: int(meta["with_itn"]), False: int(meta["without_itn"])}

    @classmethod
    def for_settings(cls, settings: EngineSettings, precision: str) -> OnnxBackend:
        directory = (Path(settings.onnx_dir) if settings.onnx_dir
                     else exported(settings.model, settings.calibration_audio))  # fmt: skip
        model_file = directory / FILES[precision]
        if not model_file.exists():
            raise ModelLoadError(
                f"--onnx-dir {directory}: no {model_file.name} for --precision {precision}."
            )
        return cls(model_file, precision, settings.ncpu)

    def logits(self, items: list[Item]) -> list[np.ndarray]:
        padded, lengths = pad_batch([item.features for item in items])
        feeds = {
            "x": padded,
            "x_length": lengths,
            "language": np.array([self._languages.get(i.language, 0) for i in items], np.int32),
            "text_norm": np.array([self._itn[i.use_itn] for i in items], np.int32),
        }
        out: Any = self._session.run(["logits"], feeds)[0]
        return [out[row, : length + 4] for row, length in enumerate(lengths)]

    def identity(self) -> dict[str, str]:
        export_hash = identify(str(self.model_file))
        return {"backend": "onnx", "precision": self.precision, "export": export_hash}


def exported(model: str, calibration_audio: str | None = None) -> Path:
    """The export of `model` (a local directory by now: model_source.py resolves hub ids),
    made now if there is none yet, kept by the checkpoint's content hash."""
    source = Path(model)
    if not source.is_dir():  # a hub id: downloaded first, as funasr would
        from modelscope.hub.snapshot_download import snapshot_download

        log.info("downloading %s from the model hub", model)
        source = Path(snapshot_download(model))
    directory = cache_dir() / "onnx" / identify(str(source))[:16]
    directory.parent.mkdir(parents=True, exist_ok=True)
    # replicas of one machine share this cache: the first exports, the others wait for it
    with open(directory.with_name(directory.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (directory / FILES["fp32"]).exists():
            log.info("no ONNX export of %s yet: exporting it once to %s", source, directory)
            export_in_subprocess(source, directory, calibration_audio)
    return directory


def export_in_subprocess(
    source: Path, directory: Path, calibration_audio: str | None = None
) -> None:
    """The export in a process of its own: tracing needs a deeper stack than a thread has
    (it fails with a SystemError in the engine's thread), and its peak memory (about twice
    the model) is given back to the system when that process ends."""
    command = [sys.executable, "-m", "sensevoice_server.cli", "export", str(source), str(directory)]
    if calibration_audio:
        command += ["--calibration-audio", calibration_audio]
    package_root = str(Path(__file__).resolve().parents[3])  # importable from anywhere
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "PYTHONPATH": path}) as process:  # fmt: skip
        assert process.stdout is not None
        for line in process.stdout:  # its progress, in our log
            if line.strip() and "WARNING" not in line:
                log.info("export: %s", line.rstrip().split(": ", 1)[-1])
    if process.returncode != 0 or not (directory / FILES["fp32"]).exists():
        raise ModelLoadError(
            f"--model {source}: the ONNX export failed (exit {process.returncode}); run "
            f"python -m sensevoice_server.cli export {source} to see why, or use --backend torch"
        )
