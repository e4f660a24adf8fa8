"""Train the small SenseVoiceSmall that the trained test checkpoint is made from.

Why: with random weights a test can only compare one path with another; a bug that garbles
text the same way on both sides passes. A model that really recognises some words lets tests
and benchmarks read the transcript itself. This trains one here, on 2 cores, in well under an
hour: funasr's own `SenseVoiceSmall` class and encoder (narrower and with fewer blocks), the
real vocabulary size and tag ids, trained with CTC on espeak-ng speech (espeak_corpus.py) in English
and Mandarin, with the four query frames trained on their tags (language, emotion, event,
text normalisation) as SenseVoice is, so `language="auto"` detects the language.

Two shortcuts keep it fast and small, neither visible to a user of the result: the CTC
softmax runs over the output rows the corpus uses (plus blank and the tags) instead of all
25,055, and only those rows are saved; `checkpoint.py --size trained` writes the others as
never-emitted rows (weight 0, bias -100) when it lays the model out in funasr's format.

Usage: ``python -m sensevoice_server.testing.train [--steps N] [--clips N] OUTDIR``
(the committed model: ``python -m sensevoice_server.testing.train
sensevoice_server/testing/trained``). Seeded: the same arguments on the same machine give
the same corpus and the same training order.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from sensevoice_server.testing import espeak_corpus
from sensevoice_server.testing.model_layout import (
    BPE_MODEL_NAME,
    FRONTEND_CONF,
    TAG_IDS,
    VOCAB_SIZE,
    mvn_text,
)
from sensevoice_server.testing.tokenizers import trained_tokenizer
from sensevoice_server.testing.trained_model import (
    TRAINED_ENCODER,
    WEIGHTS_NAME,
    error_rate,
    full_state_dict,
    new_model,
)

EMOTION, EVENT = "<|NEUTRAL|>", "<|Speech|>"
ITN_MARK = {"en": ".", "zh": "。"}  # what text normalisation adds: the sentence's full stop
# About 70 s of speech a step: more, smaller steps learnt faster here than fewer, larger ones.
FRAMES_PER_BATCH = 1200


def features(clips: list[np.ndarray]) -> list[torch.Tensor]:
    """funasr's WavFrontend features (fbank, LFR 7/6), before CMVN: the statistics for
    am.mvn come from them."""
    from funasr.frontends.wav_frontend import WavFrontend

    frontend = WavFrontend(**{**FRONTEND_CONF, "cmvn_file": None})
    out = []
    for audio in clips:
        wave = torch.from_numpy(audio)[None]
        feats, _ = frontend(wave, torch.tensor([len(audio)]))
        out.append(feats[0])
    return out


def targets(utterance: espeak_corpus.Utterance, itn: bool, tokenizer: Any) -> tuple[list[int], str]:
    """The four tag ids for the query frames, and the text the CTC frames spell."""
    text = utterance.text + (ITN_MARK[utterance.language] if itn else "")
    tags = [TAG_IDS[f"<|{utterance.language}|>"], TAG_IDS[EMOTION], TAG_IDS[EVENT],
            TAG_IDS["<|withitn|>" if itn else "<|woitn|>"]]  # fmt: skip
    return tags, text


def spec_augment(feats: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """Two time masks (up to 4 LFR frames) and two mel-band masks (up to 10 of 80 bins, in all
    seven stacked frames): light, as the corpus is small and clean."""
    feats = feats.clone()
    frames = feats.size(0)
    for _ in range(2):
        width = rng.randint(0, min(4, max(frames // 8, 0)))
        start = rng.randint(0, max(frames - width, 0))
        feats[start : start + width] = 0.0
    stacked = feats.view(frames, 7, 80)
    for _ in range(2):
        width = rng.randint(0, 10)
        start = rng.randint(0, 80 - width)
        stacked[:, :, start : start + width] = 0.0
    return feats


def batches(lengths: list[int], frames_per_batch: int, rng: random.Random) -> list[list[int]]:
    """Indices grouped by similar length (little padding), each batch about
    `frames_per_batch` padded frames, in a shuffled order."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out: list[list[int]] = []
    current: list[int] = []
    for index in order:
        if current and lengths[index] * (len(current) + 1) > frames_per_batch:
            out.append(current)
            current = []
        current.append(index)
    if current:
        out.append(current)
    rng.shuffle(out)
    return out


class Trainer:
    """CTC over the used output rows plus cross-entropy on the four query frames."""

    def __init__(self, model: Any, rows: list[int], seed: int) -> None:
        self.model = model
        self.rows = torch.tensor(rows)
        self.position = {token: i for i, token in enumerate(rows)}  # blank (id 0) at 0
        self.rng = random.Random(seed)

    def logits(self, encoder_out: torch.Tensor) -> torch.Tensor:
        lo = self.model.ctc.ctc_lo
        return functional.linear(encoder_out, lo.weight[self.rows], lo.bias[self.rows])

    def loss(
        self, feats: list[torch.Tensor], tags: list[list[int]], pieces: list[list[int]]
    ) -> torch.Tensor:
        lengths = torch.tensor([f.size(0) for f in feats])
        speech = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
        text = torch.tensor(tags)  # encode() reads the language and text-norm queries from it
        encoder_out, out_lengths = self.model.encode(speech, lengths.clone(), text)
        logits = self.logits(encoder_out)
        query = logits[:, :4].reshape(-1, logits.size(-1))
        query_targets = torch.tensor([self.position[t] for row in tags for t in row])
        ce = functional.cross_entropy(query, query_targets)
        log_probs = logits[:, 4:].log_softmax(-1).transpose(0, 1)
        flat = torch.tensor([self.position[t] for row in pieces for t in row])
        ctc = functional.ctc_loss(
            log_probs, flat, out_lengths - 4, torch.tensor([len(p) for p in pieces]),
            blank=0, reduction="mean", zero_infinity=True,
        )  # fmt: skip
        return ctc + ce


def cosine_lr(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(steps - warmup, 1)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def greedy(trainer: Trainer, feats: torch.Tensor, tokenizer: Any) -> tuple[str, str]:
    """The language tag and text one clip decodes to with language "auto" and no ITN, as
    SenseVoiceSmall.inference decodes (greedy CTC over the encoder's output)."""
    text = torch.tensor([[0, TAG_IDS[EMOTION], TAG_IDS[EVENT], TAG_IDS["<|woitn|>"]]])
    trainer.model.eval()
    # lid 0 is not in lid_int_dict: encode() then gives the "auto" query, as inference does
    out, _ = trainer.model.encode(feats[None], torch.tensor([feats.size(0)]), text)
    ids = trainer.rows[trainer.logits(out)[0].argmax(-1)].tolist()
    language = tokenizer.id_to_piece(ids[0])
    pieces, previous = [], None
    for token in ids[4:]:
        if token != previous and token != 0:
            pieces.append(token)
        previous = token
    return language, tokenizer.decode(pieces)


def evaluate(
    trainer: Trainer,
    held_out: list[espeak_corpus.Utterance],
    feats: list[torch.Tensor],
    tokenizer: Any,
) -> dict[str, float]:
    """Held-out English WER, Mandarin CER and language-tag accuracy, in percent."""
    errors = {"en": [0, 0], "zh": [0, 0]}
    right = 0
    for utterance, clip in zip(held_out, feats, strict=True):
        language, text = greedy(trainer, clip, tokenizer)
        right += language == f"<|{utterance.language}|>"
        edits, total = error_rate(utterance.language, utterance.text, text)
        errors[utterance.language][0] += edits
        errors[utterance.language][1] += total
    trainer.model.train()
    return {
        "en_wer": round(100 * errors["en"][0] / max(errors["en"][1], 1), 2),
        "zh_cer": round(100 * errors["zh"][0] / max(errors["zh"][1], 1), 2),
        "language_accuracy": round(100 * right / max(len(held_out), 1), 2),
    }


def normalise(feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], np.ndarray, np.ndarray]:
    stacked = torch.cat(feats)
    mean, std = stacked.mean(0), stacked.std(0).clamp_min(1e-3)
    return [(f - mean) / std for f in feats], mean.numpy(), std.numpy()


def train(
    outdir: Path, *, clips: int, held_out_clips: int, steps: int, seed: int,
    resume: bool = False, peak_lr: float = 1e-3,
) -> None:  # fmt: skip
    """Synthesise the corpus and train; `resume` goes on from the weights in `outdir` (same
    corpus, hence the same CMVN statistics), with a fresh optimiser and schedule."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    train_set = espeak_corpus.utterances(
        clips, seed, held_out=False, languages=espeak_corpus.TRAINING_LANGUAGES
    )
    held_out = espeak_corpus.utterances(held_out_clips, seed + 1, held_out=True,
                                 avoid=[u.words for u in train_set])  # fmt: skip
    print(f"synthesising {len(train_set)} + {len(held_out)} clips", flush=True)
    audio = espeak_corpus.speak_all(train_set + held_out)
    hours = sum(len(a) for a in audio[: len(train_set)]) / espeak_corpus.SAMPLE_RATE / 3600
    feats, mean, std = normalise(features(audio))
    train_feats, held_feats = feats[: len(train_set)], feats[len(train_set) :]
    print(f"{hours:.2f} h of training audio; features ready after "
          f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip

    tokenizer_bytes = trained_tokenizer()
    import sentencepiece as spm

    tokenizer = spm.SentencePieceProcessor(model_proto=tokenizer_bytes)
    rng = random.Random(seed)
    examples = []
    for utterance in train_set:
        tags, text = targets(utterance, rng.random() < 0.5, tokenizer)
        pieces = tokenizer.encode(text)
        if tokenizer.id_to_piece(pieces[0]) == "\u2581":  # the dummy prefix before a Hanzi
            pieces = pieces[1:]
        examples.append((tags, pieces))
    rows = sorted({0, *TAG_IDS.values(), *(t for _, p in examples for t in p)})
    model = new_model()
    before = {"steps": 0, "seconds": 0}  # what an earlier run spent, when this one resumes
    if resume:
        model.load_state_dict(full_state_dict(outdir))
        before = json.loads((outdir / "card.json").read_text())["training"]
    model.train()
    trainer = Trainer(model, rows, seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=peak_lr, weight_decay=1e-2)
    plan = batches([f.size(0) for f in train_feats], FRAMES_PER_BATCH, rng)
    step = 0
    while step < steps:
        for batch in plan:
            if step >= steps:
                break
            for group in optimiser.param_groups:
                group["lr"] = cosine_lr(step, steps, peak_lr, 100 if resume else 300)
            loss = trainer.loss(
                [spec_augment(train_feats[i], trainer.rng) for i in batch],
                [examples[i][0] for i in batch], [examples[i][1] for i in batch],
            )  # fmt: skip
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimiser.step()
            step += 1
            if step % 100 == 0:
                print(f"step {step}/{steps} loss {loss.item():.3f} "
                      f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
            if step % 500 == 0:
                scores = evaluate(trainer, held_out[:60], held_feats[:60], tokenizer)
                print(scores, flush=True)
                save(outdir, model, rows, tokenizer_bytes, mean, std)  # usable if stopped
                write_card(outdir, scores=scores, steps=before["steps"] + step, seed=seed,
                           hours=hours, clips=len(train_set), held_out=60,
                           seconds=before["seconds"] + time.perf_counter() - started)  # fmt: skip
        rng.shuffle(plan)
    scores = evaluate(trainer, held_out, held_feats, tokenizer)
    print("held out:", scores, flush=True)
    save(outdir, model, rows, tokenizer_bytes, mean, std)
    write_card(outdir, scores=scores, steps=before["steps"] + steps, seed=seed, hours=hours,
               clips=len(train_set), held_out=len(held_out),
               seconds=before["seconds"] + time.perf_counter() - started)  # fmt: skip


def save(outdir: Path, model: Any, rows: list[int], tokenizer: bytes, mean: Any, std: Any) -> None:
    """The weights in half precision, the CTC layer cut to its used rows (`rows`), the
    tokenizer and the CMVN statistics as am.mvn."""
    outdir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().half() for k, v in model.state_dict().items() if "ctc_lo" not in k}
    index = torch.tensor(rows)
    state["ctc.ctc_lo.weight"] = model.ctc.ctc_lo.weight.detach()[index].half()
    state["ctc.ctc_lo.bias"] = model.ctc.ctc_lo.bias.detach()[index].half()
    state["ctc_rows"] = index
    torch.save(state, outdir / WEIGHTS_NAME)
    (outdir / BPE_MODEL_NAME).write_bytes(tokenizer)
    (outdir / "am.mvn").write_text(mvn_text(mean, 1.0 / std), encoding="utf-8")


def write_card(outdir: Path, **facts: Any) -> None:
    card = {
        "what": "A small SenseVoiceSmall (funasr's class, fewer and narrower encoder blocks) "
        "trained with CTC on espeak-ng speech. A proxy for tests and benchmarks: its scores "
        "say nothing about the real SenseVoiceSmall on real speech.",
        "encoder": TRAINED_ENCODER,
        "vocabulary_size": VOCAB_SIZE,
        "words": {"en": espeak_corpus.EN_WORDS, "zh": espeak_corpus.ZH_WORDS},
        "voices": {
            "trained": espeak_corpus.TRAIN_VOICES,
            "held_out": espeak_corpus.HELD_OUT_VOICES,
        },
        "speeds_wpm": {"trained": espeak_corpus.SPEEDS, "held_out": espeak_corpus.HELD_OUT_SPEEDS},
        "pitches": espeak_corpus.PITCHES,
        "itn": "with ITN the sentence ends with '.' (English) or '。' (Mandarin); without, it "
        "does not. Nothing else changes.",
        "training": {
            "steps": facts["steps"],
            "seed": facts["seed"],
            "clips": facts["clips"],
            "audio_hours": round(facts["hours"], 2),
            "seconds": round(facts["seconds"]),
            "machine": "2 cores (the project's CI kind of machine)",
        },
        "held_out": {
            "clips": facts["held_out"],
            "what": "new sentences spoken by voices and speeds not trained on; greedy decoding, "
            "language auto, no ITN",
            **facts["scores"],
        },
    }
    (outdir / "card.json").write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--clips", type=int, default=6000)
    parser.add_argument("--held-out", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="go on from OUTDIR's weights")
    parser.add_argument("--peak-lr", type=float, default=1e-3)
    parser.add_argument("outdir", type=Path)
    args = parser.parse_args()
    train(args.outdir, clips=args.clips, held_out_clips=args.held_out, steps=args.steps,
          seed=args.seed, resume=args.resume, peak_lr=args.peak_lr)  # fmt: skip


if __name__ == "__main__":
    main()
