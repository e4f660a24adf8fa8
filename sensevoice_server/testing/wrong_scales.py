"""An int8 export with deliberately wrong activation scales: what the int8 check must catch.

Static int8 quantises each MatMul's input with a scale fixed at export time
(QuantizeLinear's second input). Dividing those scales makes every activation past a small
range saturate, the failure a calibration set unlike the served audio causes, only worse.
The fp32 model beside it is left alone, so the check has a sound model to fall back on.
"""

from __future__ import annotations

import shutil
from pathlib import Path

FILE = "model.int8.onnx"


def with_wrong_scales(export_dir: Path, out_dir: Path, divide_by: float = 50.0) -> Path:
    """A copy of `export_dir` whose int8 activation scales are `divide_by` times too small."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    shutil.copytree(export_dir, out_dir)
    model = onnx.load(str(out_dir / FILE))
    scales = {node.input[1] for node in model.graph.node if node.op_type == "QuantizeLinear"}
    changed = 0
    for initializer in model.graph.initializer:
        if initializer.name in scales:
            value = numpy_helper.to_array(initializer) / np.float32(divide_by)
            initializer.CopyFrom(numpy_helper.from_array(value.astype(np.float32),
                                                         initializer.name))  # fmt: skip
            changed += 1
    if not changed:
        raise ValueError(f"{export_dir / FILE}: no QuantizeLinear scales (not a static export)")
    onnx.save(model, str(out_dir / FILE))
    return out_dir
