"""What a caller may ask of one transcription: the request-shaped types every layer shares.

Front ends build these from their own protocol (form fields, Gradio inputs, a WebSocket
config); the Transcriber, the cache key and the engine read them. Nothing here imports the
engine, so front ends never need to.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from pydantic import StringConstraints

from sensevoice_server.errors import BadRequest

Language = Literal["auto", "zh", "en", "yue", "ja", "ko", "nospeech"]
LANGUAGES: tuple[str, ...] = get_args(Language)
LANGUAGE_NAMES = {
    "auto": "Detect automatically", "zh": "Chinese (Mandarin)", "en": "English",
    "yue": "Cantonese", "ja": "Japanese", "ko": "Korean", "nospeech": "No speech",
}  # fmt: skip
Spoken = Literal["zh", "en", "yue", "ja", "ko"]
SPOKEN: tuple[str, ...] = get_args(Spoken)  # what `languages` may name: the model's languages

# Bounds on a keyword list: beam search with a boost costs per keyword token, and a cache key
# carries the list's hash, so a list has a size a person would type or paste.
MAX_KEYWORDS = 100
MAX_KEYWORD_CHARS = 50
Keyword = Annotated[str, StringConstraints(max_length=MAX_KEYWORD_CHARS)]


@dataclass(frozen=True)
class DecodeOptions:
    """Options that change what the model gives; every field is part of the cache key."""

    language: str = "auto"
    use_itn: bool = True
    word_timestamps: bool = False  # align words (costs a second pass over the logits)
    logprobs: bool = False  # keep each token's log-probability
    num_speakers: int | None = None  # when speaker labels are on: how many (None: find out)
    keywords: tuple[str, ...] = ()  # words to favour (beam search with a boost, when given)
    languages: tuple[str, ...] = ()  # detect only among these (with language "auto")

    def extras(self) -> tuple[str, ...]:
        """What is computed beside the text: part of the cache key."""
        flags = [name for name, on in (("words", self.word_timestamps),
                                       ("logprobs", self.logprobs)) if on]  # fmt: skip
        if self.num_speakers is not None:
            flags.append(f"speakers{self.num_speakers}")
        if self.keywords:  # hashed: a key stays short and free of the separator ":"
            listed = json.dumps(sorted(self.keywords), ensure_ascii=False).encode()
            flags.append("keywords-" + hashlib.sha256(listed).hexdigest()[:16])
        if self.languages and self.language == "auto":
            flags.append("languages-" + "+".join(sorted(self.languages)))
        return tuple(flags)


def listed(text: str) -> list[str]:
    """The entries of a free-text list (a UI field, a CLI flag, a keywords file): one per
    line or comma. API arrays are taken element by element instead, so a keyword there may
    hold a comma."""
    return [part for line in text.splitlines() for part in line.split(",")]


def checked_keywords(values: Iterable[str], param: str = "keywords") -> tuple[str, ...]:
    """A caller's keywords, spaces tidied, blanks and repeats dropped, bounded; or a 400
    that says which bound."""
    keywords: list[str] = []
    for value in values:
        keyword = " ".join(value.split())
        if not keyword or keyword in keywords:
            continue
        if len(keyword) > MAX_KEYWORD_CHARS:
            raise BadRequest(
                f"A keyword may have at most {MAX_KEYWORD_CHARS} characters; "
                f"{keyword[:20]!r}... has {len(keyword)}.", param=param,
            )  # fmt: skip
        keywords.append(keyword)
    if len(keywords) > MAX_KEYWORDS:
        raise BadRequest(
            f"At most {MAX_KEYWORDS} keywords may be given; this request has {len(keywords)}.",
            param=param,
        )
    return tuple(keywords)


def checked_languages(values: Iterable[str], param: str = "languages") -> tuple[str, ...]:
    """The languages detection may choose among, or a 400 naming the ones it knows."""
    languages: list[str] = []
    for value in values:
        language = value.strip().lower()
        if not language or language in languages:
            continue
        if language not in SPOKEN:
            raise BadRequest(
                f"Unknown language {language!r} in {param}; this model knows "
                f"{', '.join(SPOKEN)}.", param=param,
            )  # fmt: skip
        languages.append(language)
    return tuple(languages)
