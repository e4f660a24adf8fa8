"""Export a SenseVoiceSmall checkpoint directory to ONNX, in the layout sherpa-onnx reads.

The graph is `SenseVoiceLogits` (backends/torch.py), traced: features, lengths, language
and ITN in (each per row), CTC logits out. The export directory holds `model.onnx` (fp32),
`model.int8.onnx` (int8, see `quantize`),
`tokens.txt`, the SentencePiece model and `export.json`; both .onnx files carry the metadata
sherpa-onnx requires, so its own SenseVoice runtime can load them, and ours loads sherpa's
published downloads. The directory is written under a temporary name and renamed when
complete, so an interrupted export never passes for a finished one.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from sensevoice_server.engine import calibration
from sensevoice_server.engine.cpu import exact_byte_products
from sensevoice_server.engine.features import FEATURE_DIM, Cmvn
from sensevoice_server.engine.int8_graph import lean
from sensevoice_server.engine.queries import ITN_QUERY, LANGUAGE_QUERY
from sensevoice_server.engine.tokens import Vocabulary

log = logging.getLogger(__name__)

FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
ATTENTION_KEY = "int8_attention"
"""The int8 file's metadata key that says how its attention was quantised (`quantize`)."""
ATTENTION_TYPES = {True: "signed", False: "unsigned"}
EXPORT_VERSION = 4
"""What the export makes, numbered: 1 traced funasr's modules as they are; 2 masks attention
additively (export_attention.py) and fuses int8's biases (int8_graph.py), the same results
faster; 3 runs the FSMN block's convolution in 2-D (export_attention.py), faster again; 4 makes
the attention's int8 right-hand operands signed on CPUs that multiply them exactly.
Part of the cached export's name, so a server upgraded from an older one exports again."""
OPSET = 17


def metadata(vocabulary_size: int, cmvn: Cmvn) -> dict[str, str]:
    """What sherpa-onnx's SenseVoice loader requires (it exits when a key is missing);
    the comment must not say "Nano" (that selects another model family in sherpa-onnx)."""
    meta: dict[str, object] = {
        "model_type": "sense_voice_ctc",
        "version": "1",
        "comment": "SenseVoiceSmall, exported by sensevoice_server.cli export",
        "vocab_size": vocabulary_size,
        "lfr_window_size": 7,
        "lfr_window_shift": 6,
        "normalize_samples": 0,  # the frontend scales samples to the int16 range itself
        "neg_mean": ",".join(f"{v:.9g}" for v in cmvn.shift),  # float32 round-trips
        "inv_stddev": ",".join(f"{v:.9g}" for v in cmvn.scale),
        "with_itn": ITN_QUERY[True],
        "without_itn": ITN_QUERY[False],
        **{f"lang_{name}": index for name, index in LANGUAGE_QUERY.items()},
    }
    return {key: str(value) for key, value in meta.items()}


def export(
    model_dir: str | Path, out_dir: str | Path, *, int8: bool = True,
    calibration_audio: str | Path | None = None, signed_attention: bool | None = None,
) -> Path:  # fmt: skip
    """Write the export of `model_dir` into `out_dir`; int8's scales from
    `calibration_audio` (default: the shipped set, engine/calibration.py), its attention
    signed where `signed_attention` says (default: where this CPU multiplies it exactly)."""
    import torch

    from sensevoice_server.engine.backends.torch import SenseVoiceLogits, load_funasr_model
    from sensevoice_server.engine.export_attention import lean_attention

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    started = time.perf_counter()
    log.info("ONNX export of %s: loading the checkpoint", model_dir)
    automodel = load_funasr_model(str(model_dir), "cpu", 2)
    source = Path(automodel.kwargs.get("model_path") or model_dir)
    vocabulary = Vocabulary.from_model_dir(source)
    cmvn = Cmvn.from_am_mvn(automodel.kwargs["frontend_conf"]["cmvn_file"])
    module = SenseVoiceLogits(automodel.model).eval()
    log.info("ONNX export: tracing the encoder (about a minute for the full model, once)")
    rows = torch.tensor([80, 100], dtype=torch.int32)  # two lengths: masks traced as dynamic
    example = (torch.randn(2, 100, FEATURE_DIM), rows, torch.tensor([0, 3], dtype=torch.int32),
               torch.tensor([14, 15], dtype=torch.int32))  # fmt: skip
    with torch.no_grad(), lean_attention(module):
        torch.onnx.export(
            module, example, str(partial / FILES["fp32"]), dynamo=False, opset_version=OPSET,
            input_names=["x", "x_length", "language", "text_norm"], output_names=["logits"],
            dynamic_axes={"x": {0: "N", 1: "T"}, "x_length": {0: "N"}, "language": {0: "N"},
                          "text_norm": {0: "N"}, "logits": {0: "N", 1: "T4"}},
        )  # fmt: skip
    del automodel, module
    meta = metadata(len(vocabulary), cmvn)
    write_metadata(partial / FILES["fp32"], meta)
    log.info("ONNX export: fp32 written after %.0f s", time.perf_counter() - started)
    if int8:
        log.info("ONNX export: quantising to int8 (a minute or two for the full model)")
        signed = exact_byte_products() if signed_attention is None else signed_attention
        method = quantize(partial / FILES["fp32"], partial / FILES["int8"], cmvn,
                          calibration_audio, signed)  # fmt: skip
        write_metadata(partial / FILES["int8"], {
            **meta, "quantization": method, ATTENTION_KEY: ATTENTION_TYPES[signed],
        })  # fmt: skip
        log.info("ONNX export: int8 (%s) written after %.0f s", method,
                 time.perf_counter() - started)  # fmt: skip
    (partial / "tokens.txt").write_text(vocabulary.tokens_txt(), encoding="utf-8")
    for bpe in source.glob("*.bpe.model"):
        shutil.copy2(bpe, partial / bpe.name)
    (partial / "export.json").write_text(json.dumps({
        "source": str(source), "opset": OPSET, "seconds": round(time.perf_counter() - started, 1),
    }, indent=2))  # fmt: skip
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    log.info("ONNX export done in %.0f s: %s", time.perf_counter() - started, out_dir)
    return out_dir


def quantize(
    fp32: Path, int8: Path, cmvn: Cmvn, calibration_audio: str | Path | None,
    signed_attention: bool = False,
) -> str:  # fmt: skip
    """int8 for every MatMul, the attention's included; returns the method used.

    Static (calibrated) QDQ: per-channel QInt8 weights in 7-bit range, QUInt8 activations
    with scales fixed from the calibration clips (MinMax). Measured on this project's 2-core
    AVX2 machine without VNNI: 2.2x torch at 10 s and 60 s, where dynamic quantisation (one
    activation scale per call, sherpa-onnx's recipe) gave 1.8x and fp32 ONNX 1.2-1.5x; the
    7-bit range avoids the saturation of AVX2's u8 x s8 multiply-add. Fixed scales also make
    an item's result independent of its batch mates, which dynamic scales are not. Without
    calibration audio (a --calibration-audio folder with none that decodes), dynamic it is.

    `signed_attention`: the attention's two products multiply activation by activation, and
    with both in QUInt8 onnxruntime runs them in its u8 x u8 kernels, three times slower
    than u8 x s8 (51 against 167 us for one layer's scores at 10 s, one thread, AMX). So the
    right-hand operands (keys and values) are QInt8, and onnxruntime is told to keep them
    so (by default it turns int8 activations back to uint8 on x86). Only for CPUs with VNNI
    or AMX: AVX2's u8 x s8 multiply-add saturates on full-range activations. Measured on
    the full-size encoder, one thread: 1.14x at 10 s, 1.20x at 60 s (docs/FACTS.md).
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    clips = list(calibration.clips(calibration_audio))
    if not clips:
        log.warning("no calibration audio in %s: int8 by dynamic quantisation",
                    calibration_audio or calibration.DEFAULT_DIR)  # fmt: skip
        quantize_dynamic(model_input=str(fp32), model_output=str(int8),
                         op_types_to_quantize=["MatMul"], weight_type=QuantType.QUInt8)  # fmt: skip
        return "dynamic"
    quantize_static(
        model_input=str(fp32), model_output=str(int8),
        calibration_data_reader=CalibrationReader(clips, cmvn),
        quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul"], per_channel=True,
        reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={
            # DQ -> MatMul -> float (MatMulIntegerToFloat): the outputs are not requantised
            "OpTypesToExcludeOutputQuantization": ["MatMul"],
            "TensorQuantOverrides": {
                name: [{"quant_type": QuantType.QInt8}] for name in right_operands(fp32)
            } if signed_attention else {},
        },
    )  # fmt: skip
    fused = lean(int8, signed_activations=signed_attention)
    log.info("ONNX export: int8 graph fused (%d biases into their MatMuls)", fused)
    return "static"


def right_operands(model_file: Path) -> list[str]:
    """The right-hand inputs of the MatMuls that multiply two activations (the attention's
    keys and values), by tensor name."""
    import onnx

    graph = onnx.load(str(model_file), load_external_data=False).graph
    constants = {tensor.name for tensor in graph.initializer}
    return [node.input[1] for node in graph.node
            if node.op_type == "MatMul" and not constants.intersection(node.input)]  # fmt: skip


class CalibrationReader:
    """The model's inputs for each calibration clip, with and without ITN (onnxruntime's
    CalibrationDataReader protocol: `get_next()` until None)."""

    def __init__(self, clips: list[calibration.Clip], cmvn: Cmvn) -> None:
        import numpy as np

        from sensevoice_server.engine.features import features

        items: list[dict[str, Any]] = []
        for clip in clips:
            feats = features(clip.samples, cmvn)
            language = LANGUAGE_QUERY[clip.language]
            for itn in (True, False):
                items.append({
                    "x": feats[None], "x_length": np.array([len(feats)], dtype=np.int32),
                    "language": np.array([language], dtype=np.int32),
                    "text_norm": np.array([ITN_QUERY[itn]], dtype=np.int32),
                })  # fmt: skip
        self._items = iter(items)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._items, None)


def write_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
