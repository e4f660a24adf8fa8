"""CPU per request: the service process against bare funasr `generate` with the same VAD.

Run: .venv/bin/python -m bench.bench_cpu [--repeat 5] [--ncpu 2] [--seconds 60]

Side by side, interleaved: the real app (torch backend, result cache off) answering
`POST /api/transcribe` for a clip, its CPU time read from /proc before and after each
request (every thread of the process: event loop, decoding, VAD, model, Gradio); and, in a
process of its own, funasr's `generate` with silero VAD and merge_vad on the same decoded
audio (CPU time of that process around the call). The difference is what serving costs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.common import OUT, ROOT, app_env, clip, full_model, print_table
from sensevoice_server.testing.servers import run_app


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_worker(ncpu: int, seconds: int) -> None:
    """Answers `run` lines with the CPU seconds of one generate() call."""
    sys.stdout = sys.stderr
    from sensevoice_server.audio import AudioLimits, decode
    from sensevoice_server.testing.reference import reference_model

    model = reference_model(str(full_model()), ncpu)
    samples = decode(clip(seconds).read_bytes(), AudioLimits(10**9, 7200))
    model.generate(input=samples, language="auto", use_itn=True, batch_size_s=60, merge_vad=True)
    print("ready", file=sys.__stdout__, flush=True)
    for _ in sys.stdin:
        started = time.process_time()
        model.generate(input=samples, language="auto", use_itn=True, batch_size_s=60,
                       merge_vad=True)  # fmt: skip
        print(json.dumps(time.process_time() - started), file=sys.__stdout__, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ncpu", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--bare-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_worker:
        bare_worker(args.ncpu, args.seconds)
        return
    data = clip(args.seconds).read_bytes()
    bare = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_cpu", "--bare-worker", "--ncpu", str(args.ncpu),
         "--seconds", str(args.seconds)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert bare.stdout is not None and bare.stdin is not None
    assert bare.stdout.readline().strip() == "ready"
    env = app_env(args.ncpu, "torch", max_upload_mb=500)
    service, generate = [], []
    with run_app(env, OUT, ready_timeout=900) as app, httpx.Client(timeout=900) as http:
        for round_ in range(args.repeat + 1):  # round 0 warms up and is dropped
            time.sleep(2)  # idle threads settle before the clock starts
            before = process_cpu(app.process.pid)
            http.post(
                f"{app.url}/api/transcribe", files={"file": ("c.wav", data)}
            ).raise_for_status()
            time.sleep(0.5)  # anything the request left running is counted too
            used = process_cpu(app.process.pid) - before
            time.sleep(2)
            bare.stdin.write("run\n")
            bare.stdin.flush()
            bare_used = float(json.loads(bare.stdout.readline()))
            if round_:
                service.append(used)
                generate.append(bare_used)
            print(f"round {round_}: service {used:.2f} s, generate {bare_used:.2f} s CPU",
                  flush=True)  # fmt: skip
    bare.stdin.close()
    bare.wait(60)
    s, g = statistics.median(service), statistics.median(generate)
    print(f"\n{args.seconds} s clip, full-size checkpoint, torch, ncpu={args.ncpu}, "
          f"{os.cpu_count()} cores, medians of {args.repeat}\n")  # fmt: skip
    rows = [
        ["bare funasr generate (same VAD)", f"{g:.2f}", "-"],
        ["the service (POST /api/transcribe)", f"{s:.2f}", f"{(s / g - 1) * 100:+.1f}%"],
    ]
    print_table(["", "CPU seconds per request", "vs bare generate"], rows)


if __name__ == "__main__":
    main()
