"""The Engine: models loaded once, one thread per model, one batcher for every request."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import wait
from pathlib import Path

import numpy as np
import pytest

from sensevoice_server.engine import Engine, EngineSettings, Priority
from sensevoice_server.engine.jobs import EmbedJob, Job
from sensevoice_server.engine.workers import VadQueue
from sensevoice_server.errors import Busy, NotReady
from sensevoice_server.options import DecodeOptions
from sensevoice_server.settings import Settings
from sensevoice_server.testing.reference import reference_text
from tests.support.inprocess import changed, started_engine
from tests.support.samples import EN_SECONDS, SPEECH_SAMPLES, load


@pytest.fixture(scope="module")
def engine(settings: Settings) -> Iterator[Engine]:
    engine = started_engine(settings)
    yield engine
    engine.close(timeout=30)


def test_the_model_is_loaded_once_across_calls_languages_and_itn(engine: Engine) -> None:
    audio = load("en.wav")
    texts = {}
    for language in ("auto", "zh", "en", "ja"):
        for use_itn in (True, False):
            result = engine.submit(audio, DecodeOptions(language, use_itn)).result(60)
            texts[language, use_itn] = result.text
    assert engine.workers.load_count == 1
    # the options reach the model: its tags follow the request
    assert texts["zh", True].startswith("<|zh|>")
    assert texts["ja", False].startswith("<|ja|>")
    assert "<|withitn|>" in texts["en", True]
    assert "<|woitn|>" in texts["en", False]


@pytest.mark.parametrize("name", [*SPEECH_SAMPLES, "silence.wav"])
def test_engine_text_equals_the_reference_pipeline(
    engine: Engine, reference_model, name: str
) -> None:
    audio = load(name)
    for language, use_itn in (("auto", True), ("en", False)):
        result = engine.submit(audio, DecodeOptions(language, use_itn)).result(60)
        assert result.text == reference_text(reference_model, audio, language, use_itn)


def test_segments_carry_vad_times_in_order(engine: Engine, reference_model) -> None:
    # 40 s of speech: the VAD's pieces merge into segments of up to about 15 s, each
    # starting where the previous one ended (funasr's merge_vad)
    audio = np.tile(load("en.wav"), 8)
    result = engine.submit(audio, DecodeOptions()).result(60)
    assert len(result.segments) >= 3
    for previous, segment in itertools.pairwise(result.segments):
        assert previous.end_ms == segment.start_ms
    assert all(0 < s.end_ms - s.start_ms <= 15_000 for s in result.segments)
    assert result.segments[-1].end_ms <= 8 * 1000 * EN_SECONDS + 100
    assert result.text == reference_text(reference_model, audio, "auto", True)


def test_silence_gives_no_segments(engine: Engine) -> None:
    result = engine.submit(load("silence.wav"), DecodeOptions()).result(60)
    assert (result.text, result.segments) == ("", [])


def test_progress_and_segments_arrive_in_time_order(engine: Engine) -> None:
    seen: list[tuple[int, int]] = []
    starts: list[int] = []
    engine.submit(
        np.tile(load("en.wav"), 8), DecodeOptions(), progress=lambda *p: seen.append(p),
        on_segment=lambda segment: starts.append(segment.start_ms),
    ).result(60)  # fmt: skip
    assert seen == [(i, len(seen)) for i in range(1, len(seen) + 1)]
    assert starts == sorted(starts) and len(starts) == len(seen)


def test_each_model_is_called_from_its_own_thread_only(engine: Engine) -> None:
    callers: dict[str, set[str]] = {"model": set(), "vad": set()}
    segmenter = engine.workers.segmenter
    backend, vad = engine.workers.backend, segmenter and segmenter.vad
    assert backend is not None and vad is not None
    logits, segments = backend.logits, vad.segments

    def recording(kind: str, call):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            callers[kind].add(threading.current_thread().name)
            return call(*args, **kwargs)

        return wrapper

    backend.logits = recording("model", logits)  # type: ignore[method-assign]
    vad.segments = recording("vad", segments)  # type: ignore[method-assign]
    try:
        audio = load("en.wav")
        futures = []
        submitters = [
            threading.Thread(target=lambda: futures.append(engine.submit(audio, DecodeOptions())))
            for _ in range(4)
        ]
        for thread in submitters:
            thread.start()
        for thread in submitters:
            thread.join()
        wait(futures, timeout=60)
        assert all(f.exception() is None for f in futures)
    finally:
        del backend.logits, vad.segments  # type: ignore[attr-defined]
    assert callers == {"model": {"sensevoice-engine"}, "vad": {"sensevoice-vad"}}


def test_onnxruntime_takes_two_calls_at_once_each_from_its_own_thread(
    settings: Settings, tiny_onnx: Path
) -> None:
    """onnxruntime's sessions take concurrent calls, so on a CPU the engine runs two at once
    (config.py, `calls_at_once`): uploads waiting together are decoded by both model threads,
    each with its own decoder over the one session, and each upload gets the text that one
    thread alone gives it. No other thread calls the model."""
    onnx = {"backend": "onnx", "onnx_dir": str(tiny_onnx), "precision": "fp32", "ncpu": 2}
    two, one = (started_engine(settings, **onnx, model_threads=n) for n in (2, 1))
    callers: set[str] = set()
    running, most = 0, 0
    lock = threading.Lock()
    backend = two.workers.backend
    assert backend is not None
    logits = backend.logits

    def recording(items):  # type: ignore[no-untyped-def]
        nonlocal running, most
        with lock:
            callers.add(threading.current_thread().name)
            running += 1
            most = max(most, running)
        try:
            time.sleep(0.05)  # long enough for the other thread to come in beside it
            return logits(items)
        finally:
            with lock:
                running -= 1

    backend.logits = recording  # type: ignore[method-assign]
    rng = np.random.default_rng(3)
    uploads = [np.tile(load("en.wav"), 2) + rng.normal(0, 0.01, 2 * load("en.wav").size)
               .astype(np.float32) for _ in range(4)]  # fmt: skip
    try:
        texts = [f.result(120).text for f in [two.submit(u, DecodeOptions()) for u in uploads]]
        alone = [one.submit(u, DecodeOptions()).result(120).text for u in uploads]
    finally:
        two.close(timeout=30)
        one.close(timeout=30)
    assert callers == {"sensevoice-engine", "sensevoice-engine-2"}
    assert most == 2
    assert texts == alone


def test_a_full_queue_gives_the_busy_error(settings: Settings) -> None:
    small = started_engine(settings, queue_size=2, live_max_sessions=0)
    long_audio = np.tile(load("en.wav"), 3)  # not done by the time the third one comes
    try:
        running = [small.submit(long_audio, DecodeOptions()) for _ in range(2)]
        with pytest.raises(Busy, match="busy") as refused:
            small.submit(long_audio, DecodeOptions())
        assert refused.value.retry_after >= 1
        assert all(f.result(120).text for f in running)  # nothing queued was lost
        assert small.submit(load("en.wav"), DecodeOptions()).result(60).text  # serving again
    finally:
        small.close(timeout=60)


def test_live_finals_run_between_the_segments_of_a_long_upload(
    engine: Engine, reference_model
) -> None:
    long_audio = np.tile(load("en.wav"), 12)  # 1 min, about 4 merged segments
    progress: list[tuple[int, int]] = []
    finished: list[str] = []
    upload = engine.submit(long_audio, DecodeOptions(), progress=lambda *p: progress.append(p))
    upload.add_done_callback(lambda _: finished.append("upload"))
    deadline = time.monotonic() + 60
    while not progress and time.monotonic() < deadline:  # the upload's first segment is done
        time.sleep(0.01)
    utterance = engine.submit(
        load("zh.wav"), DecodeOptions("zh", False), use_vad=False, priority=Priority.FINAL
    )
    utterance.add_done_callback(lambda _: finished.append("utterance"))
    assert utterance.result(60).text.startswith("<|zh|>")
    assert upload.result(120).text == reference_text(reference_model, long_audio, "auto", True)
    assert finished == ["utterance", "upload"]  # between two segments, not after the file
    done, total = progress[-1]
    assert done == total >= 4


def test_a_cancelled_job_stops_and_frees_its_place(engine: Engine) -> None:
    progress: list[tuple[int, int]] = []
    job = engine.submit(
        np.tile(load("en.wav"), 12), DecodeOptions(), progress=lambda *p: progress.append(p)
    )
    deadline = time.monotonic() + 60
    while not progress and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.cancel()  # the client went away
    time.sleep(0.5)
    stopped_at = len(progress)
    assert stopped_at < progress[0][1] - 1, progress  # the rest of its segments never ran
    assert engine.queue_depth == 0
    time.sleep(0.5)
    assert len(progress) == stopped_at


def test_results_do_not_depend_on_the_batch(settings: Settings) -> None:
    """Mixed lengths, languages and ITN in one batch give what each gives alone."""
    batching = started_engine(settings, batch_max_items=8, batch_size_s=600, batch_wait_ms=200)
    try:
        clips = [(load(name), DecodeOptions(language, itn)) for name, language, itn in (
            ("en.wav", "auto", True), ("zh.wav", "zh", False), ("ja.wav", "ja", True),
            ("ko.wav", "auto", False), ("yue.wav", "yue", True))]  # fmt: skip
        alone = [batching.submit(a, o, use_vad=False).result(60) for a, o in clips]
        together = [batching.submit(a, o, use_vad=False) for a, o in clips]
        wait(together, timeout=60)
        assert batching.largest_batch >= 4  # they did share model calls
        for solo, batched in zip(alone, together, strict=True):
            result = batched.result(60)
            assert result.text == solo.text
            assert [t.first_frame for t in result.segments[0].tokens] == [
                t.first_frame for t in solo.segments[0].tokens
            ]
    finally:
        batching.close(timeout=30)


def test_the_vad_thread_takes_live_speaker_embeddings_before_uploads_and_ends_last() -> None:
    """A caption waits for its speaker; an hour's upload queued before it must not."""
    audio = np.zeros(1600, np.float32)
    first, second = (Job(audio, DecodeOptions(), Priority.UPLOAD, True) for _ in range(2))
    embed = EmbedJob(audio)
    queue = VadQueue()
    for job in (first, None, second, embed):
        queue.put(job)
    assert [queue.get() for _ in range(4)] == [embed, first, second, None]


def test_waiting_embeddings_can_be_taken_between_an_uploads_chunks() -> None:
    """While the VAD thread works through an upload it serves, between chunks, the live
    embeddings queued meanwhile; uploads stay queued for their turn."""
    audio = np.zeros(1600, np.float32)
    upload = Job(audio, DecodeOptions(), Priority.UPLOAD, True)
    early, late = EmbedJob(audio), EmbedJob(audio)
    queue = VadQueue()
    for job in (upload, early, late):
        queue.put(job)
    assert queue.embeds() == [early, late] and queue.embeds() == []
    queue.put(None)
    assert [queue.get(), queue.get()] == [upload, None]


EARLY_START = """
import sys
from sensevoice_server.engine import Engine, EngineSettings
from sensevoice_server.settings import Settings

settings = Settings(model=sys.argv[1], onnx_dir=sys.argv[2], vad_model="silero-vad",
                    device="cpu", ncpu=1, cache_url="none", backend="auto")
engine = Engine(EngineSettings.of(settings, max_pending=4))
assert engine.start_early()
imported_first = set(sys.modules)
assert engine.wait_ready(120), engine.failure
print(sorted(set(sys.modules) - imported_first))
"""


def test_an_early_start_leaves_no_import_to_the_engines_threads(
    tiny_model: Path, tiny_onnx: Path
) -> None:
    """main.py starts loading the models before it imports the web app (Gradio's modules:
    about 2 s), so the two run at once. The engine's threads must then import nothing: a
    torch import in one beside Gradio's in the main thread hung a server. What the loading
    needs is imported first, by the thread that starts it. (A fresh interpreter: this one
    imported everything long ago.)"""
    run = subprocess.run([sys.executable, "-c", EARLY_START, str(tiny_model), str(tiny_onnx)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]"


def test_an_engine_that_would_import_torch_is_not_started_early(settings: Settings) -> None:
    """With torch anywhere in the loading (the torch backend; a hub model that modelscope,
    which imports torch, must download first) the models load after the web app is built."""
    assert settings.backend == "torch"
    for case in (settings, changed(settings, backend="onnx", vad_model="fsmn-vad")):
        engine = Engine(EngineSettings.of(case, max_pending=4))
        assert not engine.start_early()
        assert not any(thread.is_alive() for thread in engine.workers.threads)


def test_a_thread_that_fails_fails_every_waiting_job_and_stops_the_server(
    settings: Settings,
) -> None:
    """A fault outside any one job's handling (here, injected: the batcher refusing the
    segments, as a bug would) ends the VAD thread. The job it held and every job queued
    behind it fail with that error instead of waiting for good, later ones are refused, and
    the server is told to stop, so that its supervisor restarts it."""
    stops: list[Exception] = []
    engine = Engine(EngineSettings.of(settings, max_pending=8), on_fatal=stops.append)
    engine.start()
    assert engine.wait_ready(120), engine.failure

    def refuse(items: object) -> None:
        raise RuntimeError("a bug in the batcher")

    engine.workers.batcher.put = refuse  # type: ignore[method-assign,assignment]
    try:
        long_audio = np.tile(load("en.wav"), 10)  # still in the VAD when the others come
        waiting = [
            engine.submit(audio, DecodeOptions()) for audio in (long_audio, *[load("en.wav")] * 2)
        ]
        for future in waiting:
            with pytest.raises(RuntimeError, match="a bug in the batcher"):
                future.result(60)
        assert [str(error) for error in stops] == ["a bug in the batcher"]
        assert not engine.ready
        with pytest.raises(NotReady):
            engine.submit(load("en.wav"), DecodeOptions(), admitted=True)
    finally:
        engine.close(timeout=10)
