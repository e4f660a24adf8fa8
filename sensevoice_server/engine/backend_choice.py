"""On a CPU, `--backend auto` serves the runtime that is fastest on this machine, measured once.

Which runtime wins depends on the CPU: OpenVINO's bf16 needs AMX (or AVX512_BF16) to be fast
at all, and onnxruntime's int8 and OpenVINO's int8 trade places with the core count, the
instruction set and how many model calls run at once. So rather than guess, the first start
with OpenVINO installed times each candidate on this machine:
- onnxruntime int8 (the default: it stays the choice wherever it wins),
- OpenVINO bf16 (only where OpenVINO says the CPU computes bf16),
- OpenVINO int8,
each loaded as the engine serves it (its model calls at once, its threads per call) and
decoding the same segments of fixed features, as many at once as the engine would. Those
that need at most `MARGIN` of the default's time are then checked against fp32 on the
calibration clips (int8_check.agreement), fastest first: the first whose tokens agree with
fp32's on at least `AGREEMENT_FLOOR` is served, else the default (whose own agreement the
int8 check at load looks after).

The measurement runs in a child process (`python -m sensevoice_server.cli choose-backend`),
one candidate loaded at a time: the serving process never holds the candidates it does not
serve, nor their memory. Its answer is recorded under ~/.cache/sensevoice/backend-choices/,
keyed by what could change it (the export's files, the CPU, the threads, the runtimes'
versions, the calibration clips); every later start reads it, and measures nothing. Without
OpenVINO installed there is one candidate, and nothing is measured.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np

from sensevoice_server.engine import calibration
from sensevoice_server.engine.backends import Backend, Item
from sensevoice_server.engine.backends import openvino as ov_backend
from sensevoice_server.engine.cli_subprocess import run_cli
from sensevoice_server.engine.config import EngineSettings
from sensevoice_server.engine.cpu import cpu_model
from sensevoice_server.engine.export import FILES
from sensevoice_server.engine.features import FEATURE_DIM
from sensevoice_server.engine.fingerprint import fingerprint, identify
from sensevoice_server.user_dirs import cache_dir

log = logging.getLogger(__name__)

DEFAULT = ("onnx", "int8")
MARGIN = 0.9
"""Another runtime takes the default's place only when it needs at most this share of the
default's time: timings on a shared machine wander by a few per cent between runs."""
TIMED_SECONDS = (4, 8, 12, 12, 8, 4)  # segments of audio, as features, as the VAD cuts them
ROUNDS = 2  # the faster of two rounds: a busy moment of the machine counts once at most
FRAMES_PER_SECOND = 100 / 6  # 10 ms frames, six stacked per model frame


@dataclass(frozen=True)
class Candidate:
    backend: str
    precision: str
    seconds: float  # for one round of TIMED_SECONDS
    agreement: float | None  # share of fp32's tokens it gives; None: not checked here
    load_s: float

    def describe(self) -> str:
        agrees = "" if self.agreement is None else f", agrees {100 * self.agreement:.1f} %"
        return f"{self.backend} {self.precision} {self.seconds:.2f} s{agrees}"


@dataclass(frozen=True)
class Choice:
    backend: str
    precision: str
    candidates: list[Candidate]
    measured_s: float

    def describe(self) -> str:
        measured = ", ".join(c.describe() for c in self.candidates)
        return (f"{self.backend} {self.precision}; {sum(TIMED_SECONDS)} s of features took "
                f"{measured} (agreement with fp32 where it was checked)")  # fmt: skip


@dataclass(frozen=True)
class Threads:
    """How the engine runs a CPU backend: `calls` model calls at once over `ncpu` threads."""

    ncpu: int
    calls: int

    @classmethod
    def of(cls, settings: EngineSettings) -> Threads:
        # every candidate takes concurrent calls (config.py, CONCURRENT_BACKENDS)
        return cls(settings.ncpu, settings.calls_at_once(DEFAULT[0]))


def applies(settings: EngineSettings) -> bool:
    """Whether `settings` leave the runtime to a measurement: auto on a CPU, with more than
    one candidate installed."""
    return (settings.backend == "auto" and settings.precision == "auto"
            and not settings.device.startswith("cuda") and ov_backend.available())  # fmt: skip


def candidates() -> list[tuple[str, str]]:
    bf16 = [("openvino", "bf16")] if ov_backend.computes_bf16() else []
    return [DEFAULT, *bf16, ("openvino", "int8")]


def chosen(settings: EngineSettings, export_dir: Path) -> tuple[str, str]:
    """(backend, precision) recorded for this machine and export, measured now if none is.
    A measurement that fails leaves the default in place (a warning says why)."""
    threads = Threads.of(settings)
    path = record_path(export_dir, threads, settings.calibration_audio)
    path.parent.mkdir(parents=True, exist_ok=True)
    # replicas on one machine share the record: one measures, the others wait for it (and
    # would only disturb its timings if they measured at the same time)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            log.info("backend choice: timing the CPU runtimes once on this machine (a child "
                     "process; recorded in %s)", path)  # fmt: skip
            arguments = ["choose-backend", str(export_dir), "--ncpu", str(threads.ncpu),
                         "--calls", str(threads.calls)]  # fmt: skip
            if settings.calibration_audio:
                arguments += ["--calibration-audio", settings.calibration_audio]
            status = run_cli(*arguments, label="backend choice")
            if status != 0 or not path.exists():
                log.warning("backend choice failed (exit %d; python -m sensevoice_server.cli "
                            "choose-backend %s shows why): serving the default, onnx int8",
                            status, export_dir)  # fmt: skip
                return DEFAULT
    choice = read(path)
    if choice is None:
        return DEFAULT
    log.info("backend choice (recorded in %s): %s", path, choice.describe())
    return choice.backend, choice.precision


def read(path: Path) -> Choice | None:
    """The recorded choice; None (and the record removed, to be measured again at the next
    start) when it cannot be read."""
    try:
        fields = json.loads(path.read_text())
        fields["candidates"] = [Candidate(**c) for c in fields["candidates"]]
        return Choice(**fields)
    except (OSError, ValueError, TypeError, KeyError) as error:
        log.warning("backend choice: unreadable record %s (%s): serving the default", path,
                    error)  # fmt: skip
        path.unlink(missing_ok=True)
        return None


def record_path(export_dir: Path, threads: Threads, calibration_audio: str | None) -> Path:
    """Where the choice for this export on this machine is recorded (nothing here imports
    OpenVINO: a process that serves onnxruntime never loads it)."""
    key = fingerprint({
        "fp32": identify(str(export_dir / FILES["fp32"])),
        "int8": identify(str(export_dir / FILES["int8"])),
        "cpu": cpu_model(),
        "ncpu": threads.ncpu,
        "calls": threads.calls,
        "onnxruntime": version("onnxruntime"),
        "openvino": version("openvino"),
        "clips": identify(str(calibration_audio or calibration.DEFAULT_DIR)),
    })  # fmt: skip
    return cache_dir() / "backend-choices" / f"{key}.json"


# --- the measurement (the child process runs this) ---------------------------------------------
def measure_and_record(
    export_dir: Path, threads: Threads, calibration_audio: str | None = None
) -> Choice:
    """Each candidate loaded and timed in turn; then those fast enough to displace the
    default checked against fp32, fastest first (`decide`). The answer recorded."""
    from sensevoice_server.engine.backends.onnx import OnnxBackend
    from sensevoice_server.engine.int8_check import AGREEMENT_FLOOR, agreement

    started = time.perf_counter()
    measured = [measure(export_dir, backend, precision, threads)
                for backend, precision in candidates()]  # fmt: skip
    fp32: Backend | None = None

    def agrees(candidate: Candidate) -> float:
        nonlocal fp32
        fp32 = fp32 or OnnxBackend(export_dir / FILES["fp32"], "fp32", threads.ncpu)
        loaded = load(export_dir, candidate.backend, candidate.precision, threads)
        result = agreement(fp32, loaded, calibration_audio)
        log.info("%s %s agrees with fp32 on %.1f %% of %d tokens (floor %.0f %%)",
                 candidate.backend, candidate.precision, 100 * result.ratio, result.tokens,
                 100 * AGREEMENT_FLOOR)  # fmt: skip
        return result.ratio

    served, measured = decide(measured, agrees, AGREEMENT_FLOOR)
    choice = Choice(served.backend, served.precision, measured, time.perf_counter() - started)
    for other in measured:  # OpenVINO's compilations of the others: a GB of disk for bf16
        if other.backend == "openvino" and other != served:
            compiled = model_file(export_dir, other.precision)
            shutil.rmtree(ov_backend.compiled_cache(compiled, other.precision), True)
    path = record_path(export_dir, threads, calibration_audio)
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_suffix(f".{os.getpid()}.tmp")
    aside.write_text(json.dumps(dataclasses.asdict(choice)))
    aside.replace(path)
    return choice


def measure(export_dir: Path, backend: str, precision: str, threads: Threads) -> Candidate:
    loading = time.perf_counter()
    loaded = load(export_dir, backend, precision, threads)
    load_s = time.perf_counter() - loading
    seconds = timed(loaded, threads.calls)
    log.info("%s %s: %.3f s for %d s of features, %d at once (loaded in %.1f s)", backend,
             precision, seconds, sum(TIMED_SECONDS), threads.calls, load_s)  # fmt: skip
    return Candidate(backend, precision, seconds, None, load_s)


def decide(
    measured: list[Candidate], agrees: Callable[[Candidate], float], floor: float
) -> tuple[Candidate, list[Candidate]]:
    """The candidate to serve, and `measured` with the agreements found on the way: the
    fastest of those that need at most `MARGIN` of the default's time and agree with fp32
    on at least `floor` (asked of `agrees` fastest first, until one does), else the
    default (the first of `measured`)."""
    default, *others = measured
    contenders = sorted((c for c in others if c.seconds <= MARGIN * default.seconds),
                        key=lambda c: c.seconds)  # fmt: skip
    for contender in contenders:
        checked = dataclasses.replace(contender, agreement=agrees(contender))
        measured = [checked if c == contender else c for c in measured]
        if checked.agreement is not None and checked.agreement >= floor:
            return checked, measured
    return default, measured


def model_file(export_dir: Path, precision: str) -> Path:
    return export_dir / FILES["int8" if precision == "int8" else "fp32"]


def load(export_dir: Path, backend: str, precision: str, threads: Threads) -> Backend:
    """`backend` as the engine loads it (backends' for_settings)."""
    file = model_file(export_dir, precision)
    if backend == "openvino":
        return ov_backend.OpenVinoBackend(file, precision, threads.ncpu, threads.calls)
    from sensevoice_server.engine.backends.onnx import OnnxBackend

    return OnnxBackend(file, precision, max(1, threads.ncpu // threads.calls))


def timed(backend: Backend, calls: int) -> float:
    """Seconds to decode TIMED_SECONDS, one segment per call and `calls` calls at once (as
    the engine's model threads would), the faster of ROUNDS rounds after one that pays
    the one-time costs (each length's first call)."""
    rng = np.random.default_rng(0)  # after CMVN, features are about standard normal
    items = [Item(rng.standard_normal((round(s * FRAMES_PER_SECOND), FEATURE_DIM),
                                      dtype=np.float32), "auto", True)
             for s in TIMED_SECONDS]  # fmt: skip
    rounds = []
    with ThreadPoolExecutor(calls) as pool:
        for _ in range(ROUNDS + 1):
            started = time.perf_counter()
            list(pool.map(lambda item: backend.logits([item]), items))
            rounds.append(time.perf_counter() - started)
    return min(rounds[1:])
