"""The FSMN VAD's network as ONNX: exported once per VAD directory, in a process with torch.

funasr's own export of it (funasr/models/fsmn_vad_streaming/export_meta.py,
`export_rebuild_model`) makes the network a pure function of its input and state: features
(1, T, 400) and one memory per FSMN layer (the last lorder - 1 frames it saw) in, the
softmax scores (1, T, 248) and the next memories out: exactly what funasr's streaming
`cache["encoder"]` carries from one chunk to the next, so the onnxruntime path
(fsmn_segments.py) runs the same computation chunk by chunk. funasr's `AutoModel.export`
cannot be used as is: it calls `torch.onnx.export` with this torch's default (dynamo) exporter,
which needs onnxscript; so its model, inputs, names and axes are used with the TorchScript
exporter, as engine/export.py does for the model.

The server makes the export at first start (`exported`), in a child process
(`python -m sensevoice_server.cli export-vad`): the serving process never imports torch for
it. It is kept under ~/.cache/sensevoice/fsmn-vad/<the VAD directory's content hash>/.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from sensevoice_server.engine.cli_subprocess import run_cli
from sensevoice_server.engine.export_cache import kept_export
from sensevoice_server.errors import ModelLoadError

log = logging.getLogger(__name__)
FILE = "model.onnx"
OPSET = 17


def exported(vad_dir: Path) -> Path:
    """The ONNX file of `vad_dir`'s network, exported now if there is none yet."""

    def make(directory: Path) -> None:
        status = run_cli("export-vad", str(vad_dir), str(directory), label="export-vad")
        if status != 0 or not (directory / FILE).exists():
            raise ModelLoadError(
                f"--vad-model {vad_dir}: its ONNX export failed (exit {status}); run python "
                f"-m sensevoice_server.cli export-vad {vad_dir} to see why"
            )

    return kept_export("fsmn-vad", "FSMN VAD ONNX", vad_dir, FILE, make) / FILE


def export_fsmn_vad(vad_dir: Path, out_dir: Path) -> Path:
    """Write `vad_dir`'s network to `out_dir`/model.onnx (needs torch and funasr)."""
    import torch
    from funasr import AutoModel

    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    automodel = AutoModel(model=str(vad_dir), device="cpu", disable_update=True,
                          disable_pbar=True, disable_log=True)  # fmt: skip
    model = automodel.model
    layers = len(model.encoder.fsmn)
    if layers > 4:  # funasr's export names four layer memories
        raise ModelLoadError(f"{vad_dir}: an FSMN with {layers} layers; funasr exports 4")
    model = model.export(type="onnx", encoder=automodel.kwargs["encoder"]).eval()
    inputs = model.export_dummy_inputs()[: 1 + layers]
    outputs = model.export_output_names()[: 1 + layers]
    with torch.no_grad():
        torch.onnx.export(
            model, inputs, str(partial / FILE), dynamo=False, opset_version=OPSET,
            input_names=model.export_input_names()[: 1 + layers], output_names=outputs,
            dynamic_axes={**model.export_dynamic_axes(), outputs[0]: {1: "feats_length"}},
        )  # fmt: skip
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    log.info("FSMN VAD ONNX export written to %s", out_dir)
    return out_dir / FILE
