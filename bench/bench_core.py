"""Core benchmark: start-up to ready, and the service's latency next to bare generate().

Run: .venv/bin/python -m bench.bench_core [--repeat N]

Everything runs on the full-size checkpoint, on CPU, one measurement after the other (never
two models computing at once, which would share the cores), each in a process of its own:
torch running in two threads of one process (bare generate() in the main thread, then the
engine's worker) slows both down. Rows:
- bare generate(): funasr's AutoModel called directly on the decoded array: the floor;
- Transcriber: our whole in-process path (decode the file bytes, queue, worker thread,
  structure the segments);
- gradio_client: the real app on a real port, called through /transcribe;
- POST /api/transcribe: the same app through the plain HTTP API (httpx, keep-alive);
- GET /health: the HTTP overhead alone, for a request that does no work.
The app runs with the result cache off, so every request is a fresh transcription.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from functools import partial

import httpx

from bench.common import ROOT, clip, full_model, median, print_table, timed
from sensevoice_server.logs import configure_logging

configure_logging("warning")

from gradio_client import Client, handle_file  # noqa: E402

from sensevoice_server.audio import AudioLimits, decode  # noqa: E402
from sensevoice_server.core import build_transcriber  # noqa: E402
from sensevoice_server.options import DecodeOptions  # noqa: E402
from sensevoice_server.settings import Settings  # noqa: E402
from sensevoice_server.testing.reference import reference_model  # noqa: E402
from sensevoice_server.testing.servers import free_port, is_ready  # noqa: E402

LIMITS = AudioLimits(10**9, 7200)


def measure_bare(model: str, ncpu: int, clips: dict[int, bytes], repeat: int) -> dict[int, float]:
    automodel = reference_model(model, ncpu)
    results = {}
    for seconds, data in clips.items():
        samples = decode(data, LIMITS)
        run = partial(
            automodel.generate, input=samples, language="auto", use_itn=True, batch_size_s=60,
            merge_vad=True,
        )  # fmt: skip
        run()  # warm-up
        results[seconds] = median(timed(run, repeat))
    return results


def measure_transcriber(
    settings: Settings, clips: dict[int, bytes], repeat: int
) -> dict[int, float]:
    transcriber = build_transcriber(settings)
    transcriber.start()
    assert transcriber.wait_ready(600), transcriber.failure
    results = {}
    for seconds, data in clips.items():
        run = lambda: asyncio.run(transcriber.transcribe(data, DecodeOptions()))  # noqa: E731, B023
        run()
        results[seconds] = median(timed(run, repeat))
    transcriber.close(timeout=60)
    return results


def post_ok(http: httpx.Client, route: str, data: bytes) -> None:
    http.post(route, files={"file": ("clip.wav", data)}).raise_for_status()


def measure_app(
    model: str, ncpu: int, repeat: int
) -> tuple[float, dict[str, dict[int, float]], float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app_sensevoice.py"), "--model", model, "--vad-model",
         "silero-vad", "--device", "cpu", "--ncpu", str(ncpu), "--port", str(port),
         "--log-level", "warning", "--cache-url", "none", "--backend", "torch"],
        cwd=ROOT,
    )  # fmt: skip
    try:
        while not is_ready(url):
            if process.poll() is not None:
                raise RuntimeError("the app exited during start-up")
            time.sleep(0.05)
        startup = time.perf_counter() - started
        client = Client(url, verbose=False)
        http = httpx.Client(base_url=url, timeout=600)
        results: dict[str, dict[int, float]] = {"gradio": {}, "api": {}}
        for seconds in (10, 60):
            path = handle_file(str(clip(seconds)))
            data = clip(seconds).read_bytes()
            gradio = partial(client.predict, path, "auto", True, api_name="/transcribe")
            api = partial(post_ok, http, "/api/transcribe", data)
            for name, run in (("gradio", gradio), ("api", api)):
                run()
                results[name][seconds] = median(timed(run, repeat))
        health = partial(http.get, "/health")
        timed(health, 50)
        health_ms = median(timed(health, 1000)) * 1000
        return startup, results, health_ms
    finally:
        process.terminate()
        process.wait(60)


def in_own_process(part: str, args: argparse.Namespace) -> dict[int, float]:
    """Run one in-process measurement in a fresh interpreter; it prints JSON last."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_core", "--part", part, "--repeat", str(args.repeat),
         "--ncpu", str(args.ncpu)],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ncpu", type=int, default=2)
    parser.add_argument("--part", choices=["bare", "service"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    model = str(full_model())
    clips = {seconds: clip(seconds).read_bytes() for seconds in (10, 60)}
    if args.part == "bare":
        print(json.dumps(measure_bare(model, args.ncpu, clips, args.repeat)))
        return
    if args.part == "service":
        settings = Settings(
            model=model, vad_model="silero-vad", device="cpu", ncpu=args.ncpu, cache_url="none",
            backend="torch",
        )  # fmt: skip
        print(json.dumps(measure_transcriber(settings, clips, args.repeat)))
        return

    bare = in_own_process("bare", args)
    service = in_own_process("service", args)
    startup, app, health_ms = measure_app(model, args.ncpu, args.repeat)

    print(f"\nfull-size checkpoint, CPU, ncpu={args.ncpu}, median of {args.repeat} runs")
    print(f"start-up to /ready: {startup:.1f} s; GET /health round trip: {health_ms:.2f} ms\n")

    def versus(value: float, floor: float) -> str:
        return f"{value:.3f} s ({(value / floor - 1) * 100:+.1f}%)"

    rows = [
        [f"{s} s clip", f"{bare[s]:.3f} s", versus(service[s], bare[s]),
         versus(app["api"][s], bare[s]), versus(app["gradio"][s], bare[s])]
        for s in (10, 60)
    ]  # fmt: skip
    print_table(["audio", "bare generate()", "Transcriber (in-process)", "POST /api/transcribe",
                 "gradio_client /transcribe"], rows)  # fmt: skip


if __name__ == "__main__":
    main()
