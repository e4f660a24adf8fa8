"""Subtitle cues people can read: short lines, few of them, a few seconds each, whole words."""

from __future__ import annotations

import itertools
import re

import pytest

from sensevoice_server.subtitles import CueLimits, cues, to_srt, to_vtt
from sensevoice_server.transcript import Segment, Transcript, Word, parse_segment

SENTENCES = (
    "The committee met on Tuesday to discuss the budget for next year. After a long debate, "
    "they agreed to increase funding for the public library, the parks and the schools. "
    "Several members asked for more time; the chair refused. The vote will take place in March."
)


def timed(
    text: str, start: float = 0.0, pace: float = 0.32, pauses: dict[int, float] | None = None
) -> list[Word]:
    """Words at a steady pace, with optional pauses after some of them."""
    words, position = [], start
    for index, word in enumerate(text.split()):
        words.append(Word(word, round(position, 3), round(position + pace - 0.04, 3)))
        position += pace + (pauses or {}).get(index, 0.0)
    return words


def segment(
    text: str, words: list[Word], raw_tags: str = "<|en|><|NEUTRAL|><|Speech|><|withitn|>"
) -> Segment:
    base = parse_segment(
        raw_tags + text, words[0].start if words else 0.0, words[-1].end if words else 5.0
    )
    return Segment(**{**base.__dict__, "words": words})


def check_limits(built: list, limits: CueLimits) -> None:
    for cue in built:
        assert 1 <= len(cue.lines) <= limits.max_lines, cue
        assert all(len(line) <= limits.max_line_chars for line in cue.lines), cue
        assert cue.end - cue.start <= limits.max_cue_s + 1e-6, cue
        assert cue.start <= cue.end


def test_long_speech_becomes_short_cues_that_keep_every_word_in_order() -> None:
    words = timed(SENTENCES)
    transcript = Transcript(80.0, [segment(SENTENCES, words)])
    built = cues(transcript)
    check_limits(built, CueLimits())
    said = " ".join(" ".join(cue.lines) for cue in built).split()
    assert said == SENTENCES.split()  # no word lost, split or repeated
    assert all(a.end <= b.start for a, b in itertools.pairwise(built))


def test_cues_end_at_sentence_ends_and_pauses_first() -> None:
    text = "Hello there. How are you today my friend"
    words = timed(text, pauses={4: 1.2})  # a long pause after "you"
    built = cues(Transcript(10.0, [segment(text, words)]))
    assert [" ".join(cue.lines) for cue in built] == [
        "Hello there.",
        "How are you",
        "today my friend",
    ]


def test_chinese_is_counted_by_characters_and_joined_without_spaces() -> None:
    text = "今天天气很好我们一起去公园散步然后去吃饭晚上看电影" * 3
    words = [Word(char, i * 0.2, i * 0.2 + 0.18) for i, char in enumerate(text)]
    raw = "<|zh|><|NEUTRAL|><|Speech|><|withitn|>"
    built = cues(Transcript(20.0, [segment(text, words, raw)]), CueLimits(max_line_chars=16))
    check_limits(built, CueLimits(max_line_chars=16))
    assert "".join("".join(cue.lines) for cue in built) == text
    assert all(" " not in line for cue in built for line in cue.lines)


def test_emoji_open_the_first_cue_and_close_the_last_unless_stripped() -> None:
    text = "That was really funny. I cannot stop laughing about it all day long."
    raw = "<|en|><|HAPPY|><|Laughter|><|withitn|>"
    transcript = Transcript(9.0, [segment(text, timed(text), raw)])
    built = cues(transcript)
    assert built[0].lines[0].startswith("😀") and built[-1].lines[-1].endswith("😊")
    plain = cues(transcript, CueLimits(tags=False))
    assert "😀" not in str(plain) and "😊" not in str(plain)


def test_without_word_times_cues_spread_over_the_segment() -> None:
    text = SENTENCES
    transcript = Transcript(
        60.0, [parse_segment("<|en|><|NEUTRAL|><|Speech|><|withitn|>" + text, 0.0, 60.0)]
    )
    built = cues(transcript)
    check_limits(built, CueLimits())
    assert built[0].start == 0.0 and built[-1].end == pytest.approx(60.0, abs=0.01)


def test_speakers_show_in_srt_and_as_vtt_voices() -> None:
    text = "Good morning everyone."
    first = Segment(**{**segment(text, timed(text)).__dict__, "speaker": 0})
    second = Segment(**{**segment(text, timed(text, start=3.0)).__dict__, "speaker": 1})
    transcript = Transcript(6.0, [first, second])
    assert "[S1] Good morning everyone." in to_srt(transcript)
    assert "<v S2>Good morning everyone." in to_vtt(transcript)


def test_srt_and_vtt_files_are_well_formed() -> None:
    transcript = Transcript(80.0, [segment(SENTENCES, timed(SENTENCES))])
    srt, vtt = to_srt(transcript), to_vtt(transcript)
    blocks = srt.strip().split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == [str(i) for i in range(1, len(blocks) + 1)]
    stamp = r"\d\d:\d\d:\d\d[,.]\d\d\d"
    assert all(re.fullmatch(f"{stamp} --> {stamp}", b.splitlines()[1]) for b in blocks)
    assert vtt.startswith("WEBVTT\n\n") and vtt.count(" --> ") == len(blocks)


def test_no_cue_ends_after_the_audio() -> None:
    """A short last cue is held on screen MIN_CUE_S, and word times may overrun the VAD's end
    by a few ms: neither may show text after the audio has ended (a 5.06 s clip once got a
    last cue ending at 5.29 s)."""
    text = "Hello there. The weather is nice today."
    words = timed(text, start=0.2, pace=0.5)
    words[-1] = Word("today.", 4.59, 5.08)  # the last word, overrunning a 5.06 s clip
    transcript = Transcript(5.06, [segment(text, words)])
    built = cues(transcript)
    assert built[-1].lines == ["today."] and built[-1].start == 4.59
    assert all(cue.start <= cue.end <= 5.06 for cue in built)
    assert "00:00:04,590 --> 00:00:05,060" in to_srt(transcript)
    assert "00:00:04.590 --> 00:00:05.060" in to_vtt(transcript)


def test_short_cues_are_still_held_within_the_audio() -> None:
    text = "Yes. No."
    words = [Word("Yes.", 1.0, 1.2), Word("No.", 3.0, 3.2)]
    built = cues(Transcript(10.0, [segment(text, words)]))
    assert [(cue.start, cue.end) for cue in built] == [(1.0, 1.7), (3.0, 3.7)]
