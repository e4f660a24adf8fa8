"""The one table of output formats (formats.py): OpenAI's names, one meaning each, and bytes
every front end can write as they are. tests/e2e/test_batch_cli.py holds the API, the batch
CLI (in-process and --url) and the web UI's downloads to the same bytes for one clip."""

from __future__ import annotations

import json
from typing import get_args

import pytest
from openai.types import AudioResponseFormat
from openai.types.audio import Transcription, TranscriptionDiarized, TranscriptionVerbose

from sensevoice_server.formats import FORMATS, FormatName, Rendering, canonical
from sensevoice_server.subtitles import CueLimits
from sensevoice_server.transcript import TokenLogprob, Transcript, Word, parse_segment
from tests.support.openai_schema import errors

TAGS = "<|en|><|HAPPY|><|Speech|><|withitn|>"


def spoken(speakers: bool = False) -> Transcript:
    """Two segments with timed words and log-probabilities (speakers S1 and S2 if asked)."""
    first = parse_segment(
        TAGS + "Hello there.", 0.2, 1.4,
        words=[Word("Hello", 0.2, 0.6, 0.9), Word("there.", 0.7, 1.4, 0.8)],
        logprobs=[TokenLogprob("▁Hello", -0.1), TokenLogprob("▁there.", -0.3)],
        speaker=0 if speakers else None,
    )  # fmt: skip
    second = parse_segment(
        "<|en|><|NEUTRAL|><|Laughter|><|withitn|>Good morning, everyone.", 2.0, 3.9,
        words=[Word("Good", 2.0, 2.3), Word("morning,", 2.4, 2.9), Word("everyone.", 3.0, 3.9)],
        speaker=1 if speakers else None,
    )  # fmt: skip
    return Transcript(4.0, [first, second])


SILENCE = Transcript(2.0, [])


def test_the_names_are_openais_response_formats_and_the_cli_keeps_txt() -> None:
    """Every name OpenAI's SDK can send is in the table, and nothing else: a name means one
    format everywhere. `txt`, the batch CLI's name since its first version, is text."""
    assert set(FORMATS) == set(get_args(AudioResponseFormat)) == set(get_args(FormatName))
    assert all(name == fmt.name for name, fmt in FORMATS.items())
    assert canonical("txt") == "text" and canonical("srt") == "srt"


def test_one_input_can_have_every_format_beside_it() -> None:
    suffixes = [fmt.suffix for fmt in FORMATS.values()]
    assert len(set(suffixes)) == len(suffixes) and all(s.startswith(".") for s in suffixes)


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("transcript", [spoken(speakers=True), SILENCE], ids=["speech", "silence"])
def test_every_rendering_ends_with_one_newline_even_without_speech(
    name: str, transcript: Transcript
) -> None:
    """HTTP `text` had no trailing newline while the file `txt` had one (the --url client
    patched it). Now every format's bytes end with exactly one newline wherever they are
    rendered, and no output is empty (the batch CLI takes an empty file for a killed run's)."""
    rendered = FORMATS[name].render(transcript)
    assert rendered.endswith("\n") and not rendered.endswith("\n\n")


@pytest.mark.parametrize("name", FORMATS)
def test_the_media_type_says_how_to_read_the_bytes(name: str) -> None:
    fmt = FORMATS[name]
    rendered = fmt.render(spoken(speakers=True))
    if fmt.media_type == "application/json":
        json.loads(rendered)
    else:
        assert fmt.media_type.endswith("; charset=utf-8")


def test_text_is_the_rich_text_and_a_newline() -> None:
    transcript = spoken()
    assert FORMATS["text"].render(transcript) == transcript.rich_text + "\n"
    assert "😊" in transcript.rich_text  # the emotion emoji are kept


def test_json_is_openais_text_object_with_logprobs_only_when_asked() -> None:
    """`json` meant OpenAI's {"text"} over HTTP and the native API's shape in files; it is
    OpenAI's everywhere now (verbose_json carries the segments)."""
    transcript = spoken()
    plain = Transcription.model_validate_json(FORMATS["json"].render(transcript))
    assert plain.text == transcript.rich_text and plain.logprobs is None
    body = json.loads(FORMATS["json"].render(transcript, Rendering(logprobs=True)))
    assert errors(body, "CreateTranscriptionResponseJson") == []
    assert [item["token"] for item in body["logprobs"]] == ["▁Hello", "▁there."]


@pytest.mark.parametrize(("segments", "words"), [(True, False), (False, True), (True, True)])
def test_verbose_json_has_the_segments_and_words_asked_for(segments: bool, words: bool) -> None:
    rendered = FORMATS["verbose_json"].render(spoken(), Rendering(segments=segments, words=words))
    verbose = TranscriptionVerbose.model_validate_json(rendered)
    assert errors(json.loads(rendered), "CreateTranscriptionResponseVerboseJson") == []
    assert verbose.language == "english" and verbose.duration == 4.0
    assert (verbose.segments is not None) == segments and (verbose.words is not None) == words
    if segments:
        assert verbose.segments is not None
        extra = verbose.segments[1].model_extra or {}
        assert (extra["emotion"], extra["events"]) == ("neutral", ["Laughter"])
    if words:
        assert [w.word for w in verbose.words or []][:2] == ["Hello", "there."]


def test_diarized_json_names_each_segments_speaker() -> None:
    fmt = FORMATS["diarized_json"]
    diarized = TranscriptionDiarized.model_validate_json(fmt.render(spoken(speakers=True)))
    assert [s.speaker for s in diarized.segments] == ["S1", "S2"]
    assert fmt.needs_speakers and not any(
        other.needs_speakers for other in FORMATS.values() if other is not fmt
    )


def test_subtitles_follow_the_cue_limits_and_want_word_times() -> None:
    """srt and vtt are the formats decoded with word times unless a request says otherwise."""
    narrow = Rendering(limits=CueLimits(max_line_chars=12, tags=False))
    srt = FORMATS["srt"].render(spoken(), narrow)
    assert srt.startswith("1\n00:00:00,200 --> ") and "😊" not in srt
    assert all(len(line) <= 12 for line in srt.splitlines() if " --> " not in line)
    assert FORMATS["vtt"].render(spoken()).startswith("WEBVTT\n\n00:00:00.200 --> ")
    assert {name for name, fmt in FORMATS.items() if fmt.word_times} == {"srt", "vtt"}
