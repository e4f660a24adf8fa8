"""GPU benchmark: the service on torch fp16 with its batcher, beside the published anchors.

Run (a CUDA machine; about 4-5 min, `--quick` about 3):
    python -m bench.bench_gpu [--quick] [--device cuda:0] [--clients 1,4,16,64]
                              [--streams 8,32,64] [--no-bare]
Smoke check on a CPU (proves everything but the CUDA part; a tiny checkpoint is enough):
    SENSEVOICE_BENCH_MODEL=/tmp/sv-tiny .venv/bin/python -m bench.bench_gpu --device cpu \
        --latency-requests 4 --clients 1,2 --min-requests 2 --streams 2 --stream-seconds 8

The real app (`python app_sensevoice.py`, the full-size random checkpoint, result cache off,
silero VAD) runs on `--device` with the torch backend at `--precision` (fp16 on CUDA: the
engine's batcher then puts up to 16 segments in one model call). Measured, in this order:

1. bare funasr `generate` on the same device (fp32, its default), in a process of its own
   before the app starts: the reference row (`--no-bare` skips it);
2. latency: one client posts `--latency-requests` distinct 10 s clips one after the other;
   median and p90 of the round trip, and the server's own processing time per clip;
3. throughput: audio seconds per wall second from 1, 4, 16 and 64 concurrent clients, each
   level on clips no earlier level sent (bench_throughput's fresh_clips), at least
   `--min-requests` and twice the clients per level;
4. live streams: 8, 32 and 64 WebSocket streams at real time (bench_streaming's
   run_streams), with its "keeps up" rule (no stream ended, finals do not drift, p95 <= 1.5 s).

RTF (seconds of compute per second of audio) is printed for each, beside the published
anchors for SenseVoiceSmall (PyTorch on an H100: 0.0059; Triton on a V100: 0.0019), which
were measured with other audio and harnesses: read them as orders of magnitude.

On a GPU machine with no network (as the workplace lends: torch, numpy, scipy, httpx ...
installed, the service's other packages not), pack those here first, where pip reaches the
registry: `bash bench/gpu_check.sh pack` writes bench/out/gpu-site.tar.xz (36 MB: 100 MB of
wheels would not fit the 64 MiB a call carries). The one device command is then
    bash bench/gpu_check.sh run        (add --quick for about 3 min)
with carry ["bench/out/gpu-site.tar.xz"] and timeout_s 480; it prints the tables last and
leaves them, and the app's log, in $OUT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench.bench_streaming import LIMITS, PATHS, cpu_seconds, run_streams, summarise
from bench.bench_throughput import fresh_clips, requests_per_second
from bench.common import OUT, ROOT, app_env, clip, full_model, percentile, print_table
from sensevoice_server.audio import decode
from sensevoice_server.testing.servers import AppProcess, run_app

ANCHORS = (
    ("SenseVoiceSmall, PyTorch, H100 (published)", 0.0059),
    ("SenseVoiceSmall, Triton, V100 (published)", 0.0019),
)
CLIP_S = 10
LEVELS = {  # --quick and the default; any flag given overrides its entry
    "default": {"latency_requests": 20, "clients": "1,4,16,64", "min_requests": 16,
                "streams": "8,32,64", "stream_seconds": 30, "bare_repeat": 5},
    "quick": {"latency_requests": 10, "clients": "1,16,64", "min_requests": 16,
              "streams": "16,64", "stream_seconds": 20, "bare_repeat": 3},
}  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer levels: about 3 min")
    parser.add_argument("--device", default="cuda:0", help="cuda:N, or cpu for a smoke check")
    parser.add_argument("--precision", default="auto", help="auto: fp16 on CUDA, fp32 on a CPU")
    parser.add_argument("--ncpu", type=int, default=min(os.cpu_count() or 1, 8))
    parser.add_argument("--batch-max-items", type=int, default=0, help="0: the app's default")
    parser.add_argument("--batch-wait-ms", type=float, default=None, help="default: the app's")
    parser.add_argument("--latency-requests", type=int)
    parser.add_argument("--clients", help="comma-separated concurrency levels")
    parser.add_argument("--min-requests", type=int, help="least requests per level")
    parser.add_argument("--streams", help="comma-separated live stream counts ('' skips)")
    parser.add_argument("--stream-seconds", type=int, help="audio per live stream")
    parser.add_argument("--bare-repeat", type=int, help="timed generate() calls")
    parser.add_argument("--no-bare", action="store_true", help="skip bare funasr generate")
    parser.add_argument("--bare-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name, value in LEVELS["quick" if args.quick else "default"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.precision == "auto":
        args.precision = "fp16" if args.device.startswith("cuda") else "fp32"
    return args


def rtf(seconds: float, audio_s: float = CLIP_S) -> str:
    return f"{seconds / audio_s:.4f}"


# --- 1. bare funasr generate ------------------------------------------------------------


def bare_worker(device: str, ncpu: int, repeat: int) -> None:
    """Print one JSON line: the wall seconds of `repeat` generate() calls on the 10 s clip.

    The arguments are reference_model()'s (sensevoice_server/testing/reference.py), which
    pins the CPU; only the device differs here."""
    from funasr import AutoModel

    model = AutoModel(model=str(full_model()), vad_model="silero-vad",
                      vad_kwargs={"max_single_segment_time": 30000}, merge_length_s=15,
                      frontend_conf={"dither": 0.0}, device=device, ncpu=ncpu,
                      disable_update=True, disable_pbar=True, disable_log=True)  # fmt: skip
    samples = decode(clip(CLIP_S).read_bytes(), LIMITS)

    def run() -> float:
        started = time.perf_counter()
        model.generate(input=samples, language="auto", use_itn=True, batch_size_s=60,
                       merge_vad=True)  # fmt: skip
        if device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        return time.perf_counter() - started

    for _ in range(2):  # warm-up: kernels chosen, caches filled
        run()
    print(json.dumps([run() for _ in range(repeat)]), flush=True)


def measure_bare(args: argparse.Namespace) -> list[object]:
    """The reference row; a failure there (its log is above) leaves the service's rows."""
    name = "funasr generate, fp32 (reference)"
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_gpu", "--bare-worker", "--device", args.device,
         "--ncpu", str(args.ncpu), "--bare-repeat", str(args.bare_repeat)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    if done.returncode:
        return [name, f"failed (exit {done.returncode})", "-"]
    median = statistics.median(json.loads(done.stdout.strip().splitlines()[-1]))
    row: list[object] = [name, f"{median * 1000:.0f} ms", rtf(median)]
    print(f"  {row}", flush=True)
    return row


# --- 2. latency -------------------------------------------------------------------------


def measure_latency(url: str, clips: list[bytes]) -> tuple[list[float], list[float]]:
    """Round trip and the server's processing time (seconds) of each clip, one at a time."""
    walls, server = [], []
    with httpx.Client(timeout=300) as http:
        for data in clips:
            started = time.perf_counter()
            answer = http.post(f"{url}/api/transcribe", files={"file": ("c.wav", data)})
            answer.raise_for_status()
            walls.append(time.perf_counter() - started)
            server.append(answer.json()["processing_ms"] / 1000)
    return walls, server


def warm_up(url: str, clips: list[bytes]) -> None:
    """Two clips alone, then all at once: first kernels and batch shapes out of the numbers."""
    measure_latency(url, clips[:2])
    with ThreadPoolExecutor(len(clips)) as pool:
        list(pool.map(lambda data: measure_latency(url, [data]), clips))


# --- 4. live streams --------------------------------------------------------------------


def measure_streams(app: AppProcess, seconds: int, counts: list[int]) -> list[list[object]]:
    samples = decode(clip(seconds).read_bytes(), LIMITS)
    url = app.url.replace("http://", "ws://") + PATHS["ws"]
    rows = []
    for count in counts:
        before, started = cpu_seconds(app.process.pid), time.monotonic()
        runs = asyncio.run(run_streams(url, samples, count))
        cores = (cpu_seconds(app.process.pid) - before) / (time.monotonic() - started)
        rows.append(summarise(f"{count} stream{'s' * (count > 1)}", runs, cores))
        print(f"  {rows[-1]}", flush=True)
    return rows


# --- the machine ------------------------------------------------------------------------


def gpu_name() -> str:
    if not shutil.which("nvidia-smi"):
        return "no nvidia-smi"
    query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
    return subprocess.run(query, capture_output=True, text=True).stdout.strip() or "unknown GPU"


def gpu_memory_mb(pid: int) -> str:
    """The app's GPU memory as nvidia-smi reports it (torch's cache included)."""
    if not shutil.which("nvidia-smi"):
        return "-"
    query = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
    for line in subprocess.run(query, capture_output=True, text=True).stdout.splitlines():
        owner, _, used = line.partition(",")
        if owner.strip() == str(pid):
            return f"{used.strip()} MiB"
    return "-"


def main() -> None:
    args = parse_args()
    if args.bare_worker:
        bare_worker(args.device, args.ncpu, args.bare_repeat)
        return
    started = time.monotonic()
    levels = [int(n) for n in args.clients.split(",")]
    counts = [int(n) for n in args.streams.split(",") if n]
    print(f"device {args.device} ({gpu_name()}), torch {args.precision}, ncpu={args.ncpu}; "
          f"model {full_model()}", flush=True)  # fmt: skip
    rows = [] if args.no_bare else [measure_bare(args)]
    settings: dict[str, object] = {
        "device": args.device, "precision": args.precision, "queue_size": 2 * max(levels) + 16,
        "live_max_sessions": max(counts, default=1) + 1, "batch_max_items": args.batch_max_items,
    }  # fmt: skip
    if args.batch_wait_ms is not None:
        settings["batch_wait_ms"] = args.batch_wait_ms
    with run_app(app_env(args.ncpu, "torch", **settings), OUT, ready_timeout=900) as app:
        ready = httpx.get(f"{app.url}/ready", timeout=10).json()
        print(f"app ready after {time.monotonic() - started:.0f} s: {ready}", flush=True)
        rows += measure_service(app.url, args, levels)
        print(f"\n{args.device} ({gpu_name()}); the app: {ready.get('backend')} "
              f"{ready.get('precision')} on {ready.get('device')}, ncpu={args.ncpu}, "
              f"batch_max_items={args.batch_max_items or 'default'}, "
              f"GPU memory {gpu_memory_mb(app.process.pid)}; checkpoint {full_model()}, "
              f"silero VAD, cache off, {CLIP_S} s clips\n")  # fmt: skip
        print_table(["system", f"{CLIP_S} s clip / throughput", "RTF"],
                    rows + [[name, "-", f"{value:.4f}"] for name, value in ANCHORS])  # fmt: skip
        if counts:
            print(f"\nlive streams, {args.stream_seconds} s of speech each at real time "
                  "(WebSocket /ws/transcribe)", flush=True)  # fmt: skip
            print_streams(measure_streams(app, args.stream_seconds, counts))
    print(f"\nwhole run: {time.monotonic() - started:.0f} s")


def measure_service(url: str, args: argparse.Namespace, levels: list[int]) -> list[list[object]]:
    """The latency row, then a throughput row per level, each on clips never sent before."""
    per_level = [max(args.min_requests, 2 * n) for n in levels]
    warm = min(16, max(levels))
    clips = fresh_clips(warm + args.latency_requests + sum(per_level), CLIP_S)
    warm_up(url, clips[:warm])
    rows = [latency_row(*measure_latency(url, clips[warm : warm + args.latency_requests]))]
    print(f"  {rows[-1]}", flush=True)
    offset, one = warm + args.latency_requests, 0.0
    for clients, count in zip(levels, per_level, strict=True):
        rate = requests_per_second(url, clips[offset : offset + count], clients) * CLIP_S
        offset, one = offset + count, one or rate
        rows.append([f"the service, {clients} client{'s' * (clients > 1)} ({count} clips)",
                     f"{rate:.0f} audio s/s ({rate / one:.2f}x one client's)",
                     f"{1 / rate:.4f}"])  # fmt: skip
        print(f"  {rows[-1]}", flush=True)
    return rows


def latency_row(walls: list[float], server: list[float]) -> list[object]:
    median = statistics.median(walls)
    return [
        f"the service, torch, one client ({len(walls)} clips)",
        f"{median * 1000:.0f} ms (p90 {percentile(walls, 90) * 1000:.0f} ms; server "
        f"{statistics.median(server) * 1000:.0f} ms)",
        f"{rtf(median)} (server {rtf(statistics.median(server))})",
    ]


def print_streams(rows: list[list[object]]) -> None:
    print()
    print_table(["streams", "finals", "ended early", "latency p50", "latency p95",
                 "latency max", "partial interval p50", "partials per final",
                 "server CPU (cores)", "keeps up"], rows)  # fmt: skip
    kept = [str(row[0]) for row in rows if row[-1] == "yes"]
    print(f"\nmost streams kept up: {kept[-1] if kept else 'none of those tried'}")


if __name__ == "__main__":
    main()
