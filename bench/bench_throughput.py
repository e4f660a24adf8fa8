"""Throughput of fresh requests: one client at a time against 4, 8 and 16 at once, per backend.

Run: .venv/bin/python -m bench.bench_throughput [--requests 16] [--ncpu 2] [--seconds 10]
     [--clients 1,4,8,16] [--backends onnx,torch]

The real app (full-size checkpoint, result cache off) answers `POST /api/transcribe` for
clips it has never seen (the English sample tiled to --seconds, each with its own seeded
noise), from each number of clients in turn, while `/health` is asked every 0.2 s;
printed: audio seconds per second and the ratio to one client, and /health's p99.
Concurrency must not cost throughput: the engine batches the segments of requests that wait
together (docs/ARCHITECTURE.md, "The one path"); on a CPU it runs two model calls at once
(onnxruntime) and decodes the next upload while the model runs.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from bench.common import OUT, app_env, percentile, print_table
from sensevoice_server.testing.audio_files import wav_bytes
from sensevoice_server.testing.servers import run_app


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


class HealthProbe:
    """`GET /health` every 0.2 s while the load runs: it must stay fast throughout."""

    def __init__(self, url: str) -> None:
        self.url, self.seconds, self._stop = url, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.wait(0.2):
                started = time.perf_counter()
                http.get(f"{self.url}/health").raise_for_status()
                self.seconds.append(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--ncpu", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", default="1,4,8,16")
    parser.add_argument("--backends", default="onnx,torch")
    args = parser.parse_args()
    levels = [int(n) for n in args.clients.split(",")]
    rows = []
    for backend in args.backends.split(","):
        env = app_env(args.ncpu, backend)
        clips = fresh_clips(len(levels) * args.requests + 1, args.seconds)
        rates, health = {}, []
        with run_app(env, OUT, ready_timeout=900) as app:
            requests_per_second(app.url, clips[:1], 1)  # warm-up
            for number, clients in enumerate(levels):
                fresh = clips[1 + number * args.requests : 1 + (number + 1) * args.requests]
                with HealthProbe(app.url) as probe:
                    rates[clients] = requests_per_second(app.url, fresh, clients)
                health += probe.seconds
                print(f"{backend}, {clients} clients: {rates[clients]:.2f} req/s", flush=True)
        one = rates[levels[0]]
        rows.append([backend, *[f"{rates[n] * args.seconds:.1f} ({rates[n] / one:.2f}x)"
                                for n in levels],
                     f"{1000 * percentile(health, 99):.0f} ms"])  # fmt: skip
    print(f"\n{args.requests} fresh {args.seconds} s clips per level, full-size checkpoint, CPU "
          f"({os.cpu_count()} cores, ncpu={args.ncpu}), result cache off; audio seconds per "
          "second (ratio to one client)\n")  # fmt: skip
    print_table(["backend", *[f"{n} client{'s' if n > 1 else ''}" for n in levels],
                 "/health p99 under load"], rows)  # fmt: skip


if __name__ == "__main__":
    main()
