"""How close the int8 encoder runs to its own MatMuls: the whole graph against the same
MatMuls run alone, and where the rest of the time goes.

Run: .venv/bin/python -m bench.bench_int8_graph [--onnx-dir DIR] [--seconds 10] [--threads 1,2]

The served int8 export of the full-size checkpoint (made as the server makes it, or --onnx-dir)
is run on `--seconds` of features, one call at a time. Then every int8 MatMul of the graph
(the linear layers' `MatMulIntegerToFloat` and the attention's `QLinearMatMul`, with the shapes
onnxruntime's profiler recorded for that call) is rebuilt as a one-node model and run alone,
with the same threads. Printed:

- the encoder's time and the sum of its MatMuls run alone: their ratio is the share of the
  MatMuls' own rate the whole encoder reaches (the issue's goal: at least 50 %);
- the encoder's int8 operations per second, against onnxruntime's rate on one large int8
  GEMM (2048 x 2048 x 2048): the best this runtime gets from this CPU's int8 units, the
  practical peak;
- the profiler's time per operator type, the MatMuls' share among them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import full_model, print_table
from sensevoice_server.engine.export import FILES

FRAMES_PER_SECOND = 100 / 6  # 10 ms frames, six stacked per model frame
MATMULS = ("MatMulIntegerToFloat", "QLinearMatMul")


def session(model: str | bytes, threads: int, profile: bool = False) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "profile")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def feeds(frames: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((1, frames, 560), dtype=np.float32),
            "x_length": np.array([frames], np.int32), "language": np.array([0], np.int32),
            "text_norm": np.array([15], np.int32)}  # fmt: skip


def timed(run: Any, repeat: int) -> float:
    run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def profiled_nodes(model: str, threads: int, inputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The node events of one call (after a warm-up call), with their shapes."""
    profiling = session(model, threads, profile=True)
    profiling.run(None, inputs)
    profiling.run(None, inputs)
    events = json.loads(Path(profiling.end_profiling()).read_text())
    runs = [e for e in events if e.get("name") == "model_run"]
    last = runs[-1]
    return [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
            and last["ts"] <= e["ts"] <= last["ts"] + last["dur"]]  # fmt: skip


def one_node_model(op: str, shapes: list[list[int]]) -> bytes:
    """A model of one int8 MatMul with these input shapes (random int8 data, fixed scales)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    a_shape, b_shape = shapes[0], shapes[1]
    a = helper.make_tensor_value_info("a", TensorProto.UINT8, a_shape)
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    constants = []

    def constant(name: str, value: np.ndarray) -> str:
        constants.append(numpy_helper.from_array(value, name))
        return name

    if op == "MatMulIntegerToFloat":
        b = constant("b", rng.integers(-64, 64, b_shape, dtype=np.int8))
        scale_b = np.full(b_shape[-1:], 0.01, np.float32)
        inputs = ["a", b, constant("sa", np.array([0.02], np.float32)), constant("sb", scale_b),
                  constant("za", np.array([128], np.uint8)),
                  constant("zb", np.zeros(b_shape[-1:], np.int8))]  # fmt: skip
        node = helper.make_node(op, inputs, ["y"], domain="com.microsoft")
        graph_inputs = [a]
    else:  # QLinearMatMul: both operands activations (the attention), uint8 out
        b_info = helper.make_tensor_value_info("b", TensorProto.UINT8, b_shape)
        out = helper.make_tensor_value_info("y", TensorProto.UINT8, None)
        s, z = constant("s", np.array(0.02, np.float32)), constant("z", np.array(128, np.uint8))
        node = helper.make_node(op, ["a", s, z, "b", s, z, s, z], ["y"])
        graph_inputs = [a, b_info]
    graph = helper.make_graph([node], "one", graph_inputs, [out], constants)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    return bytes(model.SerializeToString())


def operations(op: str, shapes: list[list[int]]) -> float:
    """Multiply-adds times two of one MatMul call."""
    a, b = shapes[0], shapes[1]
    batch = int(np.prod(a[:-2])) if len(a) > 2 else 1
    return 2.0 * batch * a[-2] * a[-1] * b[-1]


def alone(op: str, shapes: list[list[int]], threads: int) -> float:
    run = session(one_node_model(op, shapes), threads)
    rng = np.random.default_rng(2)
    inputs = {"a": rng.integers(0, 255, shapes[0], dtype=np.uint8)}
    if op == "QLinearMatMul":
        inputs["b"] = rng.integers(0, 255, shapes[1], dtype=np.uint8)
    return timed(lambda: run.run(None, inputs), 7)


def shapes_of(event: dict[str, Any]) -> list[list[int]]:
    """The two operands' shapes. The profiler lists the inputs it was given: a linear
    layer's weights are prepacked and missing, so their shape is (K, N), N the output's."""
    listed = [next(iter(shape.values())) for shape in event["args"]["input_type_shape"]]
    if event["args"]["op_name"] == "QLinearMatMul":
        return [listed[0], listed[3]]
    [output] = [next(iter(shape.values())) for shape in event["args"]["output_type_shape"]]
    return [listed[0], [listed[0][-1], output[-1]]]


def measure(model: str, threads: int, frames: int) -> dict[str, Any]:
    inputs = feeds(frames)
    whole = session(model, threads)
    encoder_s = timed(lambda: whole.run(None, inputs), 7)
    nodes = profiled_nodes(model, threads, inputs)
    by_type: Counter[str] = Counter()
    for event in nodes:
        by_type[event["args"]["op_name"]] += event["dur"] / 1e6
    calls: dict[tuple[str, str], int] = defaultdict(int)
    for event in nodes:
        if event["args"]["op_name"] in MATMULS:
            calls[(event["args"]["op_name"], json.dumps(shapes_of(event)))] += 1
    alone_s = ops = 0.0
    for (op, shapes_json), count in calls.items():
        shapes = json.loads(shapes_json)
        alone_s += count * alone(op, shapes, threads)
        ops += count * operations(op, shapes)
    return {"encoder_s": encoder_s, "alone_s": alone_s, "ops": ops, "by_type": by_type}


def gemm_peak(threads: int) -> float:
    """onnxruntime's int8 rate on one large GEMM: the most it gets from this CPU."""
    shapes = [[2048, 2048], [2048, 2048]]
    return operations("MatMulIntegerToFloat", shapes) / alone(
        "MatMulIntegerToFloat", shapes, threads
    )


def served_export() -> Path:
    from sensevoice_server.engine.backends.onnx import exported

    return exported(str(full_model()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--onnx-dir", type=Path)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    model = str((args.onnx_dir or served_export()) / FILES["int8"])
    frames = round(args.seconds * FRAMES_PER_SECOND)
    rows, types = [], {}
    for threads in (int(n) for n in args.threads.split(",")):
        print(f"measuring with {threads} thread(s) ...", flush=True)
        found = measure(model, threads, frames)
        peak = gemm_peak(threads)
        rate = found["ops"] / found["encoder_s"]
        rows.append([
            threads, f"{1000 * found['encoder_s']:.0f} ms", f"{1000 * found['alone_s']:.0f} ms",
            f"{100 * found['alone_s'] / found['encoder_s']:.0f} %", f"{rate / 1e9:.0f}",
            f"{found['ops'] / found['alone_s'] / 1e9:.0f}", f"{peak / 1e9:.0f}",
            f"{100 * rate / peak:.0f} %",
        ])  # fmt: skip
        types[threads] = found["by_type"]
    print(f"\n{model}\n{args.seconds:g} s of features ({frames} frames), one call at a time, "
          f"{os.cpu_count()} cores\n")  # fmt: skip
    print_table(["threads", "encoder", "its MatMuls alone", "share of MatMuls' rate",
                 "encoder GOPS", "MatMuls alone GOPS", "large GEMM GOPS (peak)",
                 "encoder / peak"], rows)  # fmt: skip
    for threads, by_type in types.items():
        total = sum(by_type.values())
        print(f"\nprofiler, {threads} thread(s): time per operator type\n")
        print_table(["operator", "ms", "share"],
                    [[op, f"{1000 * s:.1f}", f"{100 * s / total:.1f} %"]
                     for op, s in by_type.most_common(12)])  # fmt: skip


if __name__ == "__main__":
    main()
