"""The test models' SentencePiece tokenizers, built here: no hub is reachable to fetch the
real one, and funasr needs a tokenizer whose tags sit at the ids it hard-codes (TAG_IDS).
"""

from __future__ import annotations

import io
import itertools
import random
from collections.abc import Iterator
from typing import Any

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2

from sensevoice_server.testing.model_layout import TAG_IDS, VOCAB_SIZE

# protobuf-generated without type stubs: its classes are Any to us
PROTOBUF: Any = sentencepiece_model_pb2

BASE_VOCAB_SIZE = 300  # trained pieces; fillers pad the vocabulary up to the tags

ONSETS = [
    "b",
    "p",
    "m",
    "f",
    "d",
    "t",
    "n",
    "l",
    "g",
    "k",
    "h",
    "j",
    "q",
    "x",
    "zh",
    "ch",
    "sh",
    "r",
    "z",
    "c",
    "s",
    "w",
    "y",
]
RIMES = ["a", "o", "e", "i", "u", "ai", "ei", "ao", "ou", "an", "en", "ang", "eng", "ong"]


def syllables() -> list[str]:
    """Pinyin-like syllables, for both the training text and the filler pieces."""
    return [onset + rime for onset in ONSETS for rime in RIMES]


def training_sentences(count: int = 2000) -> list[str]:
    """Deterministic upper-case pseudo-text to train the base SentencePiece model on.

    Upper case keeps the trained pieces apart from the lower-case fillers, so no filler is a
    prefix of a trained piece (USER_DEFINED pieces are matched greedily when encoding).
    """
    rng = random.Random(0)
    sylls = [syllable.upper() for syllable in syllables()]
    words = ["".join(rng.choices(sylls, k=rng.randint(1, 3))) for _ in range(600)]
    return [" ".join(rng.choices(words, k=rng.randint(3, 12))) for _ in range(count)]


def train_base_tokenizer() -> Any:
    """Train a small unigram SentencePiece model; ids 0, 1, 2 are <unk>, <s>, </s>."""
    spm.set_random_generator_seed(0)
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_sentences()),
        model_writer=buffer,
        model_type="unigram",
        vocab_size=BASE_VOCAB_SIZE,
        character_coverage=1.0,
        # encoding a decoded piece on its own must give that piece back (see build_tokenizer)
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        num_threads=1,
        minloglevel=2,
    )
    proto: Any = PROTOBUF.ModelProto()
    proto.ParseFromString(buffer.getvalue())
    return proto


def filler_words() -> Iterator[str]:
    """Distinct lower-case two-syllable word pieces ("▁bapo")."""
    sylls = syllables()
    seen: set[str] = set()
    for first, second in itertools.product(sylls, sylls):
        piece = "\u2581" + first + second
        if piece not in seen:
            seen.add(piece)
            yield piece


def build_tokenizer(words: list[str] | None = None, fillers: Iterator[str] | None = None) -> bytes:
    """The serialised SentencePiece model: trained pieces, then `words`, then filler words up
    to the tags, tags at TAG_IDS.

    Words, fillers and tags are USER_DEFINED pieces: they decode verbatim, and a decoded piece
    encodes back to that one piece, which funasr's output_timestamp path relies on.
    """
    proto = train_base_tokenizer()
    fillers = fillers or filler_words()
    tag_at = {token_id: tag for tag, token_id in TAG_IDS.items()}
    user_defined = PROTOBUF.ModelProto.SentencePiece.Type.USER_DEFINED
    for word in words or []:
        proto.pieces.add(piece=word, score=0.0, type=user_defined)
    for token_id in range(len(proto.pieces), VOCAB_SIZE):
        piece = tag_at[token_id] if token_id in tag_at else next(fillers)
        proto.pieces.add(piece=piece, score=0.0, type=user_defined)
    serialised: bytes = proto.SerializeToString()
    return serialised


def trained_tokenizer() -> bytes:
    """The trained model's tokenizer: one piece per English word ("\u2581apple"), one per
    Hanzi, and the two full stops ITN adds. Fillers are upper case ("\u2581QBAPO"): no
    lower-case text ever matches one.

    It adds a dummy prefix, as SentencePiece does by default: a sentence's first word is the
    same piece as any other ("\u2581the"), not a second, rarer one ("the") the model would have
    to learn from a fifth of the examples; decoding drops the prefix again."""
    from sensevoice_server.testing.espeak_corpus import EN_WORDS, ZH_WORDS

    hanzi = sorted({character for word in ZH_WORDS for character in word})
    words = [*("\u2581" + word for word in EN_WORDS), *hanzi, ".", "。"]
    fillers = ("\u2581Q" + piece[1:].upper() for piece in filler_words())
    proto: Any = PROTOBUF.ModelProto()
    proto.ParseFromString(build_tokenizer(words, fillers))
    proto.normalizer_spec.add_dummy_prefix = True
    serialised: bytes = proto.SerializeToString()
    return serialised
