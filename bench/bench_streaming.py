"""Live streaming benchmark: how soon finals follow speech, and how many streams one process holds.

Run: .venv/bin/python -m bench.bench_streaming [--seconds 60] [--streams 1,2,4,8] [--ncpu 2]
                                                [--protocols ws,realtime]

The real app (full-size checkpoint, CPU) runs as a subprocess; N clients stream a long
English clip (two sentences and a 1 s pause, repeated) at real time, started a little apart
so their utterances do not end in step, over each protocol in turn: `WS /ws/transcribe` with
the CLI's client, and OpenAI's realtime session (`/v1/realtime?intent=transcription`, 24 kHz
PCM, server VAD) with a plain WebSocket client. For realtime a "final" is the `completed`
transcript (its utterance end is the `speech_stopped` before it) and a "partial" a delta;
its own columns: how long the first delta of an item comes before its completed transcript,
and the share of words sent before the end of speech.

- final latency: from the end of an utterance, in audio time (when the client had sent it),
  to its final message; it includes the 0.5 s of silence that ends an utterance;
- partial interval: time between two partials of the same utterance;
- keeps up: no stream was ended, finals do not drift later and later (median latency of the
  last third within 1 s of the first third's) and the p95 stays within 1.5 s.
A last row streams one client while 60 s uploads keep the model busy.

Live capacity, as a ratio that holds across machines: the most streams that keep up, times
the real-time factor of transcribing one utterance alone (seconds per audio second, as the
server times it). 1.0 would mean the model's whole time goes to finals.

Also measured here: the CPU cost of the online VAD (silero) per second of audio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from bench.common import OUT, ROOT, app_env, clip, percentile, print_table
from sensevoice_server.logs import configure_logging

configure_logging("warning")

from sensevoice_server.audio import AudioLimits, decode  # noqa: E402
from sensevoice_server.cli.stream import StreamFailed, stream_samples  # noqa: E402
from sensevoice_server.live.vad import OnlineVad  # noqa: E402
from sensevoice_server.testing.servers import AppProcess, run_app  # noqa: E402

LIMITS = AudioLimits(10**9, 7200)
UNIT_S = 5.66  # one repetition of the English clip, pause included
KEEP_UP_P95_S = 1.5  # utterance end to final, 95th percentile


@dataclass
class StreamStats:
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (utterance end, latency)
    partial_gaps: list[float] = field(default_factory=list)
    partials: int = 0
    finals: int = 0
    failed: str = ""  # why the server ended the stream early, if it did
    delta_leads: list[float] = field(default_factory=list)  # realtime: first delta -> completed
    words_early: int = 0  # realtime: words in deltas sent before their speech_stopped
    words: int = 0


def vad_cost(samples: np.ndarray) -> float:
    """CPU seconds the online VAD spends per second of audio (one stream, 100 ms chunks)."""
    vad = OnlineVad(threshold=0.5, end_silence_ms=500)
    step = 1600
    started = time.thread_time()
    for offset in range(0, samples.size, step):
        vad(samples[offset : offset + step])
    return (time.thread_time() - started) / (samples.size / 16000)


async def one_stream(url: str, samples: np.ndarray, delay: float) -> StreamStats:
    await asyncio.sleep(delay)
    stats = StreamStats()
    last_partial: dict[int, float] = {}
    duration = samples.size / 16000

    def on_message(message: dict, clock: float) -> None:
        if message["type"] == "partial":
            stats.partials += 1
            segment = message["segment"]
            if segment in last_partial:
                stats.partial_gaps.append(clock - last_partial[segment])
            last_partial[segment] = clock
        elif message["type"] == "final":
            stats.finals += 1
            if message["end"] < duration - 0.1:  # the last one is cut by the end of the audio
                stats.latencies.append((message["end"], clock - message["end"]))

    try:
        await stream_samples(url, samples, speed=1.0, chunk_ms=100, on_message=on_message)
    except StreamFailed as error:
        stats.failed = str(error)
    return stats


async def one_realtime_stream(url: str, samples: np.ndarray, delay: float) -> StreamStats:
    """One OpenAI realtime transcription session, 100 ms appends on a real-time schedule."""
    import base64
    import json

    import websockets
    from scipy.signal import resample_poly

    from sensevoice_server.live.protocol import pcm16_bytes

    await asyncio.sleep(delay)
    stats = StreamStats()
    duration = samples.size / 16000
    pcm = pcm16_bytes(np.concatenate([resample_poly(samples, 3, 2), np.zeros(24000)]))
    update = {
        "type": "session.update",
        "session": {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "turn_detection": {"type": "server_vad"},
                }
            },
        },
    }
    stopped: dict[str, float] = {}
    first_delta: dict[str, float] = {}
    early: dict[str, str] = {}
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps(update))
        started = time.monotonic()

        async def send_audio() -> None:
            for index, offset in enumerate(range(0, len(pcm), 4800)):
                chunk = base64.b64encode(pcm[offset : offset + 4800]).decode()
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
                await asyncio.sleep(max(0.0, started + (index + 1) * 0.1 - time.monotonic()))

        sender = asyncio.create_task(send_audio())
        while True:  # until the audio is sent and nothing more comes for 3 s
            try:
                raw = await asyncio.wait_for(ws.recv(), 3.0)
            except TimeoutError:
                if sender.done():
                    break
                continue
            except websockets.ConnectionClosed:
                break
            clock, event = time.monotonic() - started, json.loads(raw)
            kind = event["type"]
            if kind == "error" and event["error"]["code"] not in ("invalid_event_type",):
                stats.failed = event["error"]["message"]
            elif kind.endswith("transcription.delta"):
                stats.partials += 1
                first_delta.setdefault(event["item_id"], clock)
                if event["item_id"] not in stopped:
                    early[event["item_id"]] = early.get(event["item_id"], "") + event["delta"]
            elif kind == "input_audio_buffer.speech_stopped":
                stopped[event["item_id"]] = event["audio_end_ms"] / 1000
            elif kind.endswith("transcription.completed"):
                stats.finals += 1
                item, end = event["item_id"], stopped.get(event["item_id"], clock)
                if end < duration - 0.1:
                    stats.latencies.append((end, clock - end))
                if item in first_delta:
                    stats.delta_leads.append(clock - first_delta[item])
                stats.words += len(event["transcript"].split())
                stats.words_early += len(early.get(item, "").split())
        sender.cancel()
    return stats


async def run_streams(
    url: str, samples: np.ndarray, count: int, protocol: str = "ws"
) -> list[StreamStats]:
    delays = [i * UNIT_S / count for i in range(count)]
    client = one_realtime_stream if protocol == "realtime" else one_stream
    return list(await asyncio.gather(*(client(url, samples, d) for d in delays)))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def keep_uploading(url: str, samples: np.ndarray, stop: threading.Event) -> int:
    """Post different 60 s uploads back to back until `stop`; return how many finished."""
    done = 0
    while not stop.is_set():
        pcm = (np.roll(samples, 160 * (done + 1)) * 32767).astype("<i2")
        path = OUT / "upload.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(pcm.tobytes())
        response = httpx.post(
            f"{url}/api/transcribe", files={"file": ("u.wav", path.read_bytes())}, timeout=600
        )
        response.raise_for_status()
        done += 1
    return done


def summarise(label: str, runs: list[StreamStats], cores: float) -> list[object]:
    latencies = [lat for run in runs for _, lat in run.latencies] or [float("nan")]
    gaps = [gap for run in runs for gap in run.partial_gaps]
    failed = sum(bool(run.failed) for run in runs)
    p95 = percentile(latencies, 95)
    keeps_up = not failed and all(_steady(run) for run in runs) and p95 <= KEEP_UP_P95_S
    finals = sum(run.finals for run in runs)
    return [
        label,
        finals,
        failed,
        f"{percentile(latencies, 50):.2f} s",
        f"{p95:.2f} s",
        f"{max(latencies):.2f} s",
        f"{statistics.median(gaps):.2f} s" if gaps else "-",
        f"{sum(run.partials for run in runs) / max(finals, 1):.1f}",
        f"{cores:.2f}",
        "yes" if keeps_up else "**no**",
    ]


def _steady(run: StreamStats) -> bool:
    if not run.latencies:
        return False
    third = max(1, len(run.latencies) // 3)
    first = statistics.median(lat for _, lat in run.latencies[:third])
    last = statistics.median(lat for _, lat in run.latencies[-third:])
    return last - first < 1.0


PATHS = {"ws": "/ws/transcribe", "realtime": "/v1/realtime?intent=transcription"}


def measure_realtime(app: AppProcess, samples: np.ndarray, counts: list[int]) -> list[list[object]]:
    """The same streams over OpenAI's realtime protocol, with its delta columns."""
    url = app.url.replace("http://", "ws://") + PATHS["realtime"]
    rows = []
    for count in counts:
        before, started = cpu_seconds(app.process.pid), time.monotonic()
        runs = asyncio.run(run_streams(url, samples, count, "realtime"))
        cores = (cpu_seconds(app.process.pid) - before) / (time.monotonic() - started)
        row = summarise(f"realtime: {count} stream{'s' * (count > 1)}", runs, cores)
        leads = [lead for run in runs for lead in run.delta_leads]
        words = sum(run.words for run in runs)
        row[6] = f"{statistics.median(leads):.2f} s" if leads else "-"
        row[7] = f"{100 * sum(run.words_early for run in runs) / max(words, 1):.0f} %"
        rows.append(row)
        print(f"  {rows[-1]} load average {os.getloadavg()[0]:.1f}", flush=True)
        for run in runs:
            if run.failed:
                print(f"    stream ended by the server: {run.failed}", flush=True)
    return rows


def measure(app: AppProcess, samples: np.ndarray, counts: list[int], upload: np.ndarray):
    url = app.url.replace("http://", "ws://") + PATHS["ws"]
    results: dict[str, list[StreamStats]] = {}
    rows = []
    for count in counts:
        before, started = cpu_seconds(app.process.pid), time.monotonic()
        runs = asyncio.run(run_streams(url, samples, count))
        cores = (cpu_seconds(app.process.pid) - before) / (time.monotonic() - started)
        label = f"{count} stream{'s' * (count > 1)}"
        results[label] = runs
        rows.append(summarise(label, runs, cores))
        print(f"  {rows[-1]} load average {os.getloadavg()[0]:.1f}", flush=True)
        for run in runs:
            if run.failed:
                print(f"    stream ended by the server: {run.failed}", flush=True)
    stop = threading.Event()
    uploads: list[int] = []
    uploader = threading.Thread(
        target=lambda: uploads.append(keep_uploading(app.url, upload, stop)), daemon=True
    )
    before, started = cpu_seconds(app.process.pid), time.monotonic()
    uploader.start()
    time.sleep(1.0)  # the first upload is with the model
    runs = asyncio.run(run_streams(url, samples, 1))
    stop.set()
    uploader.join(600)
    cores = (cpu_seconds(app.process.pid) - before) / (time.monotonic() - started)
    label = "1 stream + 60 s uploads"
    results[label] = runs
    rows.append(summarise(f"{label} ({uploads[0] if uploads else 0} done)", runs, cores))
    print(f"  {rows[-1]} load average {os.getloadavg()[0]:.1f}", flush=True)
    return rows, results


def utterance_rtf(url: str, samples: np.ndarray, repeat: int = 5) -> float:
    """Model seconds per audio second for one utterance alone (the first sentence, 2.5 s),
    from the server's inference_ms: no queue, no HTTP, no decoding of the upload."""
    from sensevoice_server.testing.audio_files import wav_bytes

    sentence = wav_bytes(samples[int(0.2 * 16000) : int(2.7 * 16000)])
    times = []
    for index in range(repeat + 1):
        noisy = sentence[:-2] + bytes([index % 256, 0])  # a new last sample: no cache hit
        answer = httpx.post(f"{url}/api/transcribe", files={"file": ("u.wav", noisy)}, timeout=120)
        answer.raise_for_status()
        body = answer.json()
        times.append(body["processing_ms"] / 1000 / body["duration"])
    return statistics.median(times[1:])


def plot(results: dict[str, list[StreamStats]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = list(results)
    p50 = [percentile([lat for r in results[k] for _, lat in r.latencies], 50) for k in labels]
    p95 = [percentile([lat for r in results[k] for _, lat in r.latencies], 95) for k in labels]
    x = np.arange(len(labels))
    left.bar(x - 0.2, p50, 0.4, label="p50")
    left.bar(x + 0.2, p95, 0.4, label="p95")
    left.set_xticks(x, [k.replace(" + ", "\n+ ") for k in labels], fontsize=8)
    left.set_ylabel("utterance end → final (s)")
    left.set_title("Final latency, real-time streams, CPU")
    left.legend()
    for label in labels:
        points = [point for run in results[label] for point in run.latencies]
        if not points:
            continue
        right.scatter(*zip(*points, strict=True), s=8, label=label)
    right.set_xlabel("utterance end in the stream (s)")
    right.set_ylabel("latency (s)")
    right.set_title("Does it fall behind? (latency over the stream)")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--streams", default="1,2,4,8")
    parser.add_argument("--ncpu", type=int, default=2)
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"])
    parser.add_argument("--protocols", default="ws,realtime",
                        help="ws (/ws/transcribe), realtime (/v1/realtime), or both")  # fmt: skip
    parser.add_argument(
        "--omp-wait-policy", default="PASSIVE", choices=["PASSIVE", "ACTIVE", "unset"],
        help="OMP_WAIT_POLICY of the server; unset leaves libgomp's spin-then-sleep default",
    )  # fmt: skip
    parser.add_argument("--speakers", action="store_true",
                        help="speaker labels on (full-size CAM++, random weights)")  # fmt: skip
    args = parser.parse_args()
    counts = [int(n) for n in args.streams.split(",")]
    samples = decode(clip(args.seconds).read_bytes(), LIMITS)
    upload = decode(clip(60).read_bytes(), LIMITS)
    cost = vad_cost(samples)
    env = app_env(args.ncpu, args.backend, live_max_sessions=max(counts) + 1)
    if args.speakers:
        from sensevoice_server.testing.campplus import build_campplus

        env |= {"SENSEVOICE_SPEAKERS": "true",
                "SENSEVOICE_SPEAKER_MODEL": str(build_campplus(OUT / "campplus"))}  # fmt: skip
    # With libgomp's default, torch's threads spin while they wait for each other; when
    # anything else wants the same cores, a decode took 20x longer (measured: 8.8 s instead
    # of 0.38 s for a 2.5 s utterance, ncpu=2 on 2 busy cores). PASSIVE makes them sleep.
    if args.omp_wait_policy != "unset":
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    print(f"streaming {args.seconds} s clips at real time; streams: {counts}", flush=True)
    protocols = args.protocols.split(",")
    with run_app(env, OUT, ready_timeout=3600) as app:
        rtf = utterance_rtf(app.url, samples)
        rows, results = measure(app, samples, counts, upload) if "ws" in protocols else ([], {})
        realtime_rows = measure_realtime(app, samples, counts) if "realtime" in protocols else []
    speakers = ", speaker labels on" if args.speakers else ""
    print(f"\nfull-size checkpoint{speakers}, CPU, ncpu={args.ncpu}, "
          f"OMP_WAIT_POLICY={args.omp_wait_policy}, "
          f"{os.cpu_count()} cores, "
          f"{args.seconds} s of speech per stream at real time")  # fmt: skip
    print(f"online VAD (silero, 1 thread): {cost * 1000:.1f} ms CPU per second of audio\n")
    print_table(
        ["streams", "finals", "ended early", "latency p50", "latency p95", "latency max",
         "partial interval p50", "partials per final", "server CPU (cores)", "keeps up"],
        rows,
    )  # fmt: skip
    if realtime_rows:
        print(
            "\nOpenAI realtime (/v1/realtime), the same streams; its columns 7 and 8 are the "
            "first delta's lead over the completed transcript (p50) and the words sent "
            "before the end of speech:\n"
        )
        print_table(
            ["streams", "completed", "ended early", "latency p50", "latency p95",
             "latency max", "first delta lead p50", "words before speech end",
             "server CPU (cores)", "keeps up"],
            realtime_rows,
        )  # fmt: skip
    if rows:
        kept = [count for count, row in zip(counts, rows, strict=False) if row[-1] == "yes"]
        streams = max(kept, default=0)
        print(f"\nlive capacity: {streams} streams kept up (final p95 <= {KEEP_UP_P95_S} s) x "
              f"utterance RTF {rtf:.3f} = {streams * rtf:.2f}")  # fmt: skip
    if results:
        path = ROOT / "docs" / "streaming_latency.png"
        plot(results, path)
        print(f"\nplot: {path}")


if __name__ == "__main__":
    main()
