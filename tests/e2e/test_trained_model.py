"""Transcripts that can be checked: the trained test model, on speech it never heard, through
funasr's pipeline and every front end of the real app; the words themselves are compared with
the words spoken.

The random tiny checkpoint can only show that two paths agree; a bug that garbles text the
same way on both sides (features, CMVN, LFR, token ids, the query embeddings, a clipped first
frame) passes there and fails here. The clips are new sentences spoken by voices and at
speeds the model was not trained on (testing/espeak_corpus.py keeps them apart). The bounds leave
room over what the model scores (its card, and bench/bench_accuracy.py): a handful of clips
is a noisy sample, while a broken path scores near 100 %.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file

from sensevoice_server.cli.stream import stream_samples
from sensevoice_server.testing import espeak_corpus
from sensevoice_server.testing.audio_files import wav_bytes
from sensevoice_server.testing.reference import reference_model, reference_text
from sensevoice_server.testing.servers import AppProcess
from sensevoice_server.testing.trained_model import card, error_rate, unseen
from tests.support.samples import ROOT

MAX_ERROR_RATE = 25.0  # percent, per language, over the clips of one test
MAX_WORD_TIME_ERROR_S = 0.25  # median over the words heard right, starts and ends
TAG = re.compile(r"<\|([^|]*)\|>")
Heard = tuple[str, str]  # language code, text


@pytest.fixture(scope="module")
def clips() -> list[tuple[espeak_corpus.Utterance, np.ndarray]]:
    """Eight unseen clips, English and Mandarin in turn."""
    utterances = unseen(8, 2026)
    return list(zip(utterances, espeak_corpus.speak_all(utterances), strict=True))


def assert_heard(
    clips: list[tuple[espeak_corpus.Utterance, np.ndarray]], heard: list[Heard]
) -> None:
    """Each clip's language tag right, and each language's error rate within the bound."""
    assert [language for language, _ in heard] == [u.language for u, _ in clips], heard
    totals: dict[str, list[int]] = {}
    for (utterance, _), (_, text) in zip(clips, heard, strict=True):
        edits, length = error_rate(utterance.language, utterance.text, text)
        total = totals.setdefault(utterance.language, [0, 0])
        total[0] += edits
        total[1] += length
    rates = {language: 100 * e / n for language, (e, n) in totals.items()}
    assert all(rate <= MAX_ERROR_RATE for rate in rates.values()), (rates, heard)


def test_the_card_says_what_the_model_was_trained_on_and_how_it_scores() -> None:
    facts = card()
    assert set(facts["words"]) == {"en", "zh"} and "apple" in facts["words"]["en"]
    held_out, trained = facts["voices"]["held_out"], facts["voices"]["trained"]
    assert held_out["en"] and not set(held_out["en"]) & set(trained["en"])
    scores = facts["held_out"]
    assert scores["language_accuracy"] >= 95, scores


def test_the_first_runs_sample_is_heard_word_for_word(trained_app: AppProcess) -> None:
    """The README's no-download first run: samples/en.wav, made of words the model knows."""
    answer = httpx.post(f"{trained_app.url}/api/transcribe", data={"use_itn": "false"},
                        files={"file": ("en.wav", (ROOT / "samples" / "en.wav").read_bytes())},
                        timeout=60)  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["language"] == "en"
    spoken = "my sister and my brother play music we drink tea with milk every morning"
    assert body["plain_text"] == spoken


def test_funasrs_own_pipeline_hears_the_words(
    trained_dir: Path, clips: list[tuple[espeak_corpus.Utterance, np.ndarray]]
) -> None:
    model = reference_model(str(trained_dir), ncpu=1)
    raw = [reference_text(model, audio, "auto", False) for _, audio in clips]
    assert_heard(clips, [(TAG.findall(text)[0], TAG.sub(" ", text)) for text in raw])


def test_the_http_api_hears_the_words(
    trained_app: AppProcess, clips: list[tuple[espeak_corpus.Utterance, np.ndarray]]
) -> None:
    heard = []
    for _, audio in clips:
        answer = httpx.post(
            f"{trained_app.url}/api/transcribe",
            files={"file": ("clip.wav", wav_bytes(audio), "audio/wav")},
            data={"language": "auto", "use_itn": "false"}, timeout=60,
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        body = answer.json()
        heard.append((body["language"], body["plain_text"]))
    assert_heard(clips, heard)


def test_live_finals_hear_the_words_as_the_file_does(
    trained_app: AppProcess, clips: list[tuple[espeak_corpus.Utterance, np.ndarray]]
) -> None:
    """Two clips streamed at real time, at once: the finals read what was said, from its
    first word (a final that clips its start loses it) to its last."""
    some = clips[:2]

    async def finals(audio: np.ndarray) -> Heard:
        messages = await stream_samples(trained_app.url, audio, use_itn=False)
        texts = [m for m in messages if m["type"] == "final"]
        return texts[0]["language"], " ".join(m["text"] for m in texts)

    async def both() -> list[Heard]:
        return list(await asyncio.gather(*(finals(audio) for _, audio in some)))

    assert_heard(some, asyncio.run(both()))


def test_the_gradio_api_hears_the_words(
    trained_app: AppProcess, clips: list[tuple[espeak_corpus.Utterance, np.ndarray]], tmp_path: Path
) -> None:
    client = Client(trained_app.url, verbose=False)
    heard = []
    for index, (_, audio) in enumerate(clips[:2]):
        path = tmp_path / f"clip{index}.wav"
        path.write_bytes(wav_bytes(audio))
        _, table = client.predict(handle_file(str(path)), "auto", False, api_name="/transcribe")
        rows = table["data"]
        heard.append((rows[0][2], " ".join(row[5] for row in rows)))
    assert_heard(clips[:2], heard)


def test_the_batch_cli_hears_the_words(
    trained_app: AppProcess, clips: list[tuple[espeak_corpus.Utterance, np.ndarray]], tmp_path: Path
) -> None:
    for index, (_, audio) in enumerate(clips[:2]):
        (tmp_path / f"clip{index}.wav").write_bytes(wav_bytes(audio))
    done = subprocess.run(
        [sys.executable, "-m", "sensevoice_server.cli", "batch", str(tmp_path), "--url",
         trained_app.url, "--format", "verbose_json", "--no-itn"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    bodies = [json.loads((tmp_path / f"clip{i}.verbose.json").read_text()) for i in range(2)]
    assert_heard(clips[:2], [(b["segments"][0]["language"], b["text"]) for b in bodies])


def test_word_times_are_where_the_words_were_spoken(trained_app: AppProcess) -> None:
    """English words spoken one at a time with known pauses: each word heard right starts
    and ends near where its sound does (a time off by a frame shift, or a segment offset
    lost, moves every word)."""
    errors: list[float] = []
    for utterance in [u for u in unseen(10, 7) if u.language == "en"]:
        audio, truth = espeak_corpus.spaced_words(utterance)
        answer = httpx.post(
            f"{trained_app.url}/v1/audio/transcriptions",
            files={"file": ("clip.wav", wav_bytes(audio), "audio/wav")},
            data={"model": "sensevoice-small", "response_format": "verbose_json",
                  "timestamp_granularities[]": "word", "use_itn": "false"},
            timeout=60,
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        said = iter(answer.json()["words"])
        for word, start, end in truth:
            heard = next((w for w in said if w["word"].strip().lower() == word), None)
            if heard is not None:
                errors += [abs(heard["start"] - start), abs(heard["end"] - end)]
    assert len(errors) >= 2 * 8, "too few words heard right to judge their times"
    assert float(np.median(errors)) <= MAX_WORD_TIME_ERROR_S, sorted(errors)
