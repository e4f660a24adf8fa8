"""CTC prefix beam search with a keyword boost: the decode when a caller gives keywords.

Greedy decoding (tokens.greedy) takes each frame's best token, so a name the model hears as
a slightly likelier common word is lost for good. Beam search keeps the `width` best
prefixes (each the sum over the CTC paths that spell it) and lets the keyword graph add its
boost to prefixes that spell a keyword; a keyword wins only where the audio gives it some
probability, which is what keeps insertions rare. Without keywords the service decodes
greedily as before (the same words, at the same speed).

Only the speech frames are searched: the four query frames (language, emotion, event, ITN)
decode greedily as always, so the tags are the ones greedy gives. Each emitted token keeps
the frame where its prefix first took it and its log-probability there, so word times
(alignment.py aligns the chosen tokens) and logprobs come from this path too.

Plain Python over a few candidates per frame (the tokens within `PRUNE` of the frame's best,
at most `width`): frames where blank is all but certain only extend every prefix by blank.
The README's keyword table has what it costs against greedy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sensevoice_server.engine.keyword_graph import KeywordGraph, State
from sensevoice_server.engine.tokens import BLANK, QUERY_FRAMES, Token, Vocabulary, log_softmax

WIDTH = 8
PRUNE = 8.0  # a candidate token's log-probability is within this of the frame's best
SURE_BLANK = math.log(0.999)  # frames this blank are only blank (no new token can win)
NEG_INF = -math.inf


@dataclass
class Prefix:
    tokens: tuple[int, ...]
    frames: tuple[int, ...]  # the frame each token was first emitted on
    state: State
    bonus: float  # what the keyword graph has added so far
    blank: float = NEG_INF  # log-probability of the paths ending in blank
    token: float = NEG_INF  # ... and of those ending in the last token

    @property
    def total(self) -> float:
        return add_logs(self.blank, self.token)

    @property
    def score(self) -> float:
        return self.total + self.bonus


def beam_search(
    logits: np.ndarray, vocabulary: Vocabulary, graph: KeywordGraph, width: int = WIDTH
) -> tuple[str, list[Token]]:
    """The tagged text and tokens, as `tokens.greedy` gives them, with keywords favoured."""
    log_probs = log_softmax(logits.astype(np.float32))
    tags = query_tokens(log_probs, vocabulary)
    beams: dict[tuple[int, ...], Prefix] = {(): Prefix((), (), State(), 0.0, blank=0.0)}
    for frame in range(QUERY_FRAMES, log_probs.shape[0]):
        beams = extend(beams, log_probs[frame], frame, graph, width)
    best = max(beams.values(), key=lambda p: p.score + graph.finish(p.state))
    tokens = tags + [
        Token(i, vocabulary.pieces[i], f, f, float(log_probs[f, i]))
        for i, f in zip(best.tokens, best.frames, strict=True)
    ]
    return vocabulary.text([t.id for t in tokens]), tokens


def query_tokens(log_probs: np.ndarray, vocabulary: Vocabulary) -> list[Token]:
    best = log_probs[:QUERY_FRAMES].argmax(axis=-1)
    return [
        Token(int(i), vocabulary.pieces[int(i)], f, f, float(log_probs[f, i]))
        for f, i in enumerate(best)
        if i != BLANK and (f == 0 or i != best[f - 1])
    ]


def extend(
    beams: dict[tuple[int, ...], Prefix],
    row: np.ndarray,
    frame: int,
    graph: KeywordGraph,
    width: int,
) -> dict[tuple[int, ...], Prefix]:
    """One frame of prefix beam search: every prefix by blank, by its last token again, and
    by each candidate token."""
    candidates = [] if row[BLANK] > SURE_BLANK else candidate_tokens(row, width)
    after: dict[tuple[int, ...], Prefix] = {}
    for prefix in beams.values():
        total = prefix.total
        same = after.setdefault(prefix.tokens, Prefix(prefix.tokens, prefix.frames,
                                                      prefix.state, prefix.bonus))  # fmt: skip
        same.blank = add_logs(same.blank, total + float(row[BLANK]))
        last = prefix.tokens[-1] if prefix.tokens else None
        if last is not None:
            same.token = add_logs(same.token, prefix.token + float(row[last]))
        for token in candidates:
            # a repeat of the last token is a new token only after a blank
            score = (prefix.blank if token == last else total) + float(row[token])
            key = (*prefix.tokens, token)
            grown = after.get(key)
            if grown is None:
                state, added = graph.step(prefix.state, token)
                grown = after[key] = Prefix(key, (*prefix.frames, frame), state,
                                            prefix.bonus + added)  # fmt: skip
            grown.token = add_logs(grown.token, score)
    kept = sorted(after.values(), key=lambda p: p.score, reverse=True)[:width]
    return {prefix.tokens: prefix for prefix in kept}


def candidate_tokens(row: np.ndarray, width: int) -> list[int]:
    """The non-blank tokens worth trying on this frame: the best `width`, within PRUNE."""
    top = np.argpartition(row, -width)[-width:]
    floor = row[top].max() - PRUNE
    return [int(i) for i in top if i != BLANK and row[i] >= floor]


def add_logs(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) on two floats (numpy's ufunc costs more than the sum here)."""
    if a < b:
        a, b = b, a
    if b == NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))
