"""What the extras cost: word alignment, speaker labels, and a 1 h file's memory.

Run: .venv/bin/python -m bench.bench_extras [--repeat 3] [--ncpu 2] [--backend onnx]
     [--hour]   (also transcribe a 1 h file and report its peak RSS; about 10 minutes)

The engine runs in this process on the full-size checkpoint (speakers: a full-size random
CAM++, 6.85M parameters, the real cost). Word alignment and speakers are timed against the
same decode without them, interleaved, on a 60 s clip; the cost is reported in ms per
minute of audio. The 1 h file runs alone, in a fresh process, through the Transcriber (the
service's path: decode the upload, VAD, segments through the model), and its peak RSS is
that process's high-water mark.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import OUT, ROOT, clip, full_model, print_table


def engine_for(backend: str, ncpu: int, speakers: Path | None = None):  # type: ignore[no-untyped-def]
    from sensevoice_server.engine import Engine, EngineSettings
    from sensevoice_server.settings import Settings

    settings = Settings(model=str(full_model()), vad_model="silero-vad", device="cpu",
                        ncpu=ncpu, backend=backend, cache_url="none",
                        onnx_dir=str(OUT / "full-onnx") if backend == "onnx" else None,
                        speakers=speakers is not None,
                        speaker_model=str(speakers or "cam++"))  # fmt: skip
    engine = Engine(EngineSettings.of(settings))
    engine.start()
    assert engine.wait_ready(3600), engine.failure
    return engine


def costs(backend: str, ncpu: int, repeat: int) -> list[list[object]]:
    from sensevoice_server.audio import AudioLimits, decode
    from sensevoice_server.options import DecodeOptions
    from sensevoice_server.testing.campplus import build_campplus

    samples = decode(clip(60).read_bytes(), AudioLimits(10**9, 7200))
    campplus = build_campplus(OUT / "campplus")
    plain, with_speakers = engine_for(backend, ncpu), engine_for(backend, ncpu, campplus)
    runs: dict[str, list[float]] = {"plain": [], "words": [], "speakers": []}
    for _ in range(repeat + 1):
        for name, engine, options in (
            ("plain", plain, DecodeOptions()),
            ("words", plain, DecodeOptions(word_timestamps=True)),
            ("speakers", with_speakers, DecodeOptions()),
        ):
            started = time.process_time()
            engine.submit(samples, options).result(3600)
            runs[name].append(time.process_time() - started)
    base = statistics.median(runs["plain"][1:])
    rows = []
    for name in ("words", "speakers"):
        cost = statistics.median(runs[name][1:]) - base
        rows.append([name, f"{base:.1f} s", f"{base + cost:.1f} s", f"{cost * 1000:.0f} ms",
                     f"{cost / base * 100:+.0f}%"])  # fmt: skip
    plain.close(60)
    with_speakers.close(60)
    return rows


def hour_clip() -> Path:
    """Made by the parent: making it costs more memory than transcribing it."""
    from samples.make_samples import make_long_clip

    path = OUT / "en_3600s.wav"
    if not path.exists():
        make_long_clip(3600, path)
    return path


def one_hour(backend: str, ncpu: int) -> dict[str, float]:
    """In a fresh process: transcribe a 1 h WAV through the Transcriber; report peak RSS."""
    import asyncio

    from sensevoice_server.core import build_transcriber
    from sensevoice_server.options import DecodeOptions
    from sensevoice_server.settings import Settings

    path = hour_clip()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    settings = Settings(model=str(full_model()), vad_model="silero-vad", device="cpu",
                        ncpu=ncpu, backend=backend, cache_url="none", max_upload_mb=500,
                        onnx_dir=str(OUT / "full-onnx") if backend == "onnx" else None)  # fmt: skip
    transcriber = build_transcriber(settings)
    transcriber.start()
    assert transcriber.wait_ready(3600), transcriber.failure
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    result = asyncio.run(transcriber.transcribe(path.read_bytes(), DecodeOptions()))
    return {"seconds": time.perf_counter() - started, "segments": len(result.transcript.segments),
            "rss_start_mb": before, "rss_loaded_mb": loaded,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ncpu", type=int, default=2)
    parser.add_argument("--backend", default="onnx", choices=["torch", "onnx"])
    parser.add_argument("--hour", action="store_true")
    parser.add_argument("--hour-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from sensevoice_server.logs import configure_logging

    configure_logging("warning")
    if args.hour_worker:
        sys.stdout = sys.stderr
        print(json.dumps(one_hour(args.backend, args.ncpu)), file=sys.__stdout__, flush=True)
        return
    rows = costs(args.backend, args.ncpu, args.repeat)
    print(f"\nfull-size random checkpoint, {args.backend} backend, CPU ncpu={args.ncpu}, 60 s "
          f"clip, CPU seconds per request, median of {args.repeat}\n")  # fmt: skip
    print_table(["extra", "without", "with", "cost per minute of audio", "relative"], rows)
    if args.hour:
        hour_clip()
        done = subprocess.run(
            [sys.executable, "-m", "bench.bench_extras", "--hour-worker", "--backend",
             args.backend, "--ncpu", str(args.ncpu)],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        hour = json.loads(done.stdout.strip().splitlines()[-1])
        print("\n1 h file (WAV, 115 MB) through the Transcriber, one process:\n")
        print_table(["audio", "segments", "time", "RTF", "RSS loaded", "peak RSS"], [[
            "3600 s", hour["segments"], f"{hour['seconds']:.0f} s",
            f"{hour['seconds'] / 3600:.3f}", f"{hour['rss_loaded_mb'] / 1024:.2f} GB",
            f"{hour['peak_mb'] / 1024:.2f} GB"]])  # fmt: skip


if __name__ == "__main__":
    main()
