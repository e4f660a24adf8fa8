"""Keywords and expected languages, through every way in, on the trained test model.

The clips are held-out sentences with a name the model never heard put in
(testing/keyword_clips.py). Greedy decoding loses some of those names to words the model
knows better; given the names as keywords, the beam search with a boost writes them, and
leaves sentences without them as they were. Each front end only has to carry the list to the
engine, so each is held to the same clips: the ones greedy gets wrong and biasing gets right,
found once through the OpenAI route. bench/bench_keywords.py measures how much recall,
insertions, WER and CPU the biasing moves.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from openai import AsyncOpenAI, BadRequestError, OpenAI, omit

from sensevoice_server.cli.stream import stream_samples
from sensevoice_server.live.protocol import pcm16_bytes
from sensevoice_server.options import MAX_KEYWORDS
from sensevoice_server.testing import espeak_corpus, keyword_clips
from sensevoice_server.testing.audio_files import wav_bytes
from sensevoice_server.testing.servers import AppProcess
from tests.support.samples import ROOT, resampled

KEYWORDS = keyword_clips.all_names()


@dataclass(frozen=True)
class Clip:
    utterance: espeak_corpus.Utterance
    name: str
    audio: np.ndarray

    def wav(self) -> bytes:
        return wav_bytes(self.audio)


def openai_text(
    app: AppProcess, clip: Clip, keywords: list[str] | None = None,
    languages: list[str] | None = None,
) -> tuple[str, str]:  # fmt: skip
    """(language, text) from the OpenAI route with the SDK, verbose_json."""
    client = OpenAI(base_url=f"{app.url}/v1", api_key="not-needed", max_retries=0)
    answer = client.audio.transcriptions.create(
        model="sensevoice-small", file=("clip.wav", clip.wav()),
        response_format="verbose_json",
        keywords=keywords if keywords is not None else omit,
        languages=languages if languages is not None else omit,
    )  # fmt: skip
    return answer.language, answer.text


@pytest.fixture(scope="module")
def recovered(trained_app: AppProcess) -> list[Clip]:
    """Of sixteen clips with a name, those greedy decoding misses and biasing finds."""
    pairs = keyword_clips.with_names(16)
    audio = espeak_corpus.speak_all([utterance for utterance, _ in pairs])
    clips = [Clip(u, name, a) for (u, name), a in zip(pairs, audio, strict=True)]
    plain = [keyword_clips.contains(c.name, openai_text(trained_app, c)[1]) for c in clips]
    biased = [
        keyword_clips.contains(c.name, openai_text(trained_app, c, keywords=KEYWORDS)[1])
        for c in clips
    ]
    print(f"names found: greedy {sum(plain)} of 16, with keywords {sum(biased)}")
    assert sum(biased) >= 12, "with the names as keywords, most should be written"
    found = [c for c, before, after in zip(clips, plain, biased, strict=True) if after > before]
    assert len(found) >= 3, f"greedy found {sum(plain)} of 16 names, biasing {sum(biased)}"
    assert not any(before > after for before, after in zip(plain, biased, strict=True))
    return found


def test_the_openai_sdks_keywords_write_names_greedy_decoding_misses(
    recovered: list[Clip],
) -> None:
    """The fixture's finding is the test: keywords[] from the openai SDK reach the beam
    search, and biasing loses no name that greedy decoding had."""
    assert all(clip.name in KEYWORDS for clip in recovered)


def test_sentences_without_the_names_read_the_same_with_the_list(
    trained_app: AppProcess,
) -> None:
    """No keyword is forced into speech that does not hold it."""
    utterances = keyword_clips.without_names(6)
    for utterance, audio in zip(utterances, espeak_corpus.speak_all(utterances), strict=True):
        clip = Clip(utterance, "", audio)
        assert openai_text(trained_app, clip, keywords=KEYWORDS) == openai_text(trained_app, clip)


def test_the_native_api_and_its_batch_take_keywords(
    trained_app: AppProcess, recovered: list[Clip]
) -> None:
    clip = recovered[0]
    form = {"keywords": KEYWORDS}
    answer = httpx.post(f"{trained_app.url}/api/transcribe",
                        data={**form, "word_timestamps": "true"},
                        files={"file": ("clip.wav", clip.wav())}, timeout=60)  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert keyword_clips.contains(clip.name, body["plain_text"])
    # word times come from the path that wrote the name
    timed = " ".join(w["word"] for s in body["segments"] for w in s["words"])
    assert keyword_clips.contains(clip.name, timed), timed
    files = [("files", (f"clip{i}.wav", c.wav())) for i, c in enumerate(recovered[:2])]
    answer = httpx.post(f"{trained_app.url}/api/batch", data=form, files=files, timeout=60)
    assert answer.status_code == 200, answer.text
    texts = [item["result"]["plain_text"] for item in answer.json()["results"]]
    assert all(keyword_clips.contains(c.name, t) for c, t in zip(recovered, texts, strict=False))


def test_the_gradio_api_takes_keywords_from_its_field(
    trained_app: AppProcess, recovered: list[Clip], tmp_path: Path
) -> None:
    clip = recovered[0]
    path = tmp_path / "clip.wav"
    path.write_bytes(clip.wav())
    client = Client(trained_app.url, verbose=False)
    field = "\n".join(KEYWORDS)  # the UI's box: one per line (or comma)
    _, table = client.predict(handle_file(str(path)), "auto", True, field, [],
                              api_name="/transcribe")  # fmt: skip
    assert keyword_clips.contains(clip.name, " ".join(row[5] for row in table["data"]))


def test_a_live_streams_config_takes_keywords(
    trained_app: AppProcess, recovered: list[Clip]
) -> None:
    clip = recovered[0]
    messages = asyncio.run(stream_samples(trained_app.url, clip.audio, speed=4.0,
                                          keywords=KEYWORDS))  # fmt: skip
    finals = " ".join(m["text"] for m in messages if m["type"] == "final")
    assert keyword_clips.contains(clip.name, finals), finals


def test_a_realtime_session_takes_keywords_from_its_transcription_settings(
    trained_app: AppProcess, recovered: list[Clip]
) -> None:
    """Manual commits of the clips, at 24 kHz as OpenAI's clients send them (resampled
    twice on the way, so a name greedy decoding only just missed may go either way): the
    session shows the list and most names come back written."""
    some = recovered[:3]

    async def transcribed() -> list[str]:
        client = AsyncOpenAI(base_url=f"{trained_app.url}/v1", api_key="x", max_retries=0)
        texts = []
        async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
            settings = {
                "format": {"type": "audio/pcm", "rate": 24000},
                "turn_detection": None,
                "transcription": {"model": "sensevoice-small", "keywords": KEYWORDS},
            }
            await conn.send(
                {
                    "type": "session.update",
                    "session": {"type": "transcription", "audio": {"input": settings}},
                }
            )
            for clip in some:
                audio = base64.b64encode(pcm16_bytes(resampled(clip.audio, 24000))).decode()
                await conn.send({"type": "input_audio_buffer.append", "audio": audio})
                await conn.send({"type": "input_audio_buffer.commit"})
            async with asyncio.timeout(60):
                async for event in conn:
                    if event.type == "session.updated":  # the session shows the list
                        shown = event.to_dict()["session"]["audio"]["input"]["transcription"]
                        assert shown["keywords"] == KEYWORDS
                    if event.type == "conversation.item.input_audio_transcription.completed":
                        texts.append(event.transcript)
                        if len(texts) == len(some):
                            return texts
        raise AssertionError("not every commit was transcribed")

    texts = asyncio.run(transcribed())
    found = [keyword_clips.contains(c.name, t) for c, t in zip(some, texts, strict=True)]
    assert sum(found) >= len(some) - 1, texts


def test_the_batch_cli_reads_a_keywords_file(
    trained_app: AppProcess, recovered: list[Clip], tmp_path: Path
) -> None:
    clip = recovered[0]
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "clip.wav").write_bytes(clip.wav())
    listed = tmp_path / "names.txt"
    listed.write_text("\n".join(KEYWORDS) + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "sensevoice_server.cli", "batch", str(tmp_path / "audio"),
         "--url", trained_app.url, "--format", "json",
         "--keywords-file", str(listed)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    body = json.loads((tmp_path / "audio" / "clip.json").read_text(encoding="utf-8"))
    assert keyword_clips.contains(clip.name, body["text"])


def test_the_batch_cli_refuses_a_keyword_too_long_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "clip.wav").write_bytes(wav_bytes(np.zeros(16000, np.float32)))
    done = subprocess.run(
        [sys.executable, "-m", "sensevoice_server.cli", "batch", str(tmp_path),
         "--keywords", "x" * 80],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "at most 50 characters" in done.stderr


def test_languages_restrict_what_detection_may_choose(trained_app: AppProcess) -> None:
    """A Mandarin clip and an English clip: under ["zh", "en"] each is what it is; under
    ["en"] the Mandarin clip is decoded with the English query and tagged English (the
    words are the sounds' own: this small model writes the Hanzi it heard either way), and
    the English one is untouched."""
    utterances = keyword_clips.without_names(2)  # English, then Mandarin
    clips = [
        Clip(u, "", a) for u, a in zip(utterances, espeak_corpus.speak_all(utterances), strict=True)
    ]
    both = [openai_text(trained_app, c, languages=["zh", "en"]) for c in clips]
    assert [language for language, _ in both] == ["english", "chinese"], both
    only_english = [openai_text(trained_app, c, languages=["en"]) for c in clips]
    assert only_english[0] == both[0]
    assert only_english[1][0] == "english", only_english


def test_every_way_in_carries_the_expected_languages(
    trained_app: AppProcess, tmp_path: Path
) -> None:
    """The Mandarin clip under ["en"], through the other front ends: each reports English."""
    utterance = keyword_clips.without_names(2)[1]
    assert utterance.language == "zh"
    audio = espeak_corpus.speak_all([utterance])[0]
    path = tmp_path / "clip.wav"
    path.write_bytes(wav_bytes(audio))
    answer = httpx.post(f"{trained_app.url}/api/transcribe", data={"languages": ["en"]},
                        files={"file": ("clip.wav", path.read_bytes())}, timeout=60)  # fmt: skip
    assert answer.json()["language"] == "en", answer.text
    client = Client(trained_app.url, verbose=False)
    _, table = client.predict(handle_file(str(path)), "auto", True, "", ["en"],
                              api_name="/transcribe")  # fmt: skip
    assert {row[2] for row in table["data"]} == {"en"}, table
    messages = asyncio.run(stream_samples(trained_app.url, audio, speed=4.0, languages=["en"]))
    assert {m["language"] for m in messages if m["type"] == "final"} == {"en"}, messages
    done = subprocess.run(
        [sys.executable, "-m", "sensevoice_server.cli", "batch", str(path), "--url",
         trained_app.url, "--format", "verbose_json", "--languages", "en"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "clip.verbose.json").read_text())["language"] == "english"


def test_bad_keyword_and_language_lists_get_a_400_that_says_why(
    trained_app: AppProcess, recovered: list[Clip]
) -> None:
    client = OpenAI(base_url=f"{trained_app.url}/v1", api_key="x", max_retries=0)
    clip = recovered[0]
    cases = [
        ([f"name{i}" for i in range(MAX_KEYWORDS + 1)], ["en"], "at most 100 items"),
        (["x" * 51], ["en"], "at most 50 characters"),
        (["fine"], ["en", "fr"], "languages[] item 2: Input should be 'zh'"),
    ]
    for keywords, languages, message in cases:
        with pytest.raises(BadRequestError) as refused:
            client.audio.transcriptions.create(
                model="sensevoice-small", file=("clip.wav", clip.wav()), keywords=keywords,
                languages=languages,
            )  # fmt: skip
        assert message in str(refused.value), refused.value
    answer = httpx.get(f"{trained_app.url}/health", timeout=10)
    assert answer.status_code == 200  # and the server goes on
