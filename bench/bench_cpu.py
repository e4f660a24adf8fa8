"""The CPU path end to end: the service against bare funasr `generate`, side by side.

Run: .venv/bin/python -m bench.bench_cpu [--repeat 5] [--ncpu 2] [--systems default,torch]

Each system but the reference is the real app (full-size checkpoint, silero VAD, result cache
off) answering `POST /api/transcribe`; the reference is funasr's `generate` with the same VAD
and merge on the same decoded audio, in a process of its own (`--bare-worker`). The apps are
started one after another (each start is timed alone, from the command to `/ready`), then
the rounds interleave: every round asks each system for the 10 s and the 60 s clip in turn,
so a busy moment of the machine hits them all alike; round 0 warms up and is dropped.
Printed per system: the median seconds per clip and the speed-up over bare `generate`, CPU
seconds per audio minute (every thread of the process, read from /proc around the request),
resident memory once ready and at its peak, and seconds to ready. The systems:

- `default`: the service as it starts on a CPU with no settings (onnx int8, two calls at once);
- `one-call`: the same with `--model-threads 1`;
- `torch`: `--backend torch`;
- `openvino`: `--backend openvino` (when it is installed), at its default precision here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import OUT, ROOT, app_env, clip, full_model, print_table
from sensevoice_server.testing.servers import AppProcess, start_app, wait_until

CLIPS = (10, 60)
SYSTEMS = {
    "default": {},
    "one-call": {"model_threads": 1},
    "torch": {"backend": "torch"},
    "openvino": {"backend": "openvino"},
}


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of a process, in MB."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    values = {line.split(":")[0]: int(line.split()[1]) for line in lines if line.startswith("Vm")}
    return {"now": values["VmRSS"] / 1024, "peak": values["VmHWM"] / 1024}


def bare_worker(ncpu: int) -> None:
    """Answers `run SECONDS` lines with the wall and CPU seconds of one generate() call."""
    sys.stdout = sys.stderr
    from sensevoice_server.audio import AudioLimits, decode
    from sensevoice_server.testing.reference import reference_model

    model = reference_model(str(full_model()), ncpu)
    audio = {s: decode(clip(s).read_bytes(), AudioLimits(10**9, 7200)) for s in CLIPS}
    for samples in audio.values():
        model.generate(input=samples, language="auto", use_itn=True, batch_size_s=60,
                       merge_vad=True)  # fmt: skip
    print("ready", file=sys.__stdout__, flush=True)
    for line in sys.stdin:
        samples = audio[int(line.split()[1])]
        wall, cpu = time.perf_counter(), time.process_time()
        model.generate(input=samples, language="auto", use_itn=True, batch_size_s=60,
                       merge_vad=True)  # fmt: skip
        print(json.dumps([time.perf_counter() - wall, time.process_time() - cpu]),
              file=sys.__stdout__, flush=True)  # fmt: skip


@dataclass
class System:
    name: str
    wall: dict[int, list[float]] = field(default_factory=lambda: {s: [] for s in CLIPS})
    cpu: dict[int, list[float]] = field(default_factory=lambda: {s: [] for s in CLIPS})
    ready_s: float = 0.0
    ready_mb: float = 0.0
    peak_mb: float = 0.0


class Bare(System):
    def start(self, ncpu: int) -> None:
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_cpu", "--bare-worker", "--ncpu", str(ncpu)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None and self.process.stdin is not None
        assert self.process.stdout.readline().strip() == "ready"
        self.ready_s = time.perf_counter() - started  # its warm-up calls included
        self.ready_mb = memory_mb(self.process.pid)["now"]

    def run(self, seconds: int, round_: int) -> None:
        assert self.process.stdout is not None and self.process.stdin is not None
        self.process.stdin.write(f"run {seconds}\n")
        self.process.stdin.flush()
        wall, cpu = json.loads(self.process.stdout.readline())
        if round_:
            self.wall[seconds].append(wall)
            self.cpu[seconds].append(cpu)

    def stop(self) -> None:
        self.peak_mb = memory_mb(self.process.pid)["peak"]
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(60)


class Service(System):
    def start(self, ncpu: int, settings: dict[str, Any]) -> None:
        started = time.perf_counter()
        self.app: AppProcess = start_app(app_env(ncpu, **settings, max_upload_mb=500), OUT)
        if not wait_until(self.app.ready_or_exited, 900) or self.app.process.poll() is not None:
            raise RuntimeError(f"{self.name} did not start:\n{self.app.log()[-3000:]}")
        self.ready_s = time.perf_counter() - started
        self.ready_mb = memory_mb(self.app.process.pid)["now"]
        self.http = httpx.Client(timeout=900)
        self.data = {s: clip(s).read_bytes() for s in CLIPS}

    def run(self, seconds: int, round_: int) -> None:
        pid = self.app.process.pid
        cpu, wall = process_cpu(pid), time.perf_counter()
        answer = self.http.post(f"{self.app.url}/api/transcribe",
                                files={"file": ("c.wav", self.data[seconds])})  # fmt: skip
        answer.raise_for_status()
        wall = time.perf_counter() - wall
        time.sleep(0.3)  # anything the request left running is counted too
        if round_:
            self.wall[seconds].append(wall)
            self.cpu[seconds].append(process_cpu(pid) - cpu)

    def stop(self) -> None:
        self.peak_mb = memory_mb(self.app.process.pid)["peak"]
        self.http.close()
        self.app.process.terminate()
        self.app.process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ncpu", type=int, default=2)
    parser.add_argument("--systems", default="default,one-call,torch")
    parser.add_argument("--bare-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_worker:
        bare_worker(args.ncpu)
        return
    bare = Bare("funasr generate (reference)")
    print("starting funasr generate ...", flush=True)
    bare.start(args.ncpu)
    services = []
    for name in args.systems.split(","):
        print(f"starting the service, {name} ...", flush=True)
        service = Service(f"the service, {name}")
        service.start(args.ncpu, SYSTEMS[name])
        services.append(service)
    systems: list[Bare | Service] = [bare, *services]
    try:
        for round_ in range(args.repeat + 1):
            for seconds in CLIPS:
                for system in systems:
                    time.sleep(0.5)  # idle threads settle before the clock starts
                    system.run(seconds, round_)
            print(f"round {round_} done", flush=True)
    finally:
        for system in systems:
            system.stop()
    print(f"\nfull-size checkpoint, silero VAD, ncpu={args.ncpu}, {os.cpu_count()} cores "
          f"({cpu_name()}), medians of {args.repeat} interleaved rounds\n")  # fmt: skip
    reference = {s: statistics.median(bare.wall[s]) for s in CLIPS}
    rows = []
    for system in systems:
        wall = {s: statistics.median(system.wall[s]) for s in CLIPS}
        cpu_per_minute = statistics.median(system.cpu[60])  # the 60 s clip: CPU-s per minute
        rows.append([
            system.name,
            *[f"{wall[s]:.2f} s ({reference[s] / wall[s]:.2f}x)" for s in CLIPS],
            f"{cpu_per_minute:.1f}", f"{system.ready_mb / 1024:.2f} GB",
            f"{system.peak_mb / 1024:.2f} GB", f"{system.ready_s:.1f} s",
        ])  # fmt: skip
    print_table(["system", "10 s clip (vs generate)", "60 s clip (vs generate)",
                 "CPU-s per audio minute", "RSS ready", "RSS peak", "ready after start"],
                rows)  # fmt: skip


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    main()
