"""The OpenVINO backend, held to onnxruntime on the same export: fp32 gives onnxruntime's
logits and tokens; bf16 and int8 agree with fp32 (random weights: agreement, not accuracy);
no item's result depends on its batch mates; `--backend auto` on a CPU times the runtimes
once and every later start reads the recorded answer; a precision a backend cannot run is
a clear error before anything loads."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from sensevoice_server.engine import EngineSettings, backend_choice
from sensevoice_server.engine.backends import Item
from sensevoice_server.engine.backends.onnx import OnnxBackend
from sensevoice_server.engine.backends.openvino import OpenVinoBackend, computes_bf16
from sensevoice_server.engine.features import features
from sensevoice_server.engine.int8_check import agreement
from sensevoice_server.engine.loading import choose_backend, load_backend
from sensevoice_server.engine.tokens import greedy
from sensevoice_server.errors import StartupError
from sensevoice_server.settings import Settings
from sensevoice_server.user_dirs import cache_dir
from tests.support.inprocess import changed
from tests.support.samples import load

FILES = {"fp32": "model.onnx", "bf16": "model.onnx", "int8": "model.int8.onnx"}
PRECISIONS = ["fp32", "int8", *(["bf16"] if computes_bf16() else [])]


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiled models and recorded choices in this test's own cache directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def onnx_fp32(tiny_onnx: Path) -> OnnxBackend:
    return OnnxBackend(tiny_onnx / "model.onnx", "fp32", 1)


def openvino(tiny_onnx: Path, precision: str) -> OpenVinoBackend:
    return OpenVinoBackend(tiny_onnx / FILES[precision], precision, 1)


@pytest.fixture(scope="module")
def items(onnx_fp32: OnnxBackend) -> list[Item]:
    """Four samples, each with its own options; one cut short and one made long, so a
    batch of them pads some rows by hundreds of frames."""
    cases = [("en.wav", "auto", True), ("zh.wav", "zh", False), ("ja.wav", "ja", True),
             ("ko.wav", "en", True)]  # fmt: skip
    items = [Item(features(load(name), onnx_fp32.cmvn), language, itn)
             for name, language, itn in cases]  # fmt: skip
    items[0] = Item(items[0].features[:30], "auto", True)
    items[1] = Item(np.concatenate([items[1].features] * 3), "zh", False)
    return items


def tokens(logits: np.ndarray, backend: OnnxBackend | OpenVinoBackend) -> list[int]:
    return [token.id for token in greedy(logits, backend.vocabulary, logprobs=False)[1]]


def test_fp32_gives_onnxruntimes_logits_and_tokens(
    tiny_onnx: Path, onnx_fp32: OnnxBackend, items: list[Item]
) -> None:
    ours = openvino(tiny_onnx, "fp32")
    for theirs, mine in zip(onnx_fp32.logits(items), ours.logits(items), strict=True):
        assert mine.shape == theirs.shape
        np.testing.assert_allclose(mine, theirs, atol=1e-3)  # measured: about 3e-5
        assert tokens(mine, ours) == tokens(theirs, onnx_fp32)
    assert ours.vocabulary.pieces == onnx_fp32.vocabulary.pieces


@pytest.mark.parametrize("precision", [p for p in PRECISIONS if p != "fp32"])
def test_bf16_and_int8_agree_with_fp32_on_the_calibration_clips(
    tiny_onnx: Path, onnx_fp32: OnnxBackend, precision: str
) -> None:
    """The tiny model's weights are random, its logits nearly flat: measured 95 % (bf16)
    and 92.5 % (int8) of fp32's tokens, so 85 % leaves room and still catches a broken
    graph (which agrees on a few per cent)."""
    result = agreement(onnx_fp32, openvino(tiny_onnx, precision))
    assert result.clips >= 10 and result.tokens > 100
    assert result.ratio >= 0.85, result.describe()


@pytest.mark.parametrize("precision", PRECISIONS)
def test_an_items_result_does_not_depend_on_its_batch(
    tiny_onnx: Path, items: list[Item], precision: str
) -> None:
    backend = openvino(tiny_onnx, precision)
    together = backend.logits(items)
    for item, batched in zip(items, together, strict=True):
        [alone] = backend.logits([item])
        assert batched.shape == alone.shape == (len(item.features) + 4, len(backend.vocabulary))
        assert tokens(batched, backend) == tokens(alone, backend)
    assert backend.batch_independent  # the engine may batch it


def test_calls_from_several_threads_at_once_each_get_their_own_result(
    tiny_onnx: Path, items: list[Item]
) -> None:
    """On a CPU the engine runs two model calls at once (config.py, `calls_at_once`): each
    thread calls with an infer request of its own (a request runs one call at a time)."""
    backend = OpenVinoBackend(tiny_onnx / "model.onnx", "fp32", 2, calls=2)
    alone = [backend.logits([item])[0] for item in items]
    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):
            together = list(pool.map(lambda item: backend.logits([item])[0], items))
            for mine, theirs in zip(together, alone, strict=True):
                np.testing.assert_allclose(mine, theirs, atol=1e-4)


def test_the_compiled_model_is_cached_for_the_next_start(tiny_onnx: Path) -> None:
    assert not openvino(tiny_onnx, "fp32").from_cache
    assert openvino(tiny_onnx, "fp32").from_cache


def test_auto_on_a_cpu_is_measured_once_and_the_answer_read_back(
    settings: Settings, tiny_onnx: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The first start times each runtime in a child process and records the answer; the
    second loads the backend as the engine does, reads the answer, times nothing and
    serves what it says."""
    auto = EngineSettings.of(changed(settings, backend="auto", precision="auto",
                                     onnx_dir=str(tiny_onnx)))  # fmt: skip
    assert backend_choice.applies(auto)
    caplog.set_level(logging.INFO, logger="sensevoice_server")
    first = backend_choice.chosen(auto, tiny_onnx)
    assert any("timing the CPU runtimes once" in r.getMessage() for r in caplog.records)
    [record] = (cache_dir() / "backend-choices").glob("*.json")
    recorded = json.loads(record.read_text())
    timed = [(c["backend"], c["precision"]) for c in recorded["candidates"]]
    assert timed == backend_choice.candidates()  # onnxruntime int8 first: the default
    assert all(c["seconds"] > 0 for c in recorded["candidates"])
    assert first == (recorded["backend"], recorded["precision"])
    stamp = record.stat().st_mtime_ns
    caplog.clear()
    served = load_backend(auto, *choose_backend(auto))
    assert (served.name, served.precision) == first
    messages = [r.getMessage() for r in caplog.records]
    assert not any("timing" in m or m.startswith("backend choice:") for m in messages)
    assert any("backend choice (recorded in" in m for m in messages)
    assert record.stat().st_mtime_ns == stamp


def candidate(backend: str, precision: str, seconds: float) -> backend_choice.Candidate:
    return backend_choice.Candidate(backend, precision, seconds, None, 1.0)


def test_the_fastest_runtime_that_agrees_with_fp32_wins_and_onnxruntime_keeps_ties() -> None:
    default = candidate("onnx", "int8", 1.0)
    bf16, ov_int8 = candidate("openvino", "bf16", 0.7), candidate("openvino", "int8", 0.6)
    asked: list[str] = []

    def agrees(floor_by_precision: dict[str, float]):  # type: ignore[no-untyped-def]
        def ask(c: backend_choice.Candidate) -> float:
            asked.append(c.precision)
            return floor_by_precision[c.precision]

        return ask

    served, measured = backend_choice.decide([default, bf16, ov_int8],
                                             agrees({"int8": 0.95}), 0.9)  # fmt: skip
    assert (served.precision, asked) == ("int8", ["int8"])  # fastest first, bf16 not asked
    assert served.backend == "openvino" and measured[2].agreement == 0.95
    asked.clear()
    served, measured = backend_choice.decide([default, bf16, ov_int8],
                                             agrees({"int8": 0.5, "bf16": 0.97}), 0.9)  # fmt: skip
    assert (served.backend, served.precision, asked) == ("openvino", "bf16", ["int8", "bf16"])
    asked.clear()
    close = candidate("openvino", "bf16", 0.95)  # within MARGIN: noise, not a win
    served, _ = backend_choice.decide([default, close], agrees({}), 0.9)
    assert served == default and asked == []


def test_a_precision_a_backend_cannot_run_is_a_clear_error(settings: Settings) -> None:
    for backend, precision in (("onnx", "bf16"), ("torch", "bf16"), ("openvino", "fp16")):
        with pytest.raises(ValueError, match=f"--precision {precision} runs on the"):
            changed(settings, backend=backend, precision=precision)
    on_cuda = changed(settings, backend="auto", precision="bf16", device="cuda:0")
    with pytest.raises(StartupError, match="bf16 runs on the openvino backend"):
        choose_backend(EngineSettings.of(on_cuda))
    int8_on_cuda = changed(settings, backend="auto", precision="int8", device="cuda:0")
    with pytest.raises(StartupError, match="int8 runs on a CPU"):
        choose_backend(EngineSettings.of(int8_on_cuda))
    asked = changed(settings, backend="auto", precision="bf16", device="cpu")
    if computes_bf16():  # bf16 alone picks the one runtime that has it
        assert choose_backend(EngineSettings.of(asked)) == ("openvino", "bf16")
    else:
        with pytest.raises(StartupError, match="does not compute bf16 on this CPU"):
            choose_backend(EngineSettings.of(asked))


def test_openvino_reports_nothing_home(tmp_path: Path) -> None:
    """`import openvino` alone starts its usage telemetry: a process forked to send an event
    to Google Analytics, and a client id written under ~/intel. A server its user runs on
    their own machine reports nothing; its OpenVINO runs with the telemetry stub."""
    script = (
        "import time\n"
        "from sensevoice_server.engine.backends import openvino\n"
        "openvino.core()\n"
        "time.sleep(0.5)\n"  # the event is sent from a thread pool, after the import
    )
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    assert list(home.iterdir()) == []
