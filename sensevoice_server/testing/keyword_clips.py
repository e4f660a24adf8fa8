"""Names the trained test model never heard, spoken inside sentences it never heard.

Keyword biasing is measured (bench/bench_keywords.py) and tested (tests/e2e/test_keywords.py)
on these. The trained model can only write what its tokenizer has pieces for and its
training made it emit: the training words (whole-word pieces in English) and the characters
of the Mandarin training words. So its "names" are made of those, in combinations training
never had:
- Mandarin: two characters of the training words, a pair found in no training sentence
  (so in no training word; a Chinese given name is any such pair); the model knows each
  character's sound but leans to the words it learned, so greedy decoding often loses it;
- English: two training words as a two-word name ("blue lake") never next to each other in
  a training sentence.
No character or word is in two names.
A name made of other words cannot be written by this model at all; the real SenseVoiceSmall
has pieces for any spelling, so there the same biasing reaches any name.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import replace
from functools import cache

from sensevoice_server.testing import espeak_corpus
from sensevoice_server.testing.trained_model import PUNCTUATION, card, unseen

# Seeds of their own: unseen() seeds 1 and 2 are the card's held-out and training-score sets,
# 7, 101 and 2026 are taken by tests and bench_accuracy.
NAMES_SEED = 21
KEYWORD_SEED = 31
FREE_SEED = 32
LANGUAGES_SEED = 33
NAMES_PER_LANGUAGE = 20


@cache
def training_sentences() -> tuple[espeak_corpus.Utterance, ...]:
    """The committed model's training sentences, rebuilt from its card (as unseen() does)."""
    training = card()["training"]
    return tuple(espeak_corpus.utterances(training["clips"], training["seed"], held_out=False,
                                   languages=espeak_corpus.TRAINING_LANGUAGES))  # fmt: skip


def mandarin_names(count: int = NAMES_PER_LANGUAGE, seed: int = NAMES_SEED) -> list[str]:
    """Two characters of the corpus's Mandarin words (the model knows each one's sound), a
    pair in no training sentence and so in no training word: a Chinese name is any pair."""
    characters = sorted({c for word in espeak_corpus.ZH_WORDS for c in word})
    heard = [u.text for u in training_sentences() if u.language == "zh"] + espeak_corpus.ZH_WORDS
    rng = random.Random(seed)
    names: list[str] = []
    used: set[str] = set()
    while len(names) < count:
        pair = rng.sample(characters, 2)
        name = "".join(pair)
        if used & set(pair) or any(name in text for text in heard):
            continue
        names.append(name)
        used |= set(pair)
    return names


def english_names(count: int = NAMES_PER_LANGUAGE, seed: int = NAMES_SEED) -> list[str]:
    """Two training words (longer than two letters) never next to each other, in either
    order, in a training sentence; no word in two names."""
    words = [w for w in espeak_corpus.EN_WORDS if len(w) > 2]
    adjacent = {
        pair
        for u in training_sentences() if u.language == "en"
        for pair in zip(u.words, u.words[1:], strict=False)
    }  # fmt: skip
    rng = random.Random(seed)
    names: list[str] = []
    used: set[str] = set()
    while len(names) < count:
        first, second = rng.sample(words, 2)
        if {first, second} & used or {(first, second), (second, first)} & adjacent:
            continue
        names.append(f"{first} {second}")
        used |= {first, second}
    return names


def with_names(count: int, seed: int = KEYWORD_SEED) -> list[tuple[espeak_corpus.Utterance, str]]:
    """`count` held-out sentences, English and Mandarin in turn, each with one name put in at
    a random place (its voice, speed and pitch kept); the names in turn, each used twice at
    the default count. A sentence that already holds its name is skipped."""
    names = {"en": english_names(), "zh": mandarin_names()}
    pool = {language: iter([u for u in unseen(2 * count + 20, seed) if u.language == language])
            for language in names}  # fmt: skip
    rng = random.Random(seed)
    out: list[tuple[espeak_corpus.Utterance, str]] = []
    for index in range(count):
        language = ("en", "zh")[index % 2]
        name = names[language][(index // 2) % len(names[language])]
        base = next(u for u in pool[language] if not contains(name, u.text))
        place = rng.randint(0, len(base.words))
        inserted = tuple(name.split()) if language == "en" else (name,)
        out.append((replace(base, words=base.words[:place] + inserted + base.words[place:]),
                    name))  # fmt: skip
    return out


def language_clips(count: int, seed: int = LANGUAGES_SEED) -> list[espeak_corpus.Utterance]:
    """`count` held-out Mandarin clips, then `count` English ones."""
    pool = unseen(2 * count, seed)
    return [u for language in ("zh", "en") for u in pool if u.language == language]


def without_names(count: int, seed: int = FREE_SEED) -> list[espeak_corpus.Utterance]:
    """`count` held-out sentences (English and Mandarin in turn) with no name in them."""
    return unseen(count, seed)


def all_names() -> list[str]:
    """The keyword list a caller gives: every name, both languages."""
    return english_names() + mandarin_names()


def units(keyword_or_text: str, chinese: bool) -> list[str]:
    """Words (English) or characters (Mandarin), lower case, punctuation and emoji dropped,
    as trained_model.error_rate compares them."""
    cleaned = "".join(
        " " if c in PUNCTUATION else c
        for c in keyword_or_text.lower()
        if unicodedata.category(c) != "So"
    )
    return [c for c in cleaned if not c.isspace()] if chinese else cleaned.split()


def contains(keyword: str, text: str) -> bool:
    """Whether `text` says `keyword`: its words in a row (English), its characters in a row
    (Mandarin), whatever the spaces and case."""
    chinese = not keyword.isascii()
    wanted, said = units(keyword, chinese), units(text, chinese)
    return any(said[i : i + len(wanted)] == wanted for i in range(len(said) - len(wanted) + 1))
