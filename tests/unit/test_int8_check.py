"""The int8 check at start-up: int8 is compared with fp32 on the calibration set before it
is served; a sound export is served as int8, one that disagrees is replaced by fp32 unless
`--precision int8` insists, and the operator's own audio can take the shipped set's place.

On the trained test model: its tokens mean something, so "agrees with fp32" is the question
asked of the real model (the random tiny one agrees too, by luck of its flat logits).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensevoice_server.engine import Engine
from sensevoice_server.engine.backends.onnx import export_in_subprocess
from sensevoice_server.engine.calibration import clip_files
from sensevoice_server.engine.int8_check import AGREEMENT_FLOOR, record_path
from sensevoice_server.options import DecodeOptions
from sensevoice_server.settings import Settings
from sensevoice_server.testing.trained_model import write_trained
from sensevoice_server.testing.wrong_scales import with_wrong_scales
from tests.support.inprocess import started_engine
from tests.support.samples import load


@pytest.fixture(scope="module")
def trained_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The trained model and its export, made as the server makes it (about 15 s)."""
    folder = tmp_path_factory.mktemp("int8-check")
    model = write_trained(folder / "model")
    export_in_subprocess(model, folder / "export")
    return model, folder / "export"


@pytest.fixture(scope="module")
def wrong_export(trained_export: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
                 ) -> Path:  # fmt: skip
    return with_wrong_scales(trained_export[1], tmp_path_factory.mktemp("wrong") / "export")


def engine_on(settings: Settings, model: Path, export: Path, **changes: object) -> Engine:
    return started_engine(settings, model=str(model), backend="onnx", onnx_dir=str(export),
                          **{"precision": "auto", **changes})  # fmt: skip


@pytest.fixture
def closing() -> Iterator[list[Engine]]:
    engines: list[Engine] = []
    yield engines
    for engine in engines:
        engine.close(timeout=30)


def check_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("int8 check")]


def test_a_sound_int8_export_passes_and_is_served(
    settings: Settings, trained_export: tuple[Path, Path], closing: list[Engine],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO)
    closing.append(engine := engine_on(settings, *trained_export))
    assert engine.precision == "int8"
    [line] = check_lines(caplog)
    assert line.startswith("int8 check passed") and line.endswith("serving int8")
    assert f"over {len(clip_files())} calibration clips" in line


def test_wrong_scales_are_caught_and_fp32_is_served_instead(
    settings: Settings, trained_export: tuple[Path, Path], wrong_export: Path,
    closing: list[Engine], caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO)
    model, sound = trained_export
    closing.append(fallback := engine_on(settings, model, wrong_export))
    closing.append(fp32 := engine_on(settings, model, sound, precision="fp32"))
    assert fallback.precision == "fp32"
    [line] = check_lines(caplog)
    assert "serving fp32 instead" in line and "--precision int8" in line
    agreed = float(line.split("on ")[1].split(" %")[0])
    assert agreed < 100 * AGREEMENT_FLOOR
    audio = load("en.wav")
    heard = [e.submit(audio, DecodeOptions()).result(60).text for e in (fallback, fp32)]
    assert heard[0] == heard[1]  # what fp32 hears, not what the broken int8 would


def test_an_explicit_int8_is_kept_with_a_warning(
    settings: Settings, trained_export: tuple[Path, Path], wrong_export: Path,
    closing: list[Engine], caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    closing.append(engine := engine_on(settings, trained_export[0], wrong_export,
                                       precision="int8"))  # fmt: skip
    assert engine.precision == "int8"
    [record] = [r for r in caplog.records if r.getMessage().startswith("int8 check FAILED")]
    assert record.levelno == logging.WARNING
    assert "serving int8 anyway, as --precision int8 asks" in record.getMessage()


def test_the_operators_own_audio_is_the_calibration_set(
    settings: Settings, trained_export: tuple[Path, Path], tmp_path: Path,
    closing: list[Engine], caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO)
    own = tmp_path / "own"
    own.mkdir()
    for name in ("en.wav", "zh.wav", "en.mp3"):
        shutil.copy(Path(__file__).parents[2] / "samples" / name, own / f"mine-{name}")
    (own / "notes.txt").write_text("not audio")
    (own / "broken.wav").write_bytes(b"RIFF not really")
    closing.append(engine_on(settings, *trained_export, calibration_audio=str(own)))
    [line] = check_lines(caplog)
    assert "over 3 calibration clips" in line  # the text file and the broken one skipped


def test_without_calibration_audio_the_check_is_skipped_and_says_so(
    settings: Settings, trained_export: tuple[Path, Path], tmp_path: Path,
    closing: list[Engine], caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    closing.append(engine := engine_on(settings, *trained_export,
                                       calibration_audio=str(tmp_path)))  # fmt: skip
    assert engine.precision == "int8"
    [line] = check_lines(caplog)
    assert line.startswith("int8 check skipped: no calibration audio in")


def test_the_check_runs_once_per_export_and_later_starts_read_its_answer(
    settings: Settings, trained_export: tuple[Path, Path], closing: list[Engine],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The check needs fp32 beside int8 (four times int8's memory) and seconds of decoding,
    so it runs in a child process, once: its answer is recorded, and the next start with the
    same files, clips and onnxruntime reads it and says the same."""
    caplog.set_level(logging.INFO)
    record_path(trained_export[1], None).unlink(missing_ok=True)
    closing.append(engine_on(settings, *trained_export))
    first = [r.getMessage() for r in caplog.records]
    caplog.clear()
    closing.append(engine_on(settings, *trained_export))
    second = [r.getMessage() for r in caplog.records]
    assert "comparing int8 with fp32 once for this export, in a child process" in first
    assert not any("child process" in line for line in second)
    assert check_lines(caplog) == [line for line in first if line.startswith("int8 check")]
