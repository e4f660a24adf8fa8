"""Accuracy on every path: the trained test model on speech it never heard, one table.

Run: .venv/bin/python -m bench.bench_accuracy [--clips 60] [--live-clips 12] [--ncpu 2]

The committed trained test model (sensevoice_server/testing/trained/, a small SenseVoiceSmall
trained here on espeak-ng speech) transcribes held-out clips (new sentences, voices and
speeds it was not trained on) through:
- funasr's own pipeline (AutoModel.generate: the reference),
- the service's core with each backend and precision: torch fp32, ONNX fp32, ONNX static
  int8 (the CPU default), ONNX dynamic int8 (one segment per call), OpenVINO bf16 and int8
  on the same export,
- each front end of a real app on a real port (its default: ONNX static int8): the HTTP API,
  live WebSocket finals sent at real time, the batch CLI, the Gradio API.
Each row gives English WER, Mandarin CER, the language tag's accuracy, and the seconds of
work per second of audio (core rows: in this process, one clip at a time).

Word timestamps: English sentences built from words spoken one at a time with pauses of
known length (testing/espeak_corpus.spaced_words), so every word's true start and end is known;
the table gives the median and p90 error of the starts and ends the service reports.

Synthetic speech is not real speech and this model is a proxy: these numbers say whether a
path keeps what the model heard, never how accurate the real SenseVoiceSmall is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.common import OUT, ROOT, median, percentile, print_table
from sensevoice_server.testing import espeak_corpus
from sensevoice_server.testing.audio_files import wav_bytes
from sensevoice_server.testing.trained_model import error_rate, unseen, write_trained

Heard = tuple[str, str]  # (language code, text) for one clip
TAG = re.compile(r"<\|([^|]*)\|>")
HELD_OUT_SEED = 1  # the card's own held-out set (train.py scores seed + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=60, help="held-out clips (half English)")
    parser.add_argument("--live-clips", type=int, default=12, help="of them, streamed live")
    parser.add_argument("--timing-clips", type=int, default=20, help="spaced-word sentences")
    parser.add_argument("--ncpu", type=int, default=2)
    args = parser.parse_args()

    model = write_trained(OUT / "trained-model")
    utterances = unseen(args.clips, HELD_OUT_SEED)
    audio = espeak_corpus.speak_all(utterances)
    seconds = sum(len(a) for a in audio) / espeak_corpus.SAMPLE_RATE
    print(f"{len(audio)} held-out clips, {seconds:.0f} s of audio", flush=True)
    exports = onnx_exports(model)

    rows = [row("funasr AutoModel.generate (reference)", utterances, *reference(model, audio))]
    for label, backend, precision, onnx_dir in (
        ("core: torch fp32", "torch", "fp32", None),
        ("core: ONNX fp32", "onnx", "fp32", exports["static"]),
        ("core: ONNX static int8 (CPU default)", "onnx", "int8", exports["static"]),
        ("core: ONNX dynamic int8", "onnx", "int8", exports["dynamic"]),
        ("core: OpenVINO bf16", "openvino", "bf16", exports["static"]),
        ("core: OpenVINO int8", "openvino", "int8", exports["static"]),
    ):
        heard, cost = core(model, backend, precision, onnx_dir, audio, args.ncpu)
        rows.append(row(label, utterances, heard, cost / seconds))
    checks = int8_check_rows(model, exports, utterances, audio, args.ncpu)

    from sensevoice_server.testing.servers import run_app

    env = {"SENSEVOICE_MODEL": str(model), "SENSEVOICE_VAD_MODEL": "silero-vad",
           "SENSEVOICE_DEVICE": "cpu", "SENSEVOICE_NCPU": str(args.ncpu),
           "SENSEVOICE_CACHE_URL": "none", "SENSEVOICE_ONNX_DIR": str(exports["static"]),
           "SENSEVOICE_LOG_LEVEL": "warning"}  # fmt: skip
    with tempfile.TemporaryDirectory() as folder, run_app(env, Path(folder)) as app:
        rows.append(row("app: HTTP /v1/audio/transcriptions", utterances, http(app.url, audio)))
        live = args.live_clips
        rows.append(row(f"app: live WebSocket finals ({live} clips)", utterances[:live],
                        streamed(app.url, audio[:live])))  # fmt: skip
        rows.append(row("app: batch CLI --url", utterances, batch_cli(app.url, audio)))
        rows.append(row("app: Gradio API /transcribe", utterances, gradio(app.url, audio)))
        timing = word_times(app.url, args.timing_clips)

    headers = ["path", "English WER %", "Mandarin CER %", "language right %", "CPU s per audio s"]
    print()
    table = print_table(headers, rows)
    print()
    times = print_table(["word times (English, " + timing.pop("words") + " words)", "median ms",
                         "p90 ms"], [[k, *v] for k, v in timing.items()])  # fmt: skip
    print()
    agreement = print_table(["int8 or bf16 model", "agrees with fp32 on calibration tokens %",
                             "English WER %", "Mandarin CER %"], checks)  # fmt: skip
    plot(rows, checks, ROOT / "docs" / "accuracy.png")
    (OUT / "accuracy.txt").write_text(table + "\n\n" + times + "\n\n" + agreement + "\n",
                                      encoding="utf-8")  # fmt: skip


def plot(rows: list[list[object]], checks: list[list[object]], path: Path) -> None:
    """Left: each path's error rates (a path that loses words stands out); right: the int8
    check's agreement against the English WER it goes with, and the floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sensevoice_server.engine.int8_check import AGREEMENT_FLOOR

    fig, (paths, check) = plt.subplots(1, 2, figsize=(13, 5), width_ratios=[3, 2])
    labels = [str(r[0]) for r in rows]
    places = np.arange(len(labels))
    for offset, column, name in ((-0.2, 1, "English WER"), (0.2, 2, "Mandarin CER")):
        paths.barh(places + offset, [float(str(r[column])) for r in rows], height=0.4,
                   label=name)  # fmt: skip
    paths.set_yticks(places, labels)
    paths.invert_yaxis()
    paths.set_xlabel("error rate % (held-out clips)")
    paths.legend()
    agreed = [float(str(c[1])) for c in checks]
    wer = [float(str(c[2])) for c in checks]
    check.scatter(agreed, wer)
    for c, x, y in zip(checks, agreed, wer, strict=True):
        check.annotate(str(c[0]), (x, y), fontsize=8, xytext=(4, 4), textcoords="offset points")
    check.axvline(100 * AGREEMENT_FLOOR, color="#c44e52", linestyle="--", label="check's floor")
    check.set_xlabel("int8 tokens agreeing with fp32 on the calibration set %")
    check.set_ylabel("English WER % (held-out clips)")
    check.legend()
    fig.suptitle("Trained test model (a proxy on synthetic speech), this machine")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def row(
    label: str,
    utterances: list[espeak_corpus.Utterance],
    heard: list[Heard],
    cost: float | None = None,
) -> list[object]:
    errors = {"en": [0, 0], "zh": [0, 0]}
    right = 0
    for utterance, (language, text) in zip(utterances, heard, strict=True):
        words = "".join(c for c in text if unicodedata.category(c) != "So")  # no emoji
        edits, total = error_rate(utterance.language, utterance.text, words)
        errors[utterance.language][0] += edits
        errors[utterance.language][1] += total
        right += language == utterance.language
    rates = [f"{100 * e / max(n, 1):.1f}" for e, n in errors.values()]
    print(f"{label}: {rates}", flush=True)
    return [label, *rates, f"{100 * right / len(heard):.0f}", f"{cost:.3f}" if cost else ""]


# --- in-process paths -----------------------------------------------------------------------
def reference(model: Path, audio: list[np.ndarray]) -> tuple[list[Heard], float]:
    from sensevoice_server.testing.reference import reference_model, reference_text

    funasr = reference_model(str(model), ncpu=2)
    heard, started = [], time.process_time()
    for clip in audio:
        raw = reference_text(funasr, clip, "auto", False)  # "<|en|><|NEUTRAL|>...text"
        tags = TAG.findall(raw)
        heard.append((tags[0] if tags else "", TAG.sub(" ", raw)))
    return heard, (time.process_time() - started) / (
        sum(map(len, audio)) / espeak_corpus.SAMPLE_RATE
    )


def core(
    model: Path, backend: str, precision: str, onnx_dir: Path | None,
    audio: list[np.ndarray], ncpu: int,
) -> tuple[list[Heard], float]:  # fmt: skip
    """Through the service's core (Transcriber and engine), in this process; CPU seconds."""
    from sensevoice_server.core import build_transcriber
    from sensevoice_server.options import DecodeOptions
    from sensevoice_server.settings import Settings

    settings = Settings(model=str(model), vad_model="silero-vad", device="cpu", ncpu=ncpu,
                        backend=backend, precision=precision, cache_url="none",
                        onnx_dir=str(onnx_dir) if onnx_dir else None)  # fmt: skip
    transcriber = build_transcriber(settings)
    transcriber.start()
    assert transcriber.wait_ready(600), transcriber.failure
    options = DecodeOptions(language="auto", use_itn=False)
    heard, started = [], time.process_time()
    for clip in audio:
        transcript = asyncio.run(transcriber.transcribe(wav_bytes(clip), options)).transcript
        heard.append((transcript.language, transcript.plain_text))
    cost = time.process_time() - started
    transcriber.close(timeout=30)
    return heard, cost


def onnx_exports(model: Path) -> dict[str, Path]:
    """The service's export (fp32 and static int8) and a copy whose int8 is onnxruntime's
    dynamic quantisation of the same fp32 graph."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from sensevoice_server.engine.export import FILES, export, write_metadata

    static = OUT / "trained-onnx"
    if not (static / FILES["int8"]).exists():
        export(model, static)
    dynamic = OUT / "trained-onnx-dynamic"
    if not (dynamic / FILES["int8"]).exists():
        shutil.copytree(static, dynamic, dirs_exist_ok=True)
        quantize_dynamic(
            model_input=str(static / FILES["fp32"]),
            model_output=str(dynamic / FILES["int8"]),
            weight_type=QuantType.QInt8,
        )
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(static / FILES["int8"])).metadata_props}
        write_metadata(dynamic / FILES["int8"], {**meta, "quantization": "dynamic"})
    return {"static": static, "dynamic": dynamic}


def int8_check_rows(
    model: Path, exports: dict[str, Path], utterances: list[espeak_corpus.Utterance],
    audio: list[np.ndarray], ncpu: int,
) -> list[list[object]]:  # fmt: skip
    """What the start-up check (engine/int8_check.py) measures, the token agreement of int8
    with fp32 on the calibration set, beside the held-out error rates, for the two sound
    int8 exports and for static ones with scales made wrong on purpose: the measurements
    its floor is chosen from."""
    from sensevoice_server.engine.backends.onnx import OnnxBackend
    from sensevoice_server.engine.export import FILES
    from sensevoice_server.engine.int8_check import agreement
    from sensevoice_server.testing.wrong_scales import with_wrong_scales

    variants = {"fp32 (itself)": exports["static"], "static int8": exports["static"],
                "dynamic int8": exports["dynamic"]}  # fmt: skip
    for factor in (1.5, 2, 3, 5):
        wrong = OUT / f"trained-onnx-scales-{factor}"
        shutil.rmtree(wrong, ignore_errors=True)
        variants[f"static int8, scales / {factor}"] = with_wrong_scales(
            exports["static"], wrong, factor
        )
    fp32 = OnnxBackend(exports["static"] / FILES["fp32"], "fp32", ncpu)
    rows = []
    for label, directory in variants.items():
        precision = "fp32" if label.startswith("fp32") else "int8"
        candidate = OnnxBackend(directory / FILES[precision], precision, ncpu)
        agreed = agreement(fp32, candidate)
        heard, _ = core(model, "onnx", precision, directory, audio, ncpu)
        scored = row(f"check: {label}", utterances, heard)
        rows.append([label, f"{100 * agreed.ratio:.1f}", scored[1], scored[2]])
    for precision in ("bf16", "int8"):  # the other runtime on the sound export
        candidate = openvino_backend(exports["static"], precision, ncpu)
        agreed = agreement(fp32, candidate)
        heard, _ = core(model, "openvino", precision, exports["static"], audio, ncpu)
        scored = row(f"check: OpenVINO {precision}", utterances, heard)
        rows.append([f"OpenVINO {precision}", f"{100 * agreed.ratio:.1f}", scored[1], scored[2]])
    return rows


def openvino_backend(export_dir: Path, precision: str, ncpu: int) -> Any:
    from sensevoice_server.engine.backends.openvino import OpenVinoBackend
    from sensevoice_server.engine.export import FILES

    file = FILES["int8" if precision == "int8" else "fp32"]
    return OpenVinoBackend(export_dir / file, precision, ncpu)


# --- front ends of a running app --------------------------------------------------------------
def http(url: str, audio: list[np.ndarray]) -> list[Heard]:
    heard = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for clip in audio:
            answer = client.post(
                "/v1/audio/transcriptions",
                files={"file": ("clip.wav", wav_bytes(clip), "audio/wav")},
                data={"model": "sensevoice-small", "response_format": "verbose_json",
                      "use_itn": "false"},
            )  # fmt: skip
            answer.raise_for_status()
            heard.append(verbose(answer.json()))
    return heard


def verbose(body: dict[str, Any]) -> Heard:
    """verbose_json names the language in full, as Whisper does; its segments carry the code."""
    segments = body["segments"]
    return (segments[0]["language"] if segments else "", body["text"])


def streamed(url: str, audio: list[np.ndarray]) -> list[Heard]:
    """Each clip streamed at real time, four at once; its finals joined."""
    from sensevoice_server.cli.stream import stream_samples

    async def one(clip: np.ndarray) -> Heard:
        messages = await stream_samples(url, clip, use_itn=False)
        finals = [m for m in messages if m.get("type") == "final"]
        language = finals[0]["language"] if finals else ""
        return language, " ".join(m["text"] for m in finals)

    async def all_clips() -> list[Heard]:
        places = asyncio.Semaphore(4)

        async def limited(clip: np.ndarray) -> Heard:
            async with places:
                return await one(clip)

        return list(await asyncio.gather(*(limited(clip) for clip in audio)))

    return asyncio.run(all_clips())


def batch_cli(url: str, audio: list[np.ndarray]) -> list[Heard]:
    with tempfile.TemporaryDirectory() as folder:
        names = [Path(folder) / f"clip{i:03d}.wav" for i in range(len(audio))]
        for name, clip in zip(names, audio, strict=True):
            name.write_bytes(wav_bytes(clip))
        subprocess.run(
            [sys.executable, "-m", "sensevoice_server.cli", "batch", folder, "--url", url,
             "--format", "verbose_json", "--no-itn"],
            check=True, cwd=ROOT, capture_output=True,
        )  # fmt: skip
        answers = [json.loads(n.with_suffix(".verbose.json").read_text()) for n in names]
    return [verbose(body) for body in answers]


def gradio(url: str, audio: list[np.ndarray]) -> list[Heard]:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    heard = []
    with tempfile.TemporaryDirectory() as folder:
        for i, clip in enumerate(audio):
            path = Path(folder) / f"clip{i}.wav"
            path.write_bytes(wav_bytes(clip))
            _, table = client.predict(handle_file(str(path)), "auto", False,
                                      api_name="/transcribe")  # fmt: skip
            rows = table["data"]
            heard.append((rows[0][2] if rows else "", " ".join(r[5] for r in rows)))
    return heard


def word_times(url: str, count: int) -> dict[str, Any]:
    """Start and end errors of the words the HTTP API times, on spaced English words, for the
    words it heard right (a misheard word has no true time to compare)."""
    sentences = [u for u in unseen(2 * count, HELD_OUT_SEED + 100) if u.language == "en"]
    starts: list[float] = []
    ends: list[float] = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for utterance in sentences[:count]:
            audio, truth = espeak_corpus.spaced_words(utterance)
            answer = client.post(
                "/v1/audio/transcriptions",
                files={"file": ("clip.wav", wav_bytes(audio), "audio/wav")},
                data={"model": "sensevoice-small", "response_format": "verbose_json",
                      "timestamp_granularities[]": "word", "use_itn": "false"},
            )  # fmt: skip
            answer.raise_for_status()
            for (_, start, end), said in matched(truth, answer.json()["words"]):
                starts.append(abs(said["start"] - start) * 1000)
                ends.append(abs(said["end"] - end) * 1000)
    ms: Callable[[list[float], float], str] = lambda v, q: f"{percentile(v, q):.0f}"  # noqa: E731
    return {
        "words": str(len(starts)),
        "word start": [f"{median(starts):.0f}", ms(starts, 90)],
        "word end": [f"{median(ends):.0f}", ms(ends, 90)],
    }


def matched(
    truth: list[espeak_corpus.TimedWord], said: list[dict[str, Any]]
) -> list[tuple[espeak_corpus.TimedWord, dict[str, Any]]]:
    """Pairs of a true word and the same word heard, in order (a longest common subsequence:
    an inserted or dropped word shifts nothing after it)."""
    a = [w[0] for w in truth]
    b = [w["word"].strip().lower().strip(".,") for w in said]
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            table[i][j] = (table[i + 1][j + 1] + 1 if a[i] == b[j]
                           else max(table[i + 1][j], table[i][j + 1]))  # fmt: skip
    pairs, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            pairs.append((truth[i], said[j]))
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


if __name__ == "__main__":
    main()
