"""SenseVoice's tags become fields; renderers join segments the way each script is written."""

from __future__ import annotations

from funasr.utils.postprocess_utils import rich_transcription_postprocess

from sensevoice_server.transcript import Segment, Transcript, join_segments, parse_segment


def test_tags_become_language_emotion_and_events() -> None:
    segment = parse_segment("<|en|><|HAPPY|><|Laughter|><|withitn|>That was funny.", 1.0, 2.5)
    assert (segment.language, segment.emotion, segment.events) == ("en", "happy", ["Laughter"])
    assert segment.text == "That was funny."
    assert (segment.start, segment.end) == (1.0, 2.5)


def test_plain_speech_has_no_events_and_unknown_emotion_is_named() -> None:
    segment = parse_segment("<|zh|><|EMO_UNKNOWN|><|Speech|><|woitn|>你好", 0, 1)
    assert (segment.language, segment.emotion, segment.events) == ("zh", "unknown", [])


def test_rich_text_of_a_segment_is_funasrs_rendering() -> None:
    raw = "<|en|><|HAPPY|><|Laughter|><|withitn|>That was funny."
    assert (
        parse_segment(raw, 0, 1).rich
        == rich_transcription_postprocess(raw)
        == "😀That was funny.😊"
    )


def two_english_segments() -> Transcript:
    return Transcript(
        duration=5,
        segments=[
            parse_segment("<|en|><|NEUTRAL|><|Speech|><|withitn|>This is a test.", 0, 2),
            parse_segment("<|en|><|NEUTRAL|><|Speech|><|withitn|>The weather is nice.", 3, 5),
        ],
    )


def test_english_segments_are_joined_with_a_space_unlike_upstream() -> None:
    transcript = two_english_segments()
    assert (
        rich_transcription_postprocess(transcript.raw_text) == "This is a test.The weather is nice."
    )
    assert transcript.rich_text == "This is a test. The weather is nice."
    assert transcript.plain_text == "This is a test. The weather is nice."


def test_chinese_segments_are_joined_without_a_space() -> None:
    segments = [
        parse_segment("<|zh|><|NEUTRAL|><|Speech|><|withitn|>你好。", 0, 1),
        parse_segment("<|zh|><|NEUTRAL|><|Speech|><|withitn|>今天天气很好。", 1, 2),
    ]
    assert Transcript(2, segments).rich_text == "你好。今天天气很好。"
    assert join_segments([("你好。", "zh"), ("Hello.", "en")]) == "你好。 Hello."


def test_language_is_the_one_spoken_longest() -> None:
    segments = [
        parse_segment("<|en|><|NEUTRAL|><|Speech|><|withitn|>Hi.", 0, 1),
        parse_segment("<|zh|><|NEUTRAL|><|Speech|><|withitn|>你好，今天天气很好。", 1, 4),
    ]
    assert Transcript(4, segments).language == "zh"
    assert Transcript(4, []).language == "nospeech"


def test_json_round_trip_keeps_every_field() -> None:
    transcript = two_english_segments()
    assert Transcript.from_dict(transcript.to_dict()) == transcript
    assert isinstance(Transcript.from_dict(transcript.to_dict()).segments[0], Segment)
