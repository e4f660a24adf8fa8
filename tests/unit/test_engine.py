"""The Engine: one model loaded once, one worker thread, a bounded queue."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from concurrent.futures import wait

import numpy as np
import pytest

from sensevoice_server.engine import Engine, Priority
from sensevoice_server.errors import Busy
from sensevoice_server.options import DecodeOptions
from sensevoice_server.settings import Settings
from sensevoice_server.testing.reference import reference_text
from tests.support.samples import SPEECH_SAMPLES, load


@pytest.fixture(scope="module")
def engine(settings: Settings) -> Iterator[Engine]:
    engine = Engine(settings)
    engine.start()
    assert engine.wait_ready(120), engine.failure
    yield engine
    engine.close(timeout=30)


def test_the_model_is_loaded_once_across_calls_languages_and_itn(engine: Engine) -> None:
    audio = load("en.wav")
    texts = {}
    for language in ("auto", "zh", "en", "ja"):
        for use_itn in (True, False):
            result = engine.submit(audio, DecodeOptions(language, use_itn)).result(60)
            texts[language, use_itn] = result.text
    assert engine.load_count == 1
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


def test_segments_carry_vad_times_in_order(engine: Engine) -> None:
    # 40 s of speech: the VAD's pieces merge into segments of up to about 15 s, each
    # starting where the previous one ended (funasr's merge_vad)
    result = engine.submit(np.tile(load("en.wav"), 8), DecodeOptions()).result(60)
    assert len(result.segments) >= 3
    for previous, segment in itertools.pairwise(result.segments):
        assert previous.end_ms == segment.start_ms
    assert all(0 < s.end_ms - s.start_ms <= 15_000 for s in result.segments)
    assert result.segments[-1].end_ms <= 8 * 5062 + 100
    assert " ".join(s.text for s in result.segments) == result.text


def test_silence_gives_no_segments(engine: Engine) -> None:
    result = engine.submit(load("silence.wav"), DecodeOptions()).result(60)
    assert (result.text, result.segments) == ("", [])


def test_progress_counts_segments_up_to_the_total(engine: Engine) -> None:
    seen: list[tuple[int, int]] = []
    engine.submit(load("en.wav"), DecodeOptions(), progress=lambda *p: seen.append(p)).result(60)
    assert seen[-1] == (1, 1)  # the 5 s clip is one merged segment


def test_only_the_worker_thread_calls_the_model(engine: Engine) -> None:
    callers: set[str] = set()
    model = engine._model
    original = model.generate

    def recording_generate(*args, **kwargs):
        callers.add(threading.current_thread().name)
        return original(*args, **kwargs)

    model.generate = recording_generate
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
        del model.generate
    assert callers == {"sensevoice-engine"}


def test_a_full_queue_gives_the_busy_error(settings: Settings) -> None:
    small = Engine(settings.model_copy(update={"queue_size": 2, "live_max_sessions": 0}))
    small.start()
    assert small.wait_ready(60)
    long_audio = np.tile(load("en.wav"), 20)  # 100 s: keeps the worker busy
    try:
        running = [small.submit(long_audio, DecodeOptions()) for _ in range(2)]
        with pytest.raises(Busy, match="busy") as refused:
            small.submit(long_audio, DecodeOptions())
        assert refused.value.retry_after >= 1
        assert all(f.result(120).text for f in running)  # nothing queued was lost
        assert small.submit(load("en.wav"), DecodeOptions()).result(60).text  # and it serves again
    finally:
        small.close(timeout=60)


def test_stream_jobs_run_between_the_batches_of_a_long_upload(
    engine: Engine, reference_model
) -> None:
    long_audio = np.tile(load("en.wav"), 60)  # 5 min, about 20 merged segments, a batch each on CPU
    progress: list[tuple[int, int]] = []
    finished: list[str] = []
    upload = engine.submit(long_audio, DecodeOptions(), progress=lambda *p: progress.append(p))
    upload.add_done_callback(lambda _: finished.append("upload"))
    deadline = time.monotonic() + 60
    while not progress and time.monotonic() < deadline:  # the upload's first batch is done
        time.sleep(0.01)
    utterance = engine.submit(
        load("zh.wav"), DecodeOptions("zh", False), use_vad=False, priority=Priority.STREAM
    )
    utterance.add_done_callback(lambda _: finished.append("utterance"))
    assert utterance.result(60).text.startswith("<|zh|>")
    # the upload is not disturbed by the job run in its middle
    assert upload.result(120).text == reference_text(reference_model, long_audio, "auto", True)
    assert finished == ["utterance", "upload"]  # between two batches, not after the file
    done, total = progress[-1]
    assert done == total > 10
