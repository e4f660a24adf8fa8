"""The int8 graph made lean at export time: onnxruntime's own fusions, saved, and the one it
leaves out.

Static QDQ quantisation writes each linear layer as DequantizeLinear -> MatMul -> Add(bias);
onnxruntime fuses the first two into `MatMulIntegerToFloat` when it loads the model, but the
bias Add stays a node of its own: 281 of them in SenseVoiceSmall, each a pass over the
activations. `MatMulIntegerToFloat` takes the bias as its seventh input and adds it while the
result is still in the kernel's hands; that fusion is the gap this module fills. So the
export saves the graph as onnxruntime optimises it at its portable level (EXTENDED: fusions
into its own CPU operators, nothing tied to this machine's instruction set, which level ALL
adds at every load), then moves each bias into its MatMul. Measured (docs/FACTS.md, "ONNX
and onnxruntime"): 1.07x at 10 s and 1.12x at 15 s on the full-size encoder.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
BIAS_INPUT = 6  # MatMulIntegerToFloat: A, B, a_scale, b_scale, a_zero, b_zero, bias


def lean(int8: Path, signed_activations: bool = False) -> int:
    """Rewrite `int8` in place as onnxruntime's EXTENDED graph with biases fused; returns how
    many were. `signed_activations` keeps int8 activations int8 (onnxruntime otherwise makes
    them uint8 on x86, for AVX2's sake: export.quantize says when they are wanted)."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # its notes on unused initialisers are not ours to fix
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    if signed_activations:
        options.add_session_config_entry("session.qdqisint8allowed", "1")
    optimised = int8.with_name(int8.stem + ".extended.onnx")
    options.optimized_model_filepath = str(optimised)
    ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
    model = onnx.load(str(optimised))
    fused = fuse_biases(model.graph)
    onnx.save(model, str(int8))
    optimised.unlink()
    return fused


def fuse_biases(graph: Any) -> int:
    """Each MatMulIntegerToFloat whose only reader adds a constant vector takes it as bias."""
    constants = {tensor.name: tensor for tensor in graph.initializer}
    readers: dict[str, list[Any]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            readers[name].append(node)
    outputs = {output.name for output in graph.output}
    fused = []
    for node in graph.node:
        if node.op_type != "MatMulIntegerToFloat" or len(node.input) > BIAS_INPUT:
            continue
        [add, *others] = readers[node.output[0]] or [None]
        if add is None or others or add.op_type != "Add" or node.output[0] in outputs:
            continue
        bias = add.input[1] if add.input[0] == node.output[0] else add.input[0]
        if bias not in constants or len(constants[bias].dims) != 1:
            continue
        node.input.extend([""] * (BIAS_INPUT - len(node.input)) + [bias])
        node.output[0] = add.output[0]
        fused.append(add)
    for add in fused:
        graph.node.remove(add)
    return len(fused)
