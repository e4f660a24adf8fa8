"""Result-cache benchmark through the HTTP API, SQLite and Redis in one run.

Run: .venv/bin/python -m bench.bench_cache

For a 10 s clip on the full-size checkpoint (CPU): fresh latency, cached latency (p50, p95),
cached requests per second at concurrency 1 and 8, then requests per second when 0%, 50%,
80% and 100% of the requests repeat audio already cached. Prints Markdown tables and saves
docs/cache.png.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import time
from pathlib import Path

import httpx
import numpy as np

from bench.common import OUT, ROOT, app_env, clip, median, percentile, print_table
from sensevoice_server.audio import AudioLimits, decode
from sensevoice_server.testing.audio_files import write_samples
from sensevoice_server.testing.servers import RedisServer, run_app


def unique_clips(count: int) -> list[bytes]:
    """The 10 s clip with a little seeded noise each: same length, all different content."""
    speech = decode(clip(10).read_bytes(), AudioLimits(10**9, 3600))
    folder = OUT / "unique"
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for seed in range(count):
        noise = np.random.default_rng(seed + int(time.time())).normal(0, 0.002, speech.size)
        clips.append(write_samples(folder / f"{seed}.wav", speech + noise).read_bytes())
    return clips


def post(http: httpx.Client, data: bytes) -> tuple[float, bool]:
    started = time.perf_counter()
    answer = http.post("/api/transcribe", files={"file": ("clip.wav", data)})
    answer.raise_for_status()
    return time.perf_counter() - started, answer.json()["from_cache"]


def throughput(url: str, payloads: list[bytes], concurrency: int) -> float:
    """Requests per second for `payloads` sent by `concurrency` clients."""
    with httpx.Client(base_url=url, timeout=600) as http:
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda data: post(http, data), payloads))
        return len(payloads) / (time.perf_counter() - started)


def measure_store(url: str, fresh_clips: list[bytes], mix_clips: list[bytes]) -> dict[str, object]:
    with httpx.Client(base_url=url, timeout=600) as http:
        fresh = [post(http, data) for data in fresh_clips[:5]]
        assert not any(hit for _, hit in fresh)
        cached = [post(http, fresh_clips[0]) for _ in range(300)]
        assert all(hit for _, hit in cached)
    cached_s = [t for t, _ in cached]
    results: dict[str, object] = {
        "fresh": median([t for t, _ in fresh]),
        "p50": percentile(cached_s, 50),
        "p95": percentile(cached_s, 95),
        "rps1": throughput(url, [fresh_clips[0]] * 300, 1),
        "rps8": throughput(url, [fresh_clips[0]] * 600, 8),
    }
    # Mixed traffic: `share` of 20 requests repeat the cached clip, the rest are new audio.
    new = iter(mix_clips)
    for share in (0.0, 0.5, 0.8, 1.0):
        repeats = round(20 * share)
        payloads = [fresh_clips[0]] * repeats + [next(new) for _ in range(20 - repeats)]
        results[f"mix{int(share * 100)}"] = throughput(url, payloads, 4)
    return results


def plot(results: dict[str, dict[str, object]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = [0, 50, 80, 100]
    figure, axis = plt.subplots(figsize=(6, 4))
    for store, numbers in results.items():
        axis.plot(shares, [numbers[f"mix{s}"] for s in shares], marker="o", label=store)
    axis.set_xlabel("requests repeating cached audio (%)")
    axis.set_ylabel("requests per second (10 s clips, 4 clients)")
    axis.set_yscale("log")
    axis.set_title("Throughput vs. repeated audio (CPU, full-size model)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    path = ROOT / "docs" / "cache.png"
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    results: dict[str, dict[str, object]] = {}
    redis_server = RedisServer()
    redis_server.start()
    try:
        stores = {"sqlite": f"sqlite:///{OUT}/bench-cache.sqlite3", "redis": redis_server.url}
        Path(OUT / "bench-cache.sqlite3").unlink(missing_ok=True)
        for store, cache_url in stores.items():
            env = app_env(2, cache_url=cache_url, queue_size=64)
            with run_app(env, OUT, ready_timeout=900) as app:
                results[store] = measure_store(app.url, unique_clips(5), unique_clips(40))
    finally:
        redis_server.stop()

    print("\n10 s clip, full-size checkpoint, CPU (ncpu=2), through POST /api/transcribe")
    print_table(
        ["store", "fresh", "cached p50", "cached p95", "speed-up (p50)", "cached req/s (1)",
         "cached req/s (8)"],
        [[store, f"{r['fresh']:.3f} s", f"{r['p50'] * 1000:.2f} ms", f"{r['p95'] * 1000:.2f} ms",
          f"{r['fresh'] / r['p50']:.0f}x", f"{r['rps1']:.0f}", f"{r['rps8']:.0f}"]
         for store, r in results.items()],
    )  # fmt: skip
    print("\nrequests per second, 4 clients, by share of repeated audio")
    print_table(
        ["store", "0%", "50%", "80%", "100%"],
        [
            [store, *(f"{r[f'mix{s}']:.1f}" for s in (0, 50, 80, 100))]
            for store, r in results.items()
        ],
    )
    print(f"\nplot: {plot(results)}")


if __name__ == "__main__":
    main()
