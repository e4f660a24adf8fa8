"""What a caller may ask of one transcription: the request-shaped types every layer shares.

Front ends build these from their own protocol (form fields, Gradio inputs, a WebSocket
config); the Transcriber, the cache key and the engine read them. Nothing here imports the
engine, so front ends never need to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Language = Literal["auto", "zh", "en", "yue", "ja", "ko", "nospeech"]
LANGUAGES: tuple[str, ...] = get_args(Language)
LANGUAGE_NAMES = {
    "auto": "Detect automatically", "zh": "Chinese (Mandarin)", "en": "English",
    "yue": "Cantonese", "ja": "Japanese", "ko": "Korean", "nospeech": "No speech",
}  # fmt: skip


@dataclass(frozen=True)
class DecodeOptions:
    """Options that change what the model gives; every field is part of the cache key."""

    language: str = "auto"
    use_itn: bool = True
    word_timestamps: bool = False  # align words (costs a second pass over the logits)
    logprobs: bool = False  # keep each token's log-probability
    num_speakers: int | None = None  # when speaker labels are on: how many (None: find out)

    def extras(self) -> tuple[str, ...]:
        """What is computed beside the text: part of the cache key."""
        flags = [name for name, on in (("words", self.word_timestamps),
                                       ("logprobs", self.logprobs)) if on]  # fmt: skip
        if self.num_speakers is not None:
            flags.append(f"speakers{self.num_speakers}")
        return tuple(flags)
