"""Before serving int8, check it against fp32 on the calibration set, and say what it found.

Static int8 was measured on a small trained proxy (README, accuracy table), not on the
model a user runs, and its activation scales come from a few synthetic clips: a checkpoint
whose activations fall outside them, or a quantiser change, could make int8 transcripts
worse than fp32 with nothing to tell. So whenever the server loads an int8 export it decodes
the calibration clips (engine/calibration.py) with both and compares the token sequences
(tags included). Below `AGREEMENT_FLOOR` it serves fp32 when int8 was only the default, and
warns but keeps int8 when `--precision int8` asked for it. One line at start-up either way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sensevoice_server.edit_distance import edit_distance
from sensevoice_server.engine import calibration
from sensevoice_server.engine.backends import Backend, Item
from sensevoice_server.engine.backends.onnx import OnnxBackend
from sensevoice_server.engine.config import EngineSettings
from sensevoice_server.engine.export import FILES
from sensevoice_server.engine.features import features
from sensevoice_server.engine.tokens import greedy

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
    fp32 = OnnxBackend(fp32_file, "fp32", settings.ncpu)
    result = agreement(fp32, int8, settings.calibration_audio)
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
    return fp32
