"""What every benchmark needs: the full-size random checkpoint, long clips, timing, tables.

The full-size random checkpoint costs exactly what the real SenseVoiceSmall costs to load
and run (same architecture and parameter count), so its timings stand for the real model's.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))

from samples.make_samples import make_long_clip  # noqa: E402
from sensevoice_server.testing.checkpoint import build_checkpoint  # noqa: E402


def full_model() -> Path:
    """The full-size checkpoint, built once (about 40 s) and kept under bench/out/."""
    path = Path(os.environ.get("SENSEVOICE_BENCH_MODEL", OUT / "full-model"))
    if not (path / "model.pt").exists():
        print(f"building the full-size random checkpoint in {path} ...", flush=True)
        build_checkpoint(path, "full")
    return path


def app_env(ncpu: int, backend: str = "auto", **settings: object) -> dict[str, str]:
    """SENSEVOICE_* for the real app on the full-size checkpoint, on CPU, with the result
    cache off and quiet logs unless `settings` say otherwise. With ONNX it runs the export
    bench_backends made, if there is one (else the app makes its own at first start)."""
    env = {"SENSEVOICE_MODEL": str(full_model()), "SENSEVOICE_VAD_MODEL": "silero-vad",
           "SENSEVOICE_DEVICE": "cpu", "SENSEVOICE_NCPU": str(ncpu),
           "SENSEVOICE_BACKEND": backend, "SENSEVOICE_CACHE_URL": "none",
           "SENSEVOICE_LOG_LEVEL": "warning"}  # fmt: skip
    export = OUT / "full-onnx"
    if backend != "torch" and (export / "model.int8.onnx").exists():
        env["SENSEVOICE_ONNX_DIR"] = str(export)
    env.update({f"SENSEVOICE_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def clip(seconds: int) -> Path:
    path = OUT / f"en_{seconds}s.wav"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        make_long_clip(seconds, path)
    return path


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Wall-clock seconds of `repeat` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def print_table(headers: list[str], rows: list[list[object]]) -> str:
    """Print and return a Markdown table (pasted into the README as is)."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]
    table = "\n".join(lines)
    print(table, flush=True)
    return table
