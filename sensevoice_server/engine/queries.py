"""The model's query rows: what the four frames before the audio ask for.

SenseVoiceSmall puts embeddings of [language, 1, 2, text normalisation] before the audio
features; these are the indices funasr's lid_dict and textnorm_dict use. The torch backend
feeds them, and the ONNX export writes them into its metadata (sherpa-onnx's lang_* and
with_itn/without_itn keys), so an export carries its own.
"""

from __future__ import annotations

LANGUAGE_QUERY = {"auto": 0, "zh": 3, "en": 4, "yue": 7, "ja": 11, "ko": 12, "nospeech": 13}
ITN_QUERY = {True: 14, False: 15}
