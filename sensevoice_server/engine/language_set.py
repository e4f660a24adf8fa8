"""Detection among the languages a caller expects (`languages`, as OpenAI's API names it).

SenseVoiceSmall detects the language on its first output frame, from the query "auto", and
the text that follows is decoded under that guess. A caller who knows the audio is one of a
few languages (a Mandarin-English call centre) wants the guess made among those only: the
best of their tags on that frame. When the model's own guess is among them nothing changes
and nothing more is paid; otherwise the segment is decoded again with the chosen language as
its query, as `language` would force it, so the text is the one that language's query gives.
"No speech" is not a language and always stands.
"""

from __future__ import annotations

import numpy as np

from sensevoice_server.engine.tokens import Vocabulary

NO_SPEECH = "<|nospeech|>"


def language_tag(language: str) -> str:
    return f"<|{language}|>"


def outside(logits: np.ndarray, vocabulary: Vocabulary, allowed: tuple[str, ...]) -> str | None:
    """The allowed language to decode with when detection chose another, else None."""
    tags = {language: vocabulary.ids.get(language_tag(language)) for language in allowed}
    known = {language: index for language, index in tags.items() if index is not None}
    if not known:
        return None
    detected = vocabulary.pieces[int(logits[0].argmax())]
    if detected == NO_SPEECH or detected in {language_tag(k) for k in known}:
        return None
    return max(known, key=lambda language: float(logits[0, known[language]]))
