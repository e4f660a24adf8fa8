"""From CTC logits to tokens and tagged text, the same for every backend.

funasr's SenseVoiceSmall decodes greedily: the best token of each frame, repeats collapsed,
blanks (id 0) dropped, the ids turned into text by SentencePiece (`DecodeIds`). Doing it here,
once, means the torch and ONNX backends only have to produce logits, and agree by
construction on everything after them: text, token frames and log-probabilities.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

BLANK = 0
FRAME_MS = 60  # one LFR frame: 6 fbank frames of 10 ms
QUERY_FRAMES = 4  # language, emotion, event and ITN come first, one frame each


@dataclass(frozen=True)
class Token:
    """One decoded token and the frames (of its segment's logits) it was emitted on."""

    id: int
    piece: str
    first_frame: int
    last_frame: int  # inclusive
    logprob: float  # the log-posterior of the token at its best frame (NaN: not asked)

    @property
    def is_tag(self) -> bool:
        return self.piece.startswith("<|") and self.piece.endswith("|>")


class Vocabulary:
    """Token ids to pieces and text: SentencePiece itself when its model is at hand (exactly
    funasr's decoding), else sherpa-onnx's tokens.txt (`piece id` per line)."""

    def __init__(self, pieces: list[str], processor: object | None = None) -> None:
        self.pieces = pieces
        self._processor = processor

    @classmethod
    def from_sentencepiece(cls, path: str | Path) -> Vocabulary:
        import sentencepiece as spm

        processor = spm.SentencePieceProcessor(model_file=str(path))
        pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
        return cls(pieces, processor)

    @classmethod
    def from_tokens_txt(cls, path: str | Path) -> Vocabulary:
        pieces: dict[int, str] = {}
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                piece, _, index = line.rpartition(" ")
                pieces[int(index)] = piece
        return cls([pieces.get(i, "") for i in range(max(pieces) + 1)])

    @classmethod
    def from_model_dir(cls, directory: str | Path) -> Vocabulary:
        """The SentencePiece model configuration.json names, else tokens.txt."""
        directory = Path(directory)
        configuration = directory / "configuration.json"
        if configuration.exists():
            metas = json.loads(configuration.read_text()).get("file_path_metas", {})
            name = metas.get("tokenizer_conf", {}).get("bpemodel")
            if name and (directory / name).exists():
                return cls.from_sentencepiece(directory / name)
        models = sorted(directory.glob("*.bpe.model"))
        if models:
            return cls.from_sentencepiece(models[0])
        if (directory / "tokens.txt").exists():
            return cls.from_tokens_txt(directory / "tokens.txt")
        raise FileNotFoundError(f"{directory}: no SentencePiece model and no tokens.txt")

    def __len__(self) -> int:
        return len(self.pieces)

    def text(self, ids: list[int]) -> str:
        if self._processor is not None:
            return str(self._processor.decode_ids(ids))  # type: ignore[attr-defined]
        return "".join(self.pieces[i] for i in ids).replace("\u2581", " ").strip()

    @cached_property
    def ids(self) -> dict[str, int]:
        return {piece: index for index, piece in enumerate(self.pieces) if piece}

    def encode(self, text: str) -> list[int]:
        """Token ids for `text` (keywords): SentencePiece's own segmentation, else the
        longest piece at each point of the text with "\u2581" for each space (a tokens.txt
        carries no segmentation model); ids 0 (<unk>) where nothing matches."""
        if self._processor is not None:
            return list(self._processor.encode(text))  # type: ignore[attr-defined]
        known = self.ids
        written = "\u2581" + "\u2581".join(text.split())
        ids, start = [], 0
        while start < len(written):
            end = next((end for end in range(len(written), start, -1)
                        if written[start:end] in known), start + 1)  # fmt: skip
            ids.append(known.get(written[start:end], 0))
            start = end
        return ids

    def tokens_txt(self) -> str:
        """sherpa-onnx's tokens.txt for this vocabulary."""
        return "".join(f"{piece} {index}\n" for index, piece in enumerate(self.pieces))


def log_sum_exp(logits: np.ndarray) -> np.ndarray:
    """Each row's log-normaliser: a token's log-posterior is its logit minus this. (Only
    the rows and ids that greedy keeps are wanted, not a whole log-softmax of 25k columns.)"""
    peak = logits.max(axis=-1)
    totals: np.ndarray = peak + np.log(np.exp(logits - peak[:, None]).sum(axis=-1))
    return totals


def log_softmax(logits: np.ndarray) -> np.ndarray:
    log_probs: np.ndarray = logits - log_sum_exp(logits)[:, None]
    return log_probs


def greedy(
    logits: np.ndarray, vocabulary: Vocabulary, *, logprobs: bool = True
) -> tuple[str, list[Token]]:
    """The tagged text and its tokens, as funasr's greedy CTC decode gives them.

    `logits` is one segment's (frames, vocabulary) array, query frames included. Token
    log-posteriors (`logprobs`) cost an exp over every kept frame's 25k logits, as much as
    the rest of decoding: without them each token's `logprob` is NaN.
    """
    best = logits.argmax(axis=-1)
    if best.size == 0:
        return "", []
    starts = np.flatnonzero(np.r_[True, best[1:] != best[:-1]])
    ends = np.r_[starts[1:], best.size] - 1
    kept = [(int(best[s]), int(s), int(e)) for s, e in zip(starts, ends, strict=True)]
    kept = [k for k in kept if k[0] != BLANK]
    if not kept:
        return "", []
    if not logprobs:
        tokens = [Token(i, vocabulary.pieces[i], s, e, math.nan) for i, s, e in kept]
        return vocabulary.text([t.id for t in tokens]), tokens
    rows = sorted({frame for _, s, e in kept for frame in range(s, e + 1)})
    normaliser = dict(zip(rows, log_sum_exp(logits[rows]).tolist(), strict=True))
    tokens = [
        Token(i, vocabulary.pieces[i], s, e,
              max(float(logits[f, i]) - normaliser[f] for f in range(s, e + 1)))
        for i, s, e in kept
    ]  # fmt: skip
    return vocabulary.text([t.id for t in tokens]), tokens
