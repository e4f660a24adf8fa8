"""Before serving int8, check it against fp32 on the calibration set, and say what it found.

Static int8 was measured on a small trained proxy (README, accuracy table), not on the
model a user runs, and its activation scales come from a few synthetic clips: a checkpoint
whose activations fall outside them, or a quantiser change, could make int8 transcripts
worse than fp32 with nothing to tell. So the first time the server loads an int8 export it
decodes the calibration clips (engine/calibration.py) with both and compares the token
sequences (tags included), in a child process whose answer is recorded for later starts.
Below `AGREEMENT_FLOOR` it serves fp32 when int8 was only the default, and
warns but keeps int8 when `--precision int8` asked for it. One line at start-up either way.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from sensevoice_server.edit_distance import edit_distance
from sensevoice_server.engine import calibration
from sensevoice_server.engine.backends import Backend, Item
from sensevoice_server.engine.backends.onnx import OnnxBackend
from sensevoice_server.engine.cli_subprocess import run_cli
from sensevoice_server.engine.config import EngineSettings
from sensevoice_server.engine.export import FILES
from sensevoice_server.engine.features import features
from sensevoice_server.engine.fingerprint import fingerprint, identify
from sensevoice_server.engine.tokens import greedy
from sensevoice_server.errors import ModelLoadError
from sensevoice_server.user_dirs import cache_dir

log = logging.getLogger(__name__)

AGREEMENT_FLOOR = 0.90
"""Token agreement with fp32 below which int8 is not served by default. Measured on the
trained test model (docs/FACTS.md, "ONNX and onnxruntime"): sound static and dynamic int8
agree on 97.5 % and cost at most 0.2 points of WER; int8 with scales made wrong on purpose
agreed on 88.5 % at +0.7 points and on 86.6 % at +2.2. The floor keeps the first kind and
refuses before the loss passes a point."""


@dataclass(frozen=True)
class Agreement:
    clips: int
    tokens: int  # fp32's tokens over all clips
    edits: int  # edits that turn fp32's tokens into int8's
    seconds: float  # what the check took

    @property
    def ratio(self) -> float:
        return 1.0 - self.edits / self.tokens if self.tokens else 1.0

    def describe(self) -> str:
        return (f"int8 agrees with fp32 on {100 * self.ratio:.1f} % of {self.tokens} tokens "
                f"over {self.clips} calibration clips (floor {100 * AGREEMENT_FLOOR:.0f} %, "
                f"checked in {self.seconds:.1f} s)")  # fmt: skip


def agreement(fp32: Backend, int8: Backend, directory: str | None = None) -> Agreement:
    """Each clip decoded whole (language auto, ITN on) by both; edits summed over clips."""
    started = time.perf_counter()
    clips = tokens = edits = 0
    for clip in calibration.clips(directory):
        item = Item(features(clip.samples, fp32.cmvn), "auto", True)
        reference, candidate = (
            [t.id for t in greedy(backend.logits([item])[0], backend.vocabulary,
                                  logprobs=False)[1]]
            for backend in (fp32, int8)
        )  # fmt: skip
        clips, tokens = clips + 1, tokens + len(reference)
        edits += edit_distance(reference, candidate)
    return Agreement(clips, tokens, edits, time.perf_counter() - started)


def checked(int8: OnnxBackend, settings: EngineSettings) -> OnnxBackend:
    """`int8`, or the fp32 model beside it when int8 fails the check and was not asked for."""
    fp32_file = int8.model_file.with_name(FILES["fp32"])
    if not fp32_file.exists():  # e.g. a sherpa-onnx download that ships int8 alone
        log.warning("int8 check skipped: no %s beside %s to compare with", fp32_file.name,
                    int8.model_file)  # fmt: skip
        return int8
    result = recorded_or_run(int8.model_file.parent, settings)
    if not result.clips:
        log.warning("int8 check skipped: no calibration audio in %s (--calibration-audio DIR)",
                    settings.calibration_audio or calibration.DEFAULT_DIR)  # fmt: skip
        return int8
    if result.ratio >= AGREEMENT_FLOOR:
        log.info("int8 check passed: %s: serving int8", result.describe())
        return int8
    if settings.precision == "int8":
        log.warning("int8 check FAILED: %s: serving int8 anyway, as --precision int8 asks; "
                    "expect transcripts worse than fp32's", result.describe())  # fmt: skip
        return int8
    log.warning("int8 check failed: %s: serving fp32 instead (as accurate, about half as "
                "fast); --precision int8 would insist", result.describe())  # fmt: skip
    return OnnxBackend(fp32_file, "fp32", settings.ncpu)


# --- the check's result, recorded ------------------------------------------------------------
# The check needs the fp32 model too (about four times int8's memory) and seconds of
# decoding; its answer only changes with the two files, the clips and onnxruntime. So it
# runs once, in a child process (`python -m sensevoice_server.cli int8-check`), which records
# the answer; every later start reads it, and the serving process never holds fp32.


def record_path(export_dir: Path, calibration_audio: str | None) -> Path:
    """Where the check of these files on these clips with this onnxruntime is recorded."""
    import onnxruntime

    key = fingerprint({
        "int8": identify(str(export_dir / FILES["int8"])),
        "fp32": identify(str(export_dir / FILES["fp32"])),
        "clips": identify(str(calibration_audio or calibration.DEFAULT_DIR)),
        "onnxruntime": onnxruntime.__version__,
    })  # fmt: skip
    return cache_dir() / "int8-checks" / f"{key}.json"


def run_and_record(export_dir: Path, calibration_audio: str | None, ncpu: int) -> Agreement:
    """The check itself (the int8-check command runs this), its answer recorded."""
    fp32 = OnnxBackend(export_dir / FILES["fp32"], "fp32", ncpu)
    int8 = OnnxBackend(export_dir / FILES["int8"], "int8", ncpu)
    result = agreement(fp32, int8, calibration_audio)
    path = record_path(export_dir, calibration_audio)
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_suffix(f".{os.getpid()}.tmp")
    aside.write_text(json.dumps(dataclasses.asdict(result)))
    aside.replace(path)  # replicas checking at once each write whole files
    return result


def recorded_or_run(export_dir: Path, settings: EngineSettings) -> Agreement:
    path = record_path(export_dir, settings.calibration_audio)
    if not path.exists():
        log.info("comparing int8 with fp32 once for this export, in a child process")
        arguments = ["int8-check", str(export_dir), "--ncpu", str(settings.ncpu)]
        if settings.calibration_audio:
            arguments += ["--calibration-audio", settings.calibration_audio]
        status = run_cli(*arguments, label="int8-check")
        if status != 0 or not path.exists():
            raise ModelLoadError(
                f"{export_dir}: the int8 check failed (exit {status}); run python -m "
                f"sensevoice_server.cli int8-check {export_dir} to see why, or --precision fp32"
            )
    try:
        return Agreement(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as error:
        path.unlink(missing_ok=True)  # damaged: checked again at the next start
        raise ModelLoadError(f"{path}: unreadable int8 check record ({error})") from error
