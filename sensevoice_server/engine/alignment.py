"""Word times: CTC forced alignment of the decoded tokens, then tokens grouped into words.

The alignment is funasr's own (`ctc_forced_align`, the Viterbi path SenseVoiceSmall's
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
    import torch
    from funasr.models.sense_voice.utils.ctc_alignment import ctc_forced_align

    text_tokens = [token for token in tokens if not token.is_tag]
    speech = logits[QUERY_FRAMES:]
    if not text_tokens or speech.shape[0] == 0:
        return []
    scores = log_softmax(speech.astype(np.float32))
    scores[scores.argmax(axis=-1) == BLANK, BLANK] = 0.0  # as funasr's inference() does
    frames = scores.shape[0]
    path = ctc_forced_align(
        torch.from_numpy(scores).unsqueeze(0),
        torch.tensor([[token.id for token in text_tokens]], dtype=torch.long),
        torch.tensor([frames], dtype=torch.long),
        torch.tensor([len(text_tokens)], dtype=torch.long),
    )[0].tolist()
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
