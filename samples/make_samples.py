#!/usr/bin/env python3
"""Generate the small audio clips in ``samples/`` used by tests, demos and benchmarks.

Why this exists: the service needs real speech in several languages and in the
container formats clients actually upload (WAV, MP3, M4A/AAC, Ogg/Opus, FLAC,
WebM/Opus as recorded by browsers), but we must not commit recordings of real
people or depend on downloads at test time.  So every clip is synthesised
locally with espeak-ng and transcoded with ffmpeg, and this script is the
single source of truth for how they were made.

Design notes:

* Each clip is two sentences synthesised separately, trimmed of espeak-ng's
  own padding and joined with a fixed 1.0 s gap of digital silence, so a VAD
  (FunASR's fsmn-vad ends a segment after 800 ms of silence by default) finds
  two speech segments.
* Base clips are 16 kHz mono 16-bit PCM WAV (SenseVoiceSmall's native input).
  The WAV files are written by Python's ``wave`` module from raw PCM so the
  header is a plain 44-byte one with no encoder tags.
* ffmpeg is run with bitexact flags and without metadata so re-running the
  script on the same tool versions gives byte-identical files.
* Mandarin uses the ``cmn-latn-pinyin`` voice when present: in espeak-ng 1.51
  (Debian 12) the plain ``cmn`` voice reads many Hanzi as garbled English
  ("ni3" -> "nee three"); both voices take the same Hanzi text.
* espeak-ng's Japanese voice does not read kanji (it says "Chinese letter")
  and reads the particle は as "ha", so the Japanese text is kana only and
  avoids は.

Usage::

    python3 samples/make_samples.py                 # (re)generate samples/
    python3 samples/make_samples.py --long 60 /tmp/en_60s.wav
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent
CALIBRATION_DIR = SAMPLES_DIR.parent / "sensevoice_server" / "engine" / "calibration_clips"
SAMPLE_RATE = 16_000
SAMPLE_WIDTH = 2  # bytes, 16-bit PCM
ESPEAK_SPEED = 175  # words per minute (the espeak-ng default)
ESPEAK_AMPLITUDE = 80  # 0-200, default 100; a little headroom for resampling
PAUSE_S = 1.0  # silence between the two sentences of a clip
EDGE_S = 0.2  # silence before the first and after the last sentence
TRIM_THRESHOLD = 100  # |sample| below this counts as espeak-ng padding
SILENCE_S = 3.0

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
BITEXACT_OUT = ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact"]


@dataclass(frozen=True)
class Clip:
    """One synthesised clip: output name, espeak-ng voices to try, two sentences."""

    name: str
    language: str
    voices: tuple[str, ...]
    sentences: tuple[str, str]
    translation: str


CLIPS: tuple[Clip, ...] = (
    Clip(
        "en",
        "English",
        ("en-us", "en"),
        ("My sister and my brother play music.", "We drink tea with milk every morning."),
        "",
    ),
    Clip(
        "zh",
        "Mandarin",
        ("cmn-latn-pinyin", "cmn"),
        ("你好，这是语音识别测试。", "今天天气很好。"),
        "Hello, this is a speech recognition test. The weather is very nice today.",
    ),
    Clip(
        "yue",
        "Cantonese",
        ("yue",),
        ("你好，呢個係語音識別測試。", "今日天氣好好。"),
        "Hello, this is a speech recognition test. The weather is very nice today.",
    ),
    Clip(
        "ja",
        "Japanese",
        ("ja",),
        ("おんせいにんしきの テストです。", "きょうも いい てんきですね。"),
        "This is a speech recognition test. Nice weather again today, isn't it.",
    ),
    Clip(
        "ko",
        "Korean",
        ("ko",),
        ("음성 인식 테스트입니다.", "오늘은 날씨가 좋네요."),
        "This is a speech recognition test. The weather is nice today.",
    ),
)


@dataclass(frozen=True)
class CalibrationClip:
    """One sentence for the server's calibration set (CALIBRATION_DIR, shipped in the package):
    the audio int8's activation scales are fixed
    from, and int8 is checked against fp32 on, at every start (the server's
    engine/calibration.py). Voices, variants and speeds vary so the scales see a range."""

    name: str  # <language>-<n>: the server reads the language from the name
    voice: str
    speed: int
    sentence: str


CALIBRATION: tuple[CalibrationClip, ...] = (
    CalibrationClip("en-1", "en-us", 175,
                    "Could you send me the report before noon tomorrow?"),
    CalibrationClip("en-2", "en-gb+f3", 150,
                    "The children played in the garden until it was dark."),
    CalibrationClip("en-3", "en-us+m2", 200,
                    "Turn left at the second light and park near the bank."),
    CalibrationClip("en-4", "en-029", 165,
                    "Seven hundred people came to hear the music by the lake."),
    CalibrationClip("zh-1", "cmn-latn-pinyin", 175,
                    "请在明天中午以前把报告发给我。"),
    CalibrationClip("zh-2", "cmn", 160,
                    "孩子们在花园里玩到天黑。"),
    CalibrationClip("zh-3", "cmn+f3", 190,
                    "我们周末坐火车去上海旅行。"),
    CalibrationClip("yue-1", "yue", 170,
                    "我哋听日一齐去饮茶。"),
    CalibrationClip("yue-2", "yue+f2", 150,
                    "呢度附近有冇银行？"),
    CalibrationClip("ja-1", "ja", 170,
                    "あしたの あさ えきで あいましょう。"),
    CalibrationClip("ja-2", "ja+f3", 150,
                    "この みせの ケーキは とても おいしいです。"),
    CalibrationClip("ko-1", "ko", 170,
                    "내일 아침에 역에서 만나요."),
)  # fmt: skip

# English clip re-encoded into the formats clients send: name -> ffmpeg output args.
ENGLISH_VARIANTS: dict[str, list[str]] = {
    "en.mp3": ["-c:a", "libmp3lame", "-b:a", "32k", "-id3v2_version", "0", "-write_id3v1", "0"],
    "en.m4a": ["-c:a", "aac", "-b:a", "32k"],
    "en.ogg": ["-c:a", "libopus", "-b:a", "24k", "-f", "ogg"],
    "en.flac": ["-c:a", "flac", "-compression_level", "8"],
    "en.webm": ["-c:a", "libopus", "-b:a", "24k", "-f", "webm"],
    "en_44k_stereo.wav": ["-ar", "44100", "-ac", "2", "-c:a", "pcm_s16le"],
}


def run(cmd: list[str], stdin: bytes | None = None) -> bytes:
    """Run a command, fail loudly with its stderr, return its stdout."""
    proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
        )
    return proc.stdout


def require_tools() -> None:
    """Exit with a clear message if espeak-ng or ffmpeg is missing."""
    missing = [tool for tool in ("espeak-ng", "ffmpeg") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"missing tools: {', '.join(missing)} (apt-get install -y espeak-ng ffmpeg)")


def available_voices() -> set[str]:
    """Return the voice/language names espeak-ng knows (column 2 of --voices)."""
    lines = run(["espeak-ng", "--voices"]).decode().splitlines()[1:]
    return {line.split()[1].lower() for line in lines if len(line.split()) > 1}


def pick_voice(clip: Clip, voices: set[str]) -> str | None:
    """Return the first of the clip's preferred voices that is installed."""
    return next((v for v in clip.voices if v.lower() in voices), None)


def synthesize(text: str, voice: str, workdir: Path, speed: int = ESPEAK_SPEED) -> Path:
    """Speak one sentence with espeak-ng into a WAV file (espeak-ng's native rate)."""
    out = workdir / "sentence.wav"
    speech = ["-v", voice, "-s", str(speed), "-a", str(ESPEAK_AMPLITUDE)]
    run(["espeak-ng", *speech, "-w", str(out), "--stdin"], stdin=text.encode("utf-8"))
    return out


def to_pcm16k(src: Path) -> bytes:
    """Decode/resample any audio file to raw 16 kHz mono s16le bytes with ffmpeg."""
    return run(
        [
            *FFMPEG,
            "-i",
            str(src),
            "-ac",
            "1",
            "-ar",
            str(SAMPLE_RATE),
            "-f",
            "s16le",
            "-c:a",
            "pcm_s16le",
            "-",
        ]
    )


def trim_silence(pcm: bytes, threshold: int = TRIM_THRESHOLD) -> bytes:
    """Strip leading/trailing near-silent samples (espeak-ng pads each utterance)."""
    samples = memoryview(pcm).cast("h")
    loud = [i for i in range(len(samples)) if abs(samples[i]) >= threshold]
    if not loud:
        return b""
    return pcm[loud[0] * SAMPLE_WIDTH : (loud[-1] + 1) * SAMPLE_WIDTH]


def silence(seconds: float) -> bytes:
    """Digital silence of the given length at 16 kHz mono s16le."""
    return b"\x00\x00" * round(seconds * SAMPLE_RATE)


def write_wav(pcm: bytes, out: Path, rate: int = SAMPLE_RATE, channels: int = 1) -> None:
    """Write raw s16le PCM as a canonical 44-byte-header WAV file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(SAMPLE_WIDTH)
        wav.setframerate(rate)
        wav.writeframes(pcm)


def read_wav_pcm(path: Path) -> bytes:
    """Read a 16 kHz mono 16-bit WAV's frames, checking the format."""
    with wave.open(str(path), "rb") as wav:
        fmt = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
        if fmt != (SAMPLE_RATE, 1, SAMPLE_WIDTH):
            raise ValueError(f"{path}: expected 16 kHz mono 16-bit, got {fmt}")
        return wav.readframes(wav.getnframes())


def speech_pcm(clip: Clip, voice: str) -> bytes:
    """Both sentences of a clip at 16 kHz: edge, sentence, pause, sentence, edge."""
    with tempfile.TemporaryDirectory() as tmp:
        parts = [trim_silence(to_pcm16k(synthesize(s, voice, Path(tmp)))) for s in clip.sentences]
    return silence(EDGE_S) + parts[0] + silence(PAUSE_S) + parts[1] + silence(EDGE_S)


def encode_variant(src: Path, out: Path, args: list[str]) -> None:
    """Transcode a WAV into another container/codec deterministically."""
    run([*FFMPEG, "-fflags", "+bitexact", "-i", str(src), *BITEXACT_OUT, *args, str(out)])


def english_unit(out_dir: Path = SAMPLES_DIR) -> bytes:
    """English speech used for long clips: samples/en.wav, synthesised if absent."""
    en_wav = out_dir / "en.wav"
    if en_wav.exists():
        return read_wav_pcm(en_wav)
    return speech_pcm(CLIPS[0], pick_voice(CLIPS[0], available_voices()) or "en")


def make_long_clip(seconds: float, out: Path, out_dir: Path = SAMPLES_DIR) -> Path:
    """Repeat the English clip (with its pauses) up to exactly ``seconds``; write 16 kHz mono WAV.

    The last repetition is cut at the requested length.  Benchmarks call this at
    run time (e.g. 10 s and 60 s); the results are not committed.
    """
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    unit = english_unit(out_dir) + silence(PAUSE_S - EDGE_S * 2)  # 1 s gap between repeats
    n_bytes = round(seconds * SAMPLE_RATE) * SAMPLE_WIDTH
    pcm = (unit * (n_bytes // len(unit) + 1))[:n_bytes]
    write_wav(pcm, out)
    return out


def make_language_clips(out_dir: Path) -> None:
    """Synthesise every language clip whose espeak-ng voice is installed."""
    voices = available_voices()
    for clip in CLIPS:
        voice = pick_voice(clip, voices)
        if voice is None:
            tried = ", ".join(clip.voices)
            print(
                f"skip {clip.name}.wav: espeak-ng has no voice for {clip.language} (tried {tried})"
            )
            continue
        out = out_dir / f"{clip.name}.wav"
        write_wav(speech_pcm(clip, voice), out)
        print(f"wrote {out.name} ({clip.language}, voice {voice}): {' / '.join(clip.sentences)}")


def make_english_variants(out_dir: Path) -> None:
    """Re-encode en.wav into every format in ENGLISH_VARIANTS."""
    src = out_dir / "en.wav"
    if not src.exists():
        print("skip English variants: en.wav was not generated")
        return
    for name, args in ENGLISH_VARIANTS.items():
        encode_variant(src, out_dir / name, args)
        print(f"wrote {name}")


def make_calibration_clips(folder: Path) -> None:
    """Write <language>-<n>.flac into `folder`, one sentence each (FLAC: half the bytes of
    WAV, the same samples)."""
    folder.mkdir(parents=True, exist_ok=True)
    voices = available_voices()
    for clip in CALIBRATION:
        if clip.voice.split("+")[0].lower() not in voices:
            print(f"skip calibration clip {clip.name}: espeak-ng has no voice {clip.voice}")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            spoken = synthesize(clip.sentence, clip.voice, Path(tmp), clip.speed)
            pcm = silence(EDGE_S) + trim_silence(to_pcm16k(spoken)) + silence(EDGE_S)
            wav = Path(tmp) / "clip.wav"
            write_wav(pcm, wav)
            encode_variant(wav, folder / f"{clip.name}.flac",
                           ["-c:a", "flac", "-compression_level", "8"])  # fmt: skip
        print(f"wrote calibration clip {clip.name}.flac ({clip.voice}, {clip.speed} wpm)")


def make_silence(out_dir: Path) -> None:
    """Write samples/silence.wav: digital silence, 16 kHz mono."""
    write_wav(silence(SILENCE_S), out_dir / "silence.wav")
    print(f"wrote silence.wav ({SILENCE_S:g} s of digital silence)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out-dir", type=Path, default=SAMPLES_DIR, help="where to write clips (default: samples/)"
    )
    parser.add_argument(
        "--calibration-dir", type=Path, default=CALIBRATION_DIR,
        help="where to write the calibration clips (default: the package's calibration_clips/)",
    )  # fmt: skip
    parser.add_argument(
        "--long",
        nargs=2,
        metavar=("SECONDS", "OUT"),
        help="only write a long English clip of SECONDS to OUT (16 kHz mono WAV)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Generate all clips, or a single long clip with --long."""
    args = parse_args(argv)
    require_tools()
    if args.long:
        out = make_long_clip(float(args.long[0]), Path(args.long[1]), args.out_dir)
        print(f"wrote {out} ({float(args.long[0]):g} s)")
        return 0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    make_language_clips(args.out_dir)
    make_english_variants(args.out_dir)
    make_silence(args.out_dir)
    make_calibration_clips(args.calibration_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
