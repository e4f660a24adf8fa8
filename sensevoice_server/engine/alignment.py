"""Word times: CTC forced alignment of the decoded tokens, then tokens grouped into words.

The alignment is funasr's (`ctc_forced_align`, the Viterbi path SenseVoiceSmall's
`output_timestamp=True` runs), on the same log-probabilities and with the same adjustment
(a frame whose best token is blank costs nothing to be blank), timed on 60 ms frames as
funasr times them. Two differences, both deliberate:
- it aligns the token ids the model emitted, where funasr re-tokenises the decoded text and
  drops the first four pieces (the same on the test vocabulary; on the real one a re-encoded
  piece may differ from the emitted one);
- words are grouped from the pieces' word boundaries ("▁"), so digits, apostrophes and
  accented letters stay in their word, where funasr's grouping splits them (docs/FACTS.md,
  "Word timestamps").
  Each CJK character is a word of its own; punctuation joins the word before it.
Only run when a caller asks: it costs a second pass over the segment's logits.

`forced_path` is funasr's `ctc_forced_align` in numpy, step for step (the same recursion,
the same first-best tie-break), for one sequence: funasr's is written in torch, and a CPU
server on onnxruntime otherwise needs no torch (about 540 MB resident). Held equal to
funasr's by tests/unit/test_alignment.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

import numpy as np

from sensevoice_server.characters import is_cjk, is_punctuation
from sensevoice_server.engine.tokens import BLANK, FRAME_MS, QUERY_FRAMES, Token, log_softmax

WORD_START = "\u2581"


@dataclass(frozen=True)
class AlignedWord:
    text: str
    start_ms: int  # from the start of the segment
    end_ms: int
    probability: float  # exp of the mean log-posterior of its tokens


def align(logits: np.ndarray, tokens: tuple[Token, ...]) -> list[tuple[Token, int, int]]:
    """(token, start_ms, end_ms) for each non-tag token, times from the segment's start."""
    text_tokens = [token for token in tokens if not token.is_tag]
    speech = logits[QUERY_FRAMES:]
    if not text_tokens or speech.shape[0] == 0:
        return []
    scores = log_softmax(speech.astype(np.float32))
    scores[scores.argmax(axis=-1) == BLANK, BLANK] = 0.0  # as funasr's inference() does
    frames = scores.shape[0]
    path = forced_path(scores, [token.id for token in text_tokens])
    timed: list[tuple[Token, int, int]] = []
    position = 0
    last_ms = frames * FRAME_MS - FRAME_MS // 2
    for symbol, run in groupby(path):
        length = len(list(run))
        if symbol != BLANK and len(timed) < len(text_tokens):
            start = max(position * FRAME_MS - FRAME_MS // 2, 0)
            end = min((position + length) * FRAME_MS - FRAME_MS // 2, last_ms)
            timed.append((text_tokens[len(timed)], start, end))
        position += length
    return timed


def forced_path(scores: np.ndarray, targets: list[int]) -> list[int]:
    """The best CTC path through `targets` (frames x vocabulary log-probabilities): the
    symbol of each frame, blank between and around the targets."""
    frames = scores.shape[0]
    # the targets with blanks around each: blank, t1, blank, t2, ..., tN, blank
    states = np.full(2 * len(targets) + 1, BLANK, dtype=np.int64)
    states[1::2] = targets
    # a state may be reached from two back only when its symbol differs from that one's
    skip = np.zeros(states.size, dtype=bool)
    skip[2:] = states[2:] != states[:-2]
    best = np.full(states.size, -np.inf, dtype=scores.dtype)
    best[0], best[1] = scores[0, BLANK], scores[0, states[1]]
    back = np.zeros((frames, states.size), dtype=np.int64)  # 0 stay, 1 from one back, 2 two
    minus_inf = np.full(2, -np.inf, dtype=scores.dtype)
    for t in range(1, frames):
        one_back = np.concatenate((minus_inf[:1], best[:-1]))
        two_back = np.where(skip, np.concatenate((minus_inf, best[:-2])), -np.inf)
        choices = np.stack((best, one_back, two_back))
        back[t] = choices.argmax(axis=0)  # the first of equals, as torch's max picks
        best = scores[t, states] + choices[back[t], np.arange(states.size)]
    last = states.size - 1
    state = last - 1 + int(np.argmax(best[last - 1 :]))  # ending on the last target or blank
    path = [0] * frames
    for t in range(frames - 1, -1, -1):
        path[t] = int(states[state])
        state -= int(back[t, state])
    return path


def words(timed: list[tuple[Token, int, int]]) -> list[AlignedWord]:
    """Tokens grouped into the words of the segment's text."""
    grouped: list[tuple[str, int, int, list[float]]] = []
    for token, start, end in timed:
        piece = token.piece
        starts_word = piece.startswith(WORD_START)
        piece = piece.lstrip(WORD_START)
        if not piece:
            continue
        if all(is_cjk(char) for char in piece):
            step = (end - start) / len(piece)
            for index, char in enumerate(piece):
                grouped.append(
                    (char, round(start + index * step), round(start + (index + 1) * step),
                     [token.logprob])
                )  # fmt: skip
        elif grouped and (all(is_punctuation(c) for c in piece) or not starts_word):
            text, first, _, logprobs = grouped[-1]
            word_end = grouped[-1][2] if all(is_punctuation(c) for c in piece) else end
            grouped[-1] = (text + piece, first, word_end, [*logprobs, token.logprob])
        else:
            grouped.append((piece, start, end, [token.logprob]))
    return [
        AlignedWord(text, start, end, float(np.exp(np.mean(logprobs))))
        for text, start, end, logprobs in grouped
    ]
