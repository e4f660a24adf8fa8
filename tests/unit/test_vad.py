"""The VAD stage: the reference's segments, found in chunks so a cancelled upload stops it.

Both VADs the service runs go through onnxruntime, not funasr and torch: silero-vad (what
the tests' apps use) and an FSMN VAD, the default fsmn-vad's architecture with random
weights (tests/support/fsmn_vad.py), whose network is exported to ONNX at first use. Each
must find exactly the segments funasr finds with the same model on the same audio, and stop
between its chunks when the upload is cancelled.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sensevoice_server.engine import Engine
from sensevoice_server.engine.vad import VadStage
from sensevoice_server.options import DecodeOptions
from sensevoice_server.settings import Settings
from sensevoice_server.testing.reference import reference_model, reference_text
from sensevoice_server.testing.servers import wait_until
from tests.support.fsmn_vad import build_fsmn_vad
from tests.support.inprocess import started_engine
from tests.support.samples import SPEECH_SAMPLES, load

RELEASE_S = 4.0  # one FSMN chunk (60 s of audio) or one silero block, on a loaded 2-core machine
"""How soon after a cancel the VAD thread must be free: one FSMN chunk is a few tens of ms
here, one silero block (16 s of audio) a few ms; before chunking, the VAD ran to the end of
the file: 5-10 s."""


def speech_with_pauses(minutes: float) -> np.ndarray:
    """The English clip and 3 s of silence, over and over: a segment every 8 s, some of
    them across the FSMN's 60 s chunk boundaries."""
    clip = np.concatenate([load("en.wav"), np.zeros(3 * 16_000, np.float32)])
    return np.tile(clip, int(minutes * 60 / (clip.size / 16_000)) + 1)


@pytest.fixture(scope="module")
def fsmn_vad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fsmn_vad(tmp_path_factory.mktemp("fsmn") / "fsmn-vad")


@pytest.fixture(scope="module")
def fsmn_engine(settings: Settings, fsmn_vad: Path) -> Iterator[Engine]:
    engine = started_engine(settings, vad_model=str(fsmn_vad))
    yield engine
    engine.close(timeout=30)


@pytest.fixture(scope="module")
def silero_engine(settings: Settings) -> Iterator[Engine]:
    engine = started_engine(settings)  # the tests' settings: silero-vad
    yield engine
    engine.close(timeout=30)


def test_fsmn_on_onnxruntime_finds_exactly_funasrs_segments(fsmn_vad: Path) -> None:
    """An FSMN VAD runs as an ONNX export of its network, with funasr's frontend and
    post-processing rewritten without torch (engine/fsmn_*.py). Its segments must be those
    of funasr's own `generate()` on the same model and audio, sample for sample, before and
    after merging: speech whose pauses fall on both sides of the 60 s chunk boundaries
    (where funasr's chunked state and its silence schedule step), silence only, a length
    that is no whole number of frames, and noise that never stops (cut at
    max_single_segment_time), as long as two chunks exactly (funasr then runs an empty last
    chunk) or a second more."""
    from funasr import AutoModel
    from funasr.utils.vad_utils import merge_vad

    from sensevoice_server.engine.fsmn_segments import FsmnSegments

    stage = VadStage(str(fsmn_vad), max_single_segment_ms=30_000, merge_length_s=15,
                     device="cpu")  # fmt: skip
    pieces = FsmnSegments(fsmn_vad, max_single_segment_ms=30_000)
    funasr_fsmn = AutoModel(model=str(fsmn_vad), max_single_segment_time=30_000, device="cpu",
                            disable_update=True, disable_pbar=True, disable_log=True)  # fmt: skip
    noise = np.random.default_rng(0).normal(0, 0.1, 120 * 16_000).astype(np.float32)
    pauses = speech_with_pauses(2.6)
    audios = {
        "speech and pauses, 2.7 min": pauses,
        "silence only": np.zeros(70 * 16_000, np.float32),
        "a ragged length": pauses[: 16_000 * 75 + 123],
        "noise, exactly two chunks": noise,
        "noise, a chunk and a second": noise[: 61 * 16_000],
        "one clip": load("en.wav"),
    }
    for name, audio in audios.items():
        found = funasr_fsmn.generate(input=audio)[0]["value"]
        assert pieces(audio, lambda _: None) == found, name
        expected = [(start, end) for start, end in merge_vad(found, 15_000)]
        assert stage.segments(audio) == expected, name
        assert len(found) > 1 or name in ("one clip", "silence only"), (name, found)
    assert stage.segments(audios["silence only"]) == []


def test_the_engine_with_an_fsmn_vad_equals_the_reference_pipeline(
    fsmn_engine: Engine, fsmn_vad: Path, tiny_model: Path
) -> None:
    """The engine with an FSMN VAD (on onnxruntime) transcribes as funasr's own pipeline
    with the same VAD (in torch) does: the same segments, so the same text."""
    audio = speech_with_pauses(2.2)  # segments in three chunks
    reference = reference_model(str(tiny_model), ncpu=1, vad_model=str(fsmn_vad))
    result = fsmn_engine.submit(audio, DecodeOptions()).result(120)
    assert len(result.segments) >= 6
    assert result.text == reference_text(reference, audio, "auto", True)


@pytest.mark.parametrize(("max_single_segment_ms", "merge_length_s"), [(30_000, 15), (2_000, 3)])
def test_silero_on_onnxruntime_finds_exactly_funasrs_silero_segments(
    max_single_segment_ms: int, merge_length_s: int
) -> None:
    """`--vad-model silero-vad` no longer goes through funasr's AutoModel (torch): silero's
    ONNX model on onnxruntime, silero's and funasr's own post-processing. The segments must
    be those funasr's silero path gives on the same audio, edge for edge: the two models'
    probabilities differ by under 1e-5, so an edge could only move where a window's
    probability lies that close to a threshold (none does here). The second settings cut
    long speech at 2 s and merge to 3 s, so funasr's splitting is exercised too."""
    from funasr import AutoModel
    from funasr.utils.vad_utils import merge_vad

    stage = VadStage("silero-vad", max_single_segment_ms=max_single_segment_ms,
                     merge_length_s=merge_length_s, device="cpu")  # fmt: skip
    funasr_silero = AutoModel(model="silero-vad", max_single_segment_time=max_single_segment_ms,
                              device="cpu", disable_update=True, disable_pbar=True,
                              disable_log=True)  # fmt: skip
    noise = np.random.default_rng(1).normal(0, 0.02, 16_000 * 30).astype(np.float32)
    long_clip = speech_with_pauses(3)
    audios = {name: load(name) for name in [*SPEECH_SAMPLES, "silence.wav"]}
    audios["speech and pauses, 3 min"] = long_clip
    audios["the same under noise"] = long_clip + np.resize(noise, long_clip.size)
    audios["not a whole number of windows"] = long_clip[: 16_000 * 20 + 123]
    for name, audio in audios.items():
        found = funasr_silero.generate(input=audio)
        expected = merge_vad(list(found[0]["value"]) if found else [], merge_length_s * 1000)
        assert stage.segments(audio) == [(start, end) for start, end in expected], name
    assert len(stage.segments(long_clip)) >= 10


@pytest.mark.parametrize(("vad", "minutes"), [("silero", 20), ("fsmn", 40)])
def test_a_cancelled_upload_frees_the_vad_at_once_and_is_counted_until_then(
    vad: str, minutes: float, request: pytest.FixtureRequest
) -> None:
    """A client that leaves cancels its job: the VAD stops at its next chunk, so the next
    upload's VAD starts at once, and queue_depth (what /health reports) counts the job for
    as long as the VAD thread still works on it, never 0 while it does."""
    engine: Engine = request.getfixturevalue(f"{vad}_engine")
    upload = engine.submit(speech_with_pauses(minutes), DecodeOptions())
    deadline = time.monotonic() + 30
    while engine.workers.segmenting is None:  # the VAD thread took it
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.5)  # part-way through its VAD (which would take 5-10 s)
    assert engine.queue_depth == 1
    upload.cancel()
    cancelled = time.monotonic()
    seen: list[tuple[int, bool]] = []
    while not seen or seen[-1][1]:
        depth = engine.queue_depth  # read before the VAD thread's state: a 0 here means
        seen.append((depth, engine.workers.segmenting is not None))  # it had let go already
        assert time.monotonic() - cancelled < 30
    released = time.monotonic() - cancelled
    assert all(depth == 1 for depth, busy in seen if busy), seen
    short = engine.submit(load("en.wav"), DecodeOptions()).result(60)
    answered = time.monotonic() - cancelled
    print(
        f"\n[{vad}] VAD free {released:.2f} s after the cancel; next upload answered in "
        f"{answered:.2f} s; queue_depth while it ran {sorted({d for d, busy in seen if busy})}"
    )
    assert released < RELEASE_S and short.text
    assert wait_until(lambda: engine.queue_depth == 0, 5)  # its done-callback runs after result()
