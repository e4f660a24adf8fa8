"""Backends side by side: speed per clip (VAD included), CPU, load time, peak memory.

Run: .venv/bin/python -m bench.bench_backends [--repeat 5] [--ncpu 2]

Each system runs in a worker process of its own (torch in two threads of one process slows
both: docs/FACTS.md, "Threads"), on the full-size random checkpoint (the real model's cost), and the
measurements are interleaved: every round asks each system for the 10 s and the 60 s clip in
turn, so a busy moment of the machine hits them all alike. Systems:
- funasr generate: the reference pipeline (AutoModel with silero VAD, merge_vad), torch;
- engine torch fp32: this service's engine (VAD stage, batcher, torch backend);
- engine onnx fp32 / int8: the same engine on the ONNX export (made once, kept in bench/out);
- engine openvino bf16 / int8: the same engine and export under OpenVINO (its compiled
  model cached under ~/.cache/sensevoice/openvino: a second run loads from there);
- on request: openvino fp32, and "... 1-call" systems: one model call at a time over every
  thread (--model-threads 1) where the engine's default runs two calls at once.
Printed: median seconds per clip and the speed-up over funasr generate, CPU seconds per
clip, load time (the backend from its files; the whole start in brackets), the worker's
resident memory once ready and its peak, and how often each other ONNX system's words
agree with onnx fp32's (random weights: says nothing about accuracy). Plot:
docs/backends.png. --systems picks some (funasr generate is the ratios' base: keep it).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import OUT, ROOT, clip, full_model, print_table

SYSTEMS = ["funasr generate", "engine torch fp32", "engine onnx fp32", "engine onnx int8",
           "engine openvino bf16", "engine openvino int8"]  # fmt: skip
# on request (--systems): OpenVINO's fp32, and the CPU backends with one model call at a
# time over every thread (--model-threads 1) instead of the default two calls at once
MORE_SYSTEMS = ["engine openvino fp32", "engine onnx int8 1-call", "engine openvino bf16 1-call",
                "engine openvino int8 1-call"]  # fmt: skip
CLIPS = (10, 60)


# --- the worker -------------------------------------------------------------------------------
def worker(system: str, ncpu: int, export_dir: str) -> None:
    """Load `system`, then answer `run SECONDS` lines with one JSON line each."""
    started = time.perf_counter()
    from sensevoice_server.logs import configure_logging

    configure_logging("warning")
    sys.stdout = sys.stderr  # funasr prints to stdout; our answers go to the real one below
    answer = sys.__stdout__
    assert answer is not None
    from sensevoice_server.audio import AudioLimits, decode

    audio = {s: decode(clip(s).read_bytes(), AudioLimits(10**9, 7200)) for s in CLIPS}
    model = str(full_model())
    backend_load = 0.0
    if system == "funasr generate":
        from sensevoice_server.testing.reference import reference_model

        automodel = reference_model(model, ncpu)

        def decode_text(samples: Any) -> str:
            out = automodel.generate(input=samples, language="auto", use_itn=True,
                                     batch_size_s=60, merge_vad=True)  # fmt: skip
            return str(out[0]["text"]) if out else ""

        decode_text(audio[10])
    else:
        from sensevoice_server.engine import Engine, EngineSettings
        from sensevoice_server.options import DecodeOptions
        from sensevoice_server.settings import Settings

        _, backend, precision, *calls = system.split()
        settings = Settings(model=model, vad_model="silero-vad", device="cpu", ncpu=ncpu,
                            backend=backend, precision=precision, cache_url="none",
                            model_threads=1 if calls == ["1-call"] else 0,
                            onnx_dir=str(export_dir) if backend != "torch" else None)  # fmt: skip
        engine = Engine(EngineSettings.of(settings))
        engine.start()
        assert engine.wait_ready(3600), engine.failure
        backend_load = engine.workers.backend_load_s

        def decode_text(samples: Any) -> str:
            return engine.submit(samples, DecodeOptions()).result(3600).text

    load_s = time.perf_counter() - started
    print(json.dumps({"load_s": load_s, "backend_load_s": backend_load, "rss_mb": rss_mb()}),
          file=answer, flush=True)  # fmt: skip
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        samples = audio[int(line.split()[1])]
        cpu, wall = time.process_time(), time.perf_counter()
        text = decode_text(samples)
        result = {"seconds": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                  "text": text}  # fmt: skip
        print(json.dumps(result, ensure_ascii=False), file=answer, flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": peak_mb}), file=answer, flush=True)


def rss_mb() -> float:
    """This process's resident memory now (ru_maxrss gives only the peak)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


class Worker:
    def __init__(self, system: str, ncpu: int, export_dir: Path) -> None:
        self.system = system
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_backends", "--worker", system,
             "--ncpu", str(ncpu), "--export-dir", str(export_dir)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.loaded = self._read()

    def run(self, seconds: int) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(f"run {seconds}\n")
        self.process.stdin.flush()
        return self._read()

    def quit(self) -> float:
        assert self.process.stdin is not None
        self.process.stdin.write("quit\n")
        self.process.stdin.flush()
        peak = float(self._read()["peak_rss_mb"])
        self.process.wait(60)
        return peak

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.system}: the worker died")
        result: dict[str, Any] = json.loads(line)
        return result


# --- the parent -------------------------------------------------------------------------------
def ensure_export(model: Path) -> Path:
    from sensevoice_server.engine.backends.onnx import export_in_subprocess

    directory = OUT / "full-onnx"
    if not (directory / "model.int8.onnx").exists():
        print(f"exporting the full-size checkpoint to {directory} (once) ...", flush=True)
        started = time.perf_counter()
        export_in_subprocess(model, directory)
        print(f"  export took {time.perf_counter() - started:.0f} s", flush=True)
    return directory


def agreement(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio()


def plot(medians: dict[str, dict[int, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, seconds in zip(axes, CLIPS, strict=True):
        names = list(medians)
        values = [medians[name][seconds] for name in names]
        colors = ["#888", "#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd"]
        bars = axis.barh(names, values, color=colors[: len(names)])
        axis.bar_label(bars, [f"{v:.2f} s" for v in values], padding=3)
        axis.invert_yaxis()
        axis.set_title(f"{seconds} s clip (VAD included), {os.cpu_count()} cores")
        axis.set_xlabel("seconds (median)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def print_agreement(runs: dict[str, dict[int, list[dict[str, Any]]]]) -> None:
    """onnx fp32's text against torch's (equal), and each other ONNX system's words against
    onnx fp32's (random weights: says nothing about accuracy)."""
    fp32 = runs.get("engine onnx fp32")
    if fp32 is None:
        return
    for s in CLIPS:
        if torch_text := runs.get("engine torch fp32"):
            same = fp32[s][0]["text"] == torch_text[s][0]["text"]
            print(f"\n{s} s: onnx fp32 text {'equals' if same else 'DIFFERS from'} torch's")
        for name, other in runs.items():
            if name.startswith(("engine onnx", "engine openvino")) and other is not fp32:
                shared = agreement(fp32[s][0]["text"], other[s][0]["text"])
                print(f"{s} s: {name} shares {100 * shared:.0f}% of its words with onnx fp32")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ncpu", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--export-dir", type=Path,
                        help="an export of the full-size checkpoint made earlier (default: "
                             "bench/out/full-onnx, made now if missing)")  # fmt: skip
    known = ", ".join(SYSTEMS + MORE_SYSTEMS)
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated: {known}")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.ncpu, args.export_dir)
        return
    model = full_model()
    export_dir = args.export_dir or ensure_export(model)
    workers = []
    for system in args.systems.split(","):  # loaded one after the other: loading is measured
        print(f"loading {system} ...", flush=True)
        workers.append(Worker(system, args.ncpu, export_dir))
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {
        w.system: {s: [] for s in CLIPS} for w in workers
    }
    for round_ in range(args.repeat + 1):  # round 0 warms every path up and is dropped
        for seconds in CLIPS:
            for w in workers:
                result = w.run(seconds)
                if round_:
                    runs[w.system][seconds].append(result)
        print(f"round {round_} done, load average {os.getloadavg()[0]:.2f}", flush=True)
    peaks = {w.system: w.quit() for w in workers}
    medians = {name: {s: statistics.median(r["seconds"] for r in runs[name][s]) for s in CLIPS}
               for name in runs}  # fmt: skip
    base = medians["funasr generate"]
    rows: list[list[object]] = []
    for w in workers:
        name = w.system
        cpu = {s: statistics.median(r["cpu_s"] for r in runs[name][s]) for s in CLIPS}
        rows.append([
            name,
            *(f"{medians[name][s]:.2f} s ({base[s] / medians[name][s]:.2f}x)" for s in CLIPS),
            *(f"{cpu[s]:.1f}" for s in CLIPS),
            f"{w.loaded['backend_load_s']:.1f} s ({w.loaded['load_s']:.0f} s)",
            f"{w.loaded['rss_mb'] / 1024:.2f} GB",
            f"{peaks[name] / 1024:.2f} GB",
        ])  # fmt: skip
    print(f"\nfull-size random checkpoint, CPU ({os.cpu_count()} cores, ncpu={args.ncpu}), "
          f"silero VAD, medians of {args.repeat} interleaved rounds\n")  # fmt: skip
    print_table(["system", "10 s clip", "60 s clip", "CPU s (10 s)", "CPU s (60 s)",
                 "load (whole start)", "RSS when ready", "peak RSS"], rows)  # fmt: skip
    print_agreement(runs)
    if set(runs) == set(SYSTEMS):  # the README's plot shows every system
        path = ROOT / "docs" / "backends.png"
        plot(medians, path)
        print(f"\nplot: {path}")


if __name__ == "__main__":
    main()
