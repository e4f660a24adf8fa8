"""Build a randomly initialised SenseVoiceSmall model directory in funasr's on-disk format.

Why this exists: no model hub (ModelScope, Hugging Face) is reachable from the machines that
build and test this service, yet the service must be exercised through funasr's real loading
and decoding path. This script writes a directory that ``funasr.AutoModel(model=DIR)`` loads
exactly like the published checkpoint: ``config.yaml``, ``configuration.json``, the
SentencePiece model under its real name, ``am.mvn`` and ``model.pt`` (a plain state_dict).

* ``full`` has the real architecture (234M parameters, a 936 MB model.pt), so it costs what
  the real model costs to load and run: use it for benchmarks.
* ``tiny`` has 2+1 encoder blocks of width 64 and builds in seconds: use it in tests.

The weights are random, so the text is gibberish, but the decoded string has the real shape.
funasr reads the first four CTC frames as the language, emotion, event and text-norm tags and
hard-codes their vocabulary ids, so the SentencePiece model puts every tag at a fixed id (see
``TAG_IDS``), and the model is wired so that this prefix follows the request on any audio:
``language="zh"`` gives ``<|zh|>`` ("auto" gives ``<|en|>``), then ``<|NEUTRAL|><|Speech|>``,
then ``<|withitn|>`` or ``<|woitn|>`` from ``use_itn``. Two changes to the random model do
that: what a frame takes from other frames (attention output, FSMN memory taps) is scaled by
``CONTEXT_SCALE``, so the four query frames come out of the encoder nearly independent of the
audio, and the CTC rows of those ten tags are set to fire only close to where their query
frames land. Text frames never get there, so they decode to random word pieces. The compute
is unchanged. ``config.yaml`` sets ``dither: 0.0`` so identical audio gives identical text.

Usage: ``python -m sensevoice_server.testing.checkpoint --size tiny|full [--seed N] OUTDIR``
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import sentencepiece as spm
import torch
import yaml
from sentencepiece import sentencepiece_model_pb2

Size = Literal["tiny", "full", "trained"]

# protobuf-generated without type stubs: its classes are Any to us
PROTOBUF: Any = sentencepiece_model_pb2

BPE_MODEL_NAME = "chn_jpn_yue_eng_ko_spectok.bpe.model"
VOCAB_SIZE = 25055
FEATURE_DIM = 80 * 7  # n_mels * lfr_m
BASE_VOCAB_SIZE = 300  # trained pieces; fillers pad the vocabulary up to the tags

TAG_IDS: dict[str, int] = {
    # languages: ids hard-coded in funasr's SenseVoiceSmall.lid_int_dict
    "<|zh|>": 24884,
    "<|en|>": 24885,
    "<|yue|>": 24888,
    "<|ja|>": 24892,
    "<|ko|>": 24896,
    "<|nospeech|>": 24992,
    # audio events (free choice, between <|nospeech|> and the emotions)
    "<|Speech|>": 24993,
    "<|BGM|>": 24994,
    "<|Applause|>": 24995,
    "<|Laughter|>": 24996,
    "<|Cry|>": 24997,
    "<|Sneeze|>": 24998,
    "<|Breath|>": 24999,
    "<|Cough|>": 25000,
    # emotions: HAPPY, SAD, ANGRY, NEUTRAL hard-coded in SenseVoiceSmall.emo_dict
    "<|HAPPY|>": 25001,
    "<|SAD|>": 25002,
    "<|ANGRY|>": 25003,
    "<|NEUTRAL|>": 25004,
    "<|FEARFUL|>": 25005,
    "<|DISGUSTED|>": 25006,
    "<|SURPRISED|>": 25007,
    "<|EMO_UNKNOWN|>": 25009,  # hard-coded (ban_emo_unk)
    # other tags rich_transcription_postprocess knows (free choice)
    "<|Sing|>": 25010,
    "<|Speech_Noise|>": 25011,
    "<|GBG|>": 25012,
    "<|Event_UNK|>": 25013,
    # text normalisation: hard-coded in SenseVoiceSmall.textnorm_int_dict
    "<|withitn|>": 25016,
    "<|woitn|>": 25017,
}

# The four query frames SenseVoiceSmall.inference puts before the audio are embeddings of
# [language index, 1, 2, text-norm index]; these say what each should decode to.
LANGUAGE_TAGS: dict[int, str] = {
    0: "<|en|>",  # "auto"
    3: "<|zh|>",
    4: "<|en|>",
    7: "<|yue|>",
    11: "<|ja|>",
    12: "<|ko|>",
    13: "<|nospeech|>",
}
AUTO_QUERY, ENGLISH_QUERY = 0, 4  # "auto" gets English's embedding: it always "detects" English
EMOTION_QUERY, EVENT_QUERY = 1, 2
EMOTION_TAG, EVENT_TAG = "<|NEUTRAL|>", "<|Speech|>"
TEXTNORM_TAGS: dict[int, str] = {14: "<|withitn|>", 15: "<|woitn|>"}

CONTEXT_SCALE = 0.1  # query outputs then stay within cosine 0.98 of their audio-free value
TAG_COSINE = 0.8  # a frame decodes as a prefix tag only this close to the tag's query output
TAG_LOGIT = 20.0  # the tag's logit at its own query output; random rows peak near 2.5

ENCODER_SIZES: dict[Size, dict[str, int]] = {
    "full": {
        "output_size": 512,
        "attention_heads": 4,
        "linear_units": 2048,
        "num_blocks": 50,
        "tp_blocks": 20,
    },
    "tiny": {
        "output_size": 64,
        "attention_heads": 2,
        "linear_units": 128,
        "num_blocks": 2,
        "tp_blocks": 1,
    },
    # the trained test model (testing/train.py): small enough to train on 2 cores in minutes
    "trained": {
        "output_size": 256,
        "attention_heads": 4,
        "linear_units": 1024,
        "num_blocks": 6,
        "tp_blocks": 2,
    },
}

FRONTEND_CONF: dict[str, object] = {
    "fs": 16000,
    "window": "hamming",
    "n_mels": 80,
    "frame_length": 25,
    "frame_shift": 10,
    "lfr_m": 7,
    "lfr_n": 6,
    "dither": 0.0,
    "cmvn_file": None,  # funasr fills in am.mvn from configuration.json
}
MVN_MEAN = 11.0  # about the log-mel mean of speech at a normal level (samples scaled by 2**15)
MVN_STD = 4.0

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
    from sensevoice_server.testing.corpus import EN_WORDS, ZH_WORDS

    hanzi = sorted({character for word in ZH_WORDS for character in word})
    words = [*("\u2581" + word for word in EN_WORDS), *hanzi, ".", "。"]
    fillers = ("\u2581Q" + piece[1:].upper() for piece in filler_words())
    proto: Any = PROTOBUF.ModelProto()
    proto.ParseFromString(build_tokenizer(words, fillers))
    proto.normalizer_spec.add_dummy_prefix = True
    serialised: bytes = proto.SerializeToString()
    return serialised


def mvn_text(mean: Sequence[float] | None = None, scale: Sequence[float] | None = None) -> str:
    """am.mvn in Kaldi nnet text format: add -mean, then multiply by 1/std, per LFR dim
    (by default one speech-like level for every dim)."""
    means = mean if mean is not None else [MVN_MEAN] * FEATURE_DIM
    scales = scale if scale is not None else [1.0 / MVN_STD] * FEATURE_DIM
    shift = " ".join(f"{-m:.6f}" for m in means)
    scale_text = " ".join(f"{s:.6f}" for s in scales)
    return (
        "<Nnet>\n"
        f"<Splice> {FEATURE_DIM} {FEATURE_DIM}\n"
        "[ 0 ]\n"
        f"<AddShift> {FEATURE_DIM} {FEATURE_DIM}\n"
        f"<LearnRateCoef> 0 [ {shift} ]\n"
        f"<Rescale> {FEATURE_DIM} {FEATURE_DIM}\n"
        f"<LearnRateCoef> 0 [ {scale_text} ]\n"
        "</Nnet>\n"
    )


def model_config(size: Size) -> dict[str, Any]:
    """config.yaml's content, the real one's but for the encoder size and dither."""
    return {
        "encoder": "SenseVoiceEncoderSmall",
        "encoder_conf": {
            **ENCODER_SIZES[size],
            "dropout_rate": 0.1,
            "positional_dropout_rate": 0.1,
            "attention_dropout_rate": 0.1,
            "input_layer": "pe",
            "pos_enc_class": "SinusoidalPositionEncoder",
            "normalize_before": True,
            "kernel_size": 11,
            "sanm_shfit": 0,
            "selfattention_layer_type": "sanm",
        },
        "model": "SenseVoiceSmall",
        "model_conf": {"length_normalized_loss": True, "sos": 1, "eos": 2, "ignore_id": -1},
        "tokenizer": "SentencepiecesTokenizer",
        "tokenizer_conf": {"bpemodel": None, "unk_symbol": "<unk>", "split_with_space": True},
        "frontend": "WavFrontend",
        "frontend_conf": FRONTEND_CONF,
    }


def hub_configuration() -> dict[str, object]:
    """configuration.json's content: which files the config's empty paths refer to."""
    return {
        "framework": "pytorch",
        "task": "auto-speech-recognition",
        "model": {"type": "funasr"},
        "pipeline": {"type": "funasr-pipeline"},
        "model_name_in_hub": {"ms": "", "hf": ""},
        "file_path_metas": {
            "init_param": "model.pt",
            "config": "config.yaml",
            "tokenizer_conf": {"bpemodel": BPE_MODEL_NAME},
            "frontend_conf": {"cmvn_file": "am.mvn"},
        },
    }


def prefix_queries() -> tuple[torch.Tensor, list[list[str]]]:
    """Every (language, text-norm) query row, and the tags its four frames should decode to."""
    queries, tags = [], []
    for (lid, lang_tag), (tn, tn_tag) in itertools.product(
        LANGUAGE_TAGS.items(), TEXTNORM_TAGS.items()
    ):
        queries.append([lid, EMOTION_QUERY, EVENT_QUERY, tn])
        tags.append([lang_tag, EMOTION_TAG, EVENT_TAG, tn_tag])
    return torch.tensor(queries), tags


def encode(model: Any, queries: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    """Encoder output for the query frames followed by feats, as SenseVoiceSmall.inference."""
    speech = torch.cat((model.embed(queries), feats.expand(len(queries), -1, -1)), dim=1)
    lengths = torch.full((len(queries),), speech.size(1), dtype=torch.int32)
    hidden: torch.Tensor = model.encoder(speech, lengths)[0]
    return hidden


def damp_context(model: Any) -> None:
    """Scale what each frame takes from other frames in every encoder layer by CONTEXT_SCALE."""
    from funasr.models.sense_voice.model import MultiHeadedAttentionSANM

    for module in model.encoder.modules():
        if isinstance(module, MultiHeadedAttentionSANM):
            module.linear_out.weight.mul_(CONTEXT_SCALE)
            module.linear_out.bias.mul_(CONTEXT_SCALE)
            module.fsmn_block.weight.mul_(CONTEXT_SCALE)


def set_prefix_tag_rows(model: Any) -> None:
    """Point each prefix tag's CTC row at its query frames' audio-free encoder output.

    Encoder outputs are layer-normalised, all of about one norm, so the logit is an affine
    function of the cosine to that output: TAG_LOGIT at cosine 1, 0 at TAG_COSINE, strongly
    negative for anything unrelated (text frames stay below cosine 0.7).
    """
    queries, tags = prefix_queries()
    hidden = encode(model, queries, torch.empty(1, 0, FEATURE_DIM))
    ctc_lo = model.ctc.ctc_lo
    for tag in {tag for row in tags for tag in row}:
        where = torch.tensor([[frame_tag == tag for frame_tag in row] for row in tags])
        target = hidden[where].mean(dim=0)
        norm = hidden[where].norm(dim=1).mean()
        gain = TAG_LOGIT / (1.0 - TAG_COSINE)
        ctc_lo.weight[TAG_IDS[tag]] = gain * target / (target.norm() * norm)
        ctc_lo.bias[TAG_IDS[tag]] = -gain * TAG_COSINE


def check_prefix_decoding(model: Any, seed: int) -> None:
    """Raise unless, on some synthetic features, the prefix decodes right and the text has none
    of its tags."""
    generator = torch.Generator().manual_seed(seed)
    queries, tags = prefix_queries()
    prefix_ids = torch.tensor([[TAG_IDS[tag] for tag in row] for row in tags])
    for feats in (
        torch.randn(1, 40, FEATURE_DIM, generator=generator),
        0.3 * torch.randn(1, 120, FEATURE_DIM, generator=generator),
        torch.full((1, 30, FEATURE_DIM), -2.0),
    ):
        decoded = model.ctc.ctc_lo(encode(model, queries, feats)).argmax(dim=-1)
        if not torch.equal(decoded[:, :4], prefix_ids):
            raise RuntimeError("the prefix does not decode to the requested tags")
        if torch.isin(decoded[:, 4:], prefix_ids).any():
            raise RuntimeError("a text frame decodes to a prefix tag")


@torch.no_grad()
def build_model(size: Size, seed: int) -> Any:
    """A randomly initialised SenseVoiceSmall wired to decode the requested tag prefix."""
    from funasr.models.sense_voice.model import SenseVoiceSmall

    config = model_config(size)
    torch.manual_seed(seed)
    model = SenseVoiceSmall(
        encoder=config["encoder"],
        encoder_conf=config["encoder_conf"],
        input_size=FEATURE_DIM,
        vocab_size=VOCAB_SIZE,
        **config["model_conf"],
    ).eval()
    model.embed.weight[AUTO_QUERY] = model.embed.weight[ENGLISH_QUERY]
    damp_context(model)
    set_prefix_tag_rows(model)
    check_prefix_decoding(model, seed)
    return model


def build_checkpoint(outdir: Path, size: Size, seed: int = 0) -> Path:
    """Write a loadable SenseVoiceSmall directory into outdir and return outdir.

    The same size and seed give the same files, model.pt byte for byte.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / BPE_MODEL_NAME).write_bytes(build_tokenizer())
    (outdir / "am.mvn").write_text(mvn_text(), encoding="utf-8")
    (outdir / "config.yaml").write_text(
        yaml.safe_dump(model_config(size), sort_keys=False), encoding="utf-8"
    )
    (outdir / "configuration.json").write_text(
        json.dumps(hub_configuration(), indent=2) + "\n", encoding="utf-8"
    )
    torch.save(build_model(size, seed).state_dict(), outdir / "model.pt")
    return outdir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["tiny", "full", "trained"], default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("outdir", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.size == "trained":
        from sensevoice_server.testing.trained_model import write_trained

        write_trained(args.outdir)
    else:
        build_checkpoint(args.outdir, args.size, args.seed)
    print(f"wrote {args.size} checkpoint to {args.outdir} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
