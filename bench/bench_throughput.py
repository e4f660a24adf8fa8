"""Throughput of fresh requests: one at a time against eight at once, per backend.

Run: .venv/bin/python -m bench.bench_throughput [--requests 16] [--ncpu 2] [--seconds 10]

The real app (full-size checkpoint, result cache off) answers `POST /api/transcribe` for
clips it has never seen (the English sample tiled to --seconds, each with its own seeded
noise). Serially, then from 8 clients at once; printed: requests per second and their
ratio. Concurrency must not cost throughput: the engine batches the segments of requests
that wait together (docs/ARCHITECTURE.md, "The one path"), and on a CPU with batches of one
it must at least keep the model busy while the next upload is decoded.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from bench.common import OUT, app_env, print_table
from sensevoice_server.testing.audio_files import wav_bytes
from sensevoice_server.testing.servers import run_app

CONCURRENCY = 8


def fresh_clips(count: int, seconds: int) -> list[bytes]:
    from samples.make_samples import SAMPLES_DIR
    from sensevoice_server.audio import AudioLimits, decode

    speech = decode((SAMPLES_DIR / "en.wav").read_bytes(), AudioLimits(10**8, 3600))
    tiled = np.tile(speech, int(np.ceil(seconds * 16_000 / speech.size)))[: seconds * 16_000]
    rng = np.random.default_rng(0)
    return [wav_bytes(tiled + rng.normal(0, 0.003, tiled.size)) for _ in range(count)]


def requests_per_second(url: str, clips: list[bytes], concurrency: int) -> float:
    def send(data: bytes) -> None:
        answer = httpx.post(f"{url}/api/transcribe", files={"file": ("c.wav", data)},
                            timeout=900)  # fmt: skip
        answer.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, clips))
    return len(clips) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--ncpu", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--backends", default="onnx,torch")
    args = parser.parse_args()
    rows = []
    for backend in args.backends.split(","):
        env = app_env(args.ncpu, backend)
        clips = fresh_clips(2 * args.requests + 1, args.seconds)
        with run_app(env, OUT, ready_timeout=900) as app:
            requests_per_second(app.url, clips[:1], 1)  # warm-up
            serial = requests_per_second(app.url, clips[1 : args.requests + 1], 1)
            together = requests_per_second(app.url, clips[args.requests + 1 :], CONCURRENCY)
        rows.append([backend, f"{serial:.2f}", f"{together:.2f}", f"{together / serial:.2f}x"])
        print(f"{backend}: serial {serial:.2f} req/s, {CONCURRENCY} at once {together:.2f} req/s",
              flush=True)  # fmt: skip
    print(f"\n{args.requests} fresh {args.seconds} s clips per run, full-size checkpoint, CPU "
          f"({os.cpu_count()} cores, ncpu={args.ncpu}), result cache off\n")  # fmt: skip
    print_table(["backend", "serial req/s", f"{CONCURRENCY} at once req/s", "ratio"], rows)


if __name__ == "__main__":
    main()
