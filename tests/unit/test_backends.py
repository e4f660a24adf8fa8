"""Both backends, held to the reference and to each other: fp32 ONNX gives the torch
path's tokens, words and times; no backend's result depends on its batch mates; a bad
export is a clear start-up error."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import wait
from pathlib import Path

import pytest

from sensevoice_server.engine import Engine, EngineSettings
from sensevoice_server.engine.backends.export_metadata import onnx_metadata
from sensevoice_server.engine.backends.onnx import OnnxBackend
from sensevoice_server.engine.cpu import exact_byte_products
from sensevoice_server.engine.export import ATTENTION_KEY, ATTENTION_TYPES, quantize
from sensevoice_server.errors import ModelLoadError
from sensevoice_server.options import DecodeOptions
from sensevoice_server.settings import Settings
from sensevoice_server.testing.reference import reference_text
from tests.support.inprocess import changed, started_engine
from tests.support.samples import load

# every sample once, each with other options
CASES = [("en.wav", "auto", True), ("zh.wav", "zh", False), ("yue.wav", "auto", False),
         ("ja.wav", "ja", True), ("ko.wav", "en", True)]  # fmt: skip


@pytest.fixture(scope="module")
def engines(settings: Settings, tiny_onnx: Path) -> Iterator[dict[str, Engine]]:
    """One engine per backend and precision, each allowed batches of up to 8."""
    built = {}
    for name in ("torch", "onnx-fp32", "onnx-int8"):
        backend, _, precision = name.partition("-")
        built[name] = started_engine(
            settings, backend=backend, precision=precision or "fp32", onnx_dir=str(tiny_onnx),
            batch_max_items=8, batch_wait_ms=50,
        )  # fmt: skip
    yield built
    for engine in built.values():
        engine.close(timeout=30)


@pytest.fixture(params=["torch", "onnx-fp32", "onnx-int8"])
def engine(request: pytest.FixtureRequest, engines: dict[str, Engine]) -> Engine:
    return engines[request.param]


@pytest.fixture
def torch_engine(engines: dict[str, Engine]) -> Engine:
    return engines["torch"]


def test_fp32_backends_give_the_reference_transcript(engine: Engine, reference_model) -> None:
    if engine.precision == "int8":
        pytest.skip("int8 changes the numbers: its agreement is measured in bench/")
    for name, language, itn in CASES:
        audio = load(name)
        text = engine.submit(audio, DecodeOptions(language, itn)).result(60).text
        assert text == reference_text(reference_model, audio, language, itn), (name, language)


def test_onnx_fp32_words_and_times_equal_the_torch_backends(
    engine: Engine, torch_engine: Engine
) -> None:
    if engine.backend_name != "onnx" or engine.precision != "fp32":
        pytest.skip("fp32 ONNX against torch")
    for name in ("en.wav", "zh.wav"):
        options = DecodeOptions(word_timestamps=True)
        ours = engine.submit(load(name), options).result(60)
        theirs = torch_engine.submit(load(name), options).result(60)
        assert ours.text == theirs.text
        timed = [[(w.text, w.start_ms, w.end_ms) for w in s.words] for s in ours.segments]
        assert timed == [[(w.text, w.start_ms, w.end_ms) for w in s.words] for s in theirs.segments]
        ours_p = [w.probability for s in ours.segments for w in s.words]
        theirs_p = [w.probability for s in theirs.segments for w in s.words]
        assert ours_p == pytest.approx(theirs_p, rel=1e-3)  # logits agree to about 1e-4


def test_a_result_does_not_depend_on_its_batch(engine: Engine) -> None:
    clips = [(load(name), DecodeOptions(language, itn)) for name, language, itn in CASES]
    alone = [engine.submit(a, o, use_vad=False).result(60).text for a, o in clips]
    together = [engine.submit(a, o, use_vad=False) for a, o in clips]
    wait(together, timeout=60)
    assert [f.result().text for f in together] == alone
    backend = engine.workers.backend
    assert backend is not None and backend.batch_independent  # static int8 too
    assert engine.largest_batch >= 4


def test_auto_is_torch_fp16_on_cuda_and_onnx_int8_on_a_cpu(settings: Settings) -> None:
    from sensevoice_server.engine.loading import choose_backend

    def chosen(device: str, backend: str = "auto") -> tuple[str, str]:
        auto = changed(settings, backend=backend, precision="auto", device=device)
        return choose_backend(EngineSettings.of(auto))

    assert chosen("cuda:0") == ("torch", "fp16")
    assert chosen("cpu") == ("onnx", "int8")
    assert chosen("cpu", backend="torch") == ("torch", "fp32")


def test_ready_reports_backend_and_precision(engine: Engine) -> None:
    assert engine.info()["backend"] == engine.backend_name in ("torch", "onnx")
    assert engine.info()["precision"] in ("fp32", "int8")


def test_a_corrupt_export_is_a_clear_error(tiny_onnx: Path, tmp_path: Path) -> None:
    broken = shutil.copytree(tiny_onnx, tmp_path / "broken")
    data = (broken / "model.onnx").read_bytes()
    (broken / "model.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelLoadError, match="cannot load it"):
        OnnxBackend(broken / "model.onnx", "fp32", 1)


def test_a_mismatched_export_is_a_clear_error(tiny_onnx: Path, tmp_path: Path) -> None:
    mismatched = shutil.copytree(tiny_onnx, tmp_path / "mismatched")
    for bpe in mismatched.glob("*.bpe.model"):
        bpe.unlink()
    lines = (mismatched / "tokens.txt").read_text().splitlines()
    (mismatched / "tokens.txt").write_text("\n".join(lines[:100]) + "\n")
    with pytest.raises(ModelLoadError, match="does not match"):
        OnnxBackend(mismatched / "model.onnx", "fp32", 1)


def test_the_exported_fsmn_blocks_convolve_in_2d(tiny_onnx: Path) -> None:
    """export_attention.py's FSMN form, seen in the graph: each depthwise convolution over
    time is a 2-D Conv of height 1 (onnxruntime's fast path), padding included; the tests
    above hold the results equal to torch's."""
    import onnx

    graph = onnx.load(str(tiny_onnx / "model.onnx"), load_external_data=False).graph
    convolutions = [node for node in graph.node if node.op_type == "Conv"]
    assert convolutions
    for node in convolutions:
        kernel = next(a for a in node.attribute if a.name == "kernel_shape")
        assert len(kernel.ints) == 2 and kernel.ints[0] == 1, node.name
    assert "Pad" not in {node.op_type for node in graph.node}


def test_int8_attention_is_signed_only_where_the_cpu_multiplies_it_exactly(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    """The attention's keys and values are signed int8 (onnxruntime's u8 x s8 kernels, three
    times its u8 x u8) on CPUs with VNNI or AMX, and unsigned elsewhere, where AVX2's byte
    multiply-add would saturate. The server's export follows this CPU and says so in its
    metadata; the other recipe, asked for, gives the other operand type."""
    here = exact_byte_products()
    served = tiny_onnx / "model.int8.onnx"
    assert onnx_metadata(served)[ATTENTION_KEY] == ATTENTION_TYPES[here]
    assert attention_operand_types(served) == {INT8_TYPE[here]}
    other = tmp_path / "other.int8.onnx"
    cmvn = OnnxBackend(tiny_onnx / "model.onnx", "fp32", 1).cmvn
    quantize(tiny_onnx / "model.onnx", other, cmvn, None, signed_attention=not here)
    assert attention_operand_types(other) == {INT8_TYPE[not here]}


INT8_TYPE = {True: 3, False: 2}  # onnx.TensorProto.INT8, onnx.TensorProto.UINT8


def attention_operand_types(model_file: Path) -> set[int]:
    """The element types of the right-hand operands of the int8 graph's attention products
    (its MatMuls of two activations), read from their zero points."""
    import onnx

    graph = onnx.load(str(model_file), load_external_data=False).graph
    constants = {tensor.name: tensor for tensor in graph.initializer}
    right = {"MatMulIntegerToFloat": (1, 5), "QLinearMatMul": (3, 5)}  # operand, zero point
    return {
        constants[node.input[zero_point]].data_type
        for node in graph.node
        for operand, zero_point in [right.get(node.op_type, (0, 0))]
        if node.op_type in right and node.input[operand] not in constants
    }
