"""One live session's speakers, labelled as its utterances close.

An upload's speakers are found by clustering all its segments at once (engine/speakers.py); a
live stream cannot wait for its end, so each utterance is labelled when its final comes: its
CAM++ embedding is compared with the centroid of every speaker heard so far in the session,
and joins the closest one if it is at least as alike as funasr's own merge threshold
(cosine 0.78), or starts a new speaker. A label once sent is not revised. Utterances under
half a second carry too little voice to embed reliably: they take the previous utterance's
speaker, as an upload's short segments take their neighbour's.
"""

from __future__ import annotations

import numpy as np

from sensevoice_server.engine.speakers import MERGE_COSINE, MIN_SEGMENT_MS, normalised


class SpeakerTrack:
    """Centroids of the speakers one session has heard, numbered by first appearance."""

    def __init__(self) -> None:
        self._sums: list[np.ndarray] = []  # per speaker: the sum of its utterances' embeddings
        self._last: int | None = None

    @property
    def count(self) -> int:
        return len(self._sums)

    def label(self, embedding: np.ndarray | None, seconds: float) -> int:
        """The speaker of the next utterance, from its embedding (None: nothing to embed)."""
        short = seconds * 1000 < MIN_SEGMENT_MS
        if self._last is not None and (embedding is None or short):
            return self._last
        if embedding is None:
            self._last = 0
            return 0
        unit = normalised(np.asarray(embedding, dtype=np.float64))
        speaker = self._closest(unit)
        if speaker is None:
            speaker = len(self._sums)
            self._sums.append(unit)
        else:
            self._sums[speaker] = self._sums[speaker] + unit
        self._last = speaker
        return speaker

    def _closest(self, unit: np.ndarray) -> int | None:
        if not self._sums:
            return None
        alike = [float(normalised(total) @ unit) for total in self._sums]
        best = int(np.argmax(alike))
        return best if alike[best] >= MERGE_COSINE else None
