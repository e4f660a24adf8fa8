"""silero VAD's shipped ONNX network with its 1-D convolutions run as 2-D ones, made once.

onnxruntime's 1-D Conv misses the fast path its 2-D Conv takes (docs/FACTS.md: the FSMN
block's convolution, export_attention.py, is the same story). silero's network is six 1-D
convolutions (its STFT and encoder) and an LSTM; the same weights as 2-D convolutions of
height 1, between an Unsqueeze and a Squeeze, give the same probabilities (within 9e-6 on
speech: another order of summation) in 0.6x the time: 8.4 against 13.7 ms for 10 s of
audio in one call, 0.15 against 0.21 ms for a live block of four windows. The rewrite needs
the `onnx` package, whose import takes half a second: it runs once, in a child process
(`python -m sensevoice_server.cli export-silero`), and its file is kept beside the other
exports, by the shipped file's hash.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sensevoice_server.engine.cli_subprocess import run_cli
from sensevoice_server.engine.export_cache import kept_export
from sensevoice_server.errors import ModelLoadError

log = logging.getLogger(__name__)
FILE = "model.onnx"
AXES = "height_axis"  # the initializer naming the axis the rewrite adds


def served_file(shipped: Path) -> Path:
    """The 2-D file made from `shipped` (now, if need be); `shipped` itself if that fails,
    which costs speed, not results."""

    def make(directory: Path) -> None:
        status = run_cli("export-silero", str(shipped), str(directory), label="export-silero")
        if status != 0 or not (directory / FILE).exists():
            raise ModelLoadError(f"the 2-D rewrite of {shipped} failed (exit {status})")

    try:
        return kept_export("silero-vad", "silero VAD 2-D", shipped, FILE, make) / FILE
    except (ModelLoadError, OSError) as error:
        log.warning("%s: serving silero's own file, a little slower", error)
        return shipped


def write_2d(shipped: Path, out_dir: Path) -> Path:
    """Write `shipped` with each 1-D Conv rewritten as a 2-D one to `out_dir`/model.onnx
    (under a temporary name, renamed when complete)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(shipped))
    graph = model.graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    graph.initializer.append(numpy_helper.from_array(np.array([2], np.int64), AXES))
    nodes = []
    for node in graph.node:
        weight = weights.get(node.input[1]) if node.op_type == "Conv" else None
        if weight is None or len(weight.dims) != 3:
            nodes.append(node)
            continue
        flat = numpy_helper.to_array(weight)
        graph.initializer.append(numpy_helper.from_array(flat[:, :, None, :], weight.name + "_2d"))
        given = {
            attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute
        }
        pads = given.get("pads", [0, 0])
        high, wide = node.output[0] + "_2d_in", node.output[0] + "_2d_out"
        nodes += [
            helper.make_node("Unsqueeze", [node.input[0], AXES], [high]),
            helper.make_node(
                "Conv", [high, weight.name + "_2d", *node.input[2:]], [wide], name=node.name,
                kernel_shape=[1, given["kernel_shape"][0]],
                strides=[1, given.get("strides", [1])[0]], pads=[0, pads[0], 0, pads[1]],
                dilations=[1, given.get("dilations", [1])[0]], group=given.get("group", 1),
            ),
            helper.make_node("Squeeze", [wide, AXES], [node.output[0]]),
        ]  # fmt: skip
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / (FILE + ".partial")
    onnx.save(model, str(partial))
    partial.rename(out_dir / FILE)
    return out_dir / FILE
