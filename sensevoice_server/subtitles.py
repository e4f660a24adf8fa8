"""Subtitles people can read: SRT and WebVTT cues of at most two short lines and a few seconds.

Cues are built from word times (forced alignment), within one segment at a time (a segment
has one language, emotion, speaker): at most `max_line_chars` characters per line (about 42,
counted in characters, so CJK text too), `max_lines` lines and `max_cue_s` seconds, never
splitting a word, and breaking at sentence ends and pauses first, then at clause punctuation,
as subtitle editors and Netflix's timed-text guidelines do. Without word times a segment's
words are spread over its span by their length in characters. The segment's event emoji
open its first cue and its emotion emoji close its last (SenseVoice's rich text, the
project's point) unless `tags=False`; speakers show as `[S1]` (SRT) or a voice tag (VTT).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from sensevoice_server.characters import is_cjk, is_punctuation
from sensevoice_server.transcript import Segment, Transcript, Word

SENTENCE_END = ".!?。！？…"
CLAUSE_END = ",;:，；：、"
PAUSE_S = 0.6  # a silence this long between words ends a cue
MIN_CUE_S = 0.7  # a shorter cue is held on screen longer, up to the next one


@dataclass(frozen=True)
class CueLimits:
    max_line_chars: int = 42
    max_lines: int = 2
    max_cue_s: float = 7.0
    tags: bool = True  # keep the emotion and event emoji


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: list[str]
    speaker: int | None = None


def cues(transcript: Transcript, limits: CueLimits = CueLimits()) -> list[Cue]:
    built: list[Cue] = []
    for segment in transcript.segments:
        if segment.text:
            built.extend(segment_cues(segment, limits))
    return hold_short_cues(built, transcript.duration)


def segment_cues(segment: Segment, limits: CueLimits) -> list[Cue]:
    words = segment.words or spread(segment)
    prefix, suffix = decorations(segment.rich) if limits.tags else ("", "")
    chunks = split(words, limits, reserve=len(prefix) + len(suffix))
    made = []
    for index, chunk in enumerate(chunks):
        text_words = [w.word for w in chunk]
        if index == 0 and prefix:
            text_words[0] = prefix + text_words[0]
        if index == len(chunks) - 1 and suffix:
            text_words[-1] = text_words[-1] + suffix
        lines = wrap(text_words, limits.max_line_chars) or [join(text_words)]
        end = max(chunk[-1].end, chunk[0].start)
        made.append(Cue(chunk[0].start, end, lines, segment.speaker))
    return made


def split(words: list[Word], limits: CueLimits, reserve: int = 0) -> list[list[Word]]:
    """Consecutive runs of words, each fitting one cue."""
    chunks: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        paused = bool(current) and word.start - current[-1].end >= PAUSE_S
        if current and (paused or ends(current[-1], SENTENCE_END)):
            chunks.append(current)
            current = []
        if current and not fits([*current, word], limits, reserve):
            cut = best_break(current)
            chunks.append(current[:cut])
            current = current[cut:]
            while current and not fits([*current, word], limits, reserve):
                chunks.append(current)
                current = []
        current.append(word)
    if current:
        chunks.append(current)
    return chunks


def fits(words: list[Word], limits: CueLimits, reserve: int) -> bool:
    if words[-1].end - words[0].start > limits.max_cue_s and len(words) > 1:
        return False
    texts = [w.word for w in words]
    if reserve:
        texts = [("x" * reserve) + texts[0], *texts[1:]]
    if len(join(texts)) <= limits.max_line_chars:
        return True
    return limits.max_lines >= 2 and len(words) > 1 and bool(wrap(texts, limits.max_line_chars))


def best_break(words: list[Word]) -> int:
    """Where to end a cue that is full: after its last clause punctuation or pause in its
    second half, else after its last word."""
    for index in range(len(words) - 1, max(len(words) // 2, 1) - 1, -1):
        after_pause = index + 1 < len(words) and words[index + 1].start - words[index].end > 0.25
        if ends(words[index], SENTENCE_END + CLAUSE_END) or after_pause:
            return index + 1
    return len(words)


def wrap(texts: list[str], width: int) -> list[str]:
    """One line, or two balanced lines (preferring a break after punctuation) that both fit;
    [] when no break makes two lines fit."""
    whole = join(texts)
    if len(whole) <= width:
        return [whole]
    best: tuple[float, list[str]] | None = None
    for cut in range(1, len(texts)):
        first, second = join(texts[:cut]), join(texts[cut:])
        if len(first) > width or len(second) > width:
            continue
        after_mark = texts[cut - 1][-1:] in CLAUSE_END + SENTENCE_END
        score = abs(len(first) - len(second)) - (10 if after_mark else 0)
        if best is None or score < best[0]:
            best = (score, [first, second])
    return best[1] if best else []


def join(texts: list[str]) -> str:
    """Words joined as they are written: a space between them, none between CJK characters."""
    out = ""
    for text in texts:
        if out and not (is_cjk(out[-1]) and is_cjk(text[:1])):
            out += " "
        out += text
    return out


def spread(segment: Segment) -> list[Word]:
    """Words without alignment: the text's words, timed in proportion to their length."""
    texts: list[str] = []
    for token in segment.text.split():
        if all(is_cjk(c) or is_punctuation(c) for c in token):
            for char in token:  # punctuation stays with the character before it
                if texts and is_punctuation(char):
                    texts[-1] += char
                else:
                    texts.append(char)
        else:
            texts.append(token)
    total = sum(len(t) for t in texts) or 1
    span = segment.end - segment.start
    words, position = [], segment.start
    for text in texts:
        length = span * len(text) / total
        words.append(Word(text, round(position, 3), round(position + length, 3)))
        position += length
    return words


def decorations(rich: str) -> tuple[str, str]:
    """The emoji a segment's rich text opens with (events) and closes with (emotion)."""
    lead = ""
    for char in rich:
        if not is_emoji(char):
            break
        lead += char
    trail = ""
    for char in reversed(rich[len(lead) :]):
        if not is_emoji(char):
            break
        trail = char + trail
    return lead, trail


def hold_short_cues(built: list[Cue], duration: float) -> list[Cue]:
    """Short cues stay on screen MIN_CUE_S, up to the next cue; no cue outlasts the audio
    (holding the last one, or a word time that overruns the VAD's end by a few ms, would
    otherwise show text after the player has stopped). A duration of 0 means unknown."""
    held = []
    for index, cue in enumerate(built):
        following = built[index + 1].start if index + 1 < len(built) else cue.start + MIN_CUE_S
        end = max(cue.end, min(cue.start + MIN_CUE_S, following))
        if duration > 0:
            end = max(cue.start, min(end, duration))
        held.append(Cue(cue.start, end, cue.lines, cue.speaker))
    return held


def ends(word: Word, marks: str) -> bool:
    return word.word[-1:] in marks


def is_emoji(char: str) -> bool:
    return unicodedata.category(char) == "So"


# --- files ------------------------------------------------------------------------------------
def timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


@dataclass(frozen=True)
class CueFormat:
    """How SRT and VTT differ: a header, numbered cues, the millisecond separator, and how
    a speaker is marked (SRT has no voice tag: a `[S1]` prefix is the convention)."""

    header: str | None
    numbered: bool
    separator: str
    speaker: str  # formatted with the 1-based speaker number, before the first line


SRT = CueFormat(header=None, numbered=True, separator=",", speaker="[S{}] ")
VTT = CueFormat(header="WEBVTT\n", numbered=False, separator=".", speaker="<v S{}>")


def to_srt(transcript: Transcript, limits: CueLimits = CueLimits()) -> str:
    return render(transcript, limits, SRT)


def to_vtt(transcript: Transcript, limits: CueLimits = CueLimits()) -> str:
    return render(transcript, limits, VTT)


def render(transcript: Transcript, limits: CueLimits, style: CueFormat) -> str:
    blocks = [style.header] if style.header else []
    for index, cue in enumerate(cues(transcript, limits), start=1):
        lines = list(cue.lines)
        if cue.speaker is not None:
            lines[0] = style.speaker.format(cue.speaker + 1) + lines[0]
        times = f"{timestamp(cue.start, style.separator)} --> {timestamp(cue.end, style.separator)}"
        number = f"{index}\n" if style.numbered else ""
        blocks.append(f"{number}{times}\n" + "\n".join(lines) + "\n")
    return "\n".join(blocks)
