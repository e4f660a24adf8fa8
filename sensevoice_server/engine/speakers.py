"""Speaker labels per segment: CAM++ embeddings of our own segments, clustered.

Not funasr's `AutoModel(..., spk_model=...)` path: with SenseVoice it labels one sentence per
merged VAD segment anyway (there is no punctuation model to cut sentences), it switches word
alignment on, and its clusterer (`ClusterBackend`) returns speaker 0 for everything below 20
windows, even with a preset count. So the CAM++ model runs through its own AutoModel on
windows of the segments the transcript already has, cut by funasr's `sv_chunk` (1.5 s windows,
0.75 s hop); each segment is the mean of its window embeddings; scikit-learn's agglomerative
clustering (cosine, average linkage) groups the segments, deterministically and for any
count, and funasr's own centroid merge (cosine >= 0.78) and numbering by first appearance
finish it. Segments under 0.5 s take the label of their nearest neighbour in time.
A change of speaker inside one segment is not found.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sensevoice_server.engine.auxiliary import load_auxiliary
from sensevoice_server.pcm import SAMPLE_RATE

WINDOW = int(1.5 * SAMPLE_RATE)  # sv_chunk's window
MIN_SEGMENT_MS = 500  # shorter segments are labelled from a neighbour
MIN_SAMPLES = 400  # one fbank frame: nothing shorter can be embedded
MERGE_COSINE = 0.78  # funasr's: speakers this alike are one
BATCH = 8  # equal-length windows per call (measured: 10 % less CPU than one at a time)


class SpeakerLabeler:
    """One CAM++ model, used by one thread (the engine's VAD thread)."""

    def __init__(self, model: str, device: str) -> None:
        self._model, self.model_dir = load_auxiliary("--speaker-model", model, device)

    def label(
        self,
        samples: np.ndarray,
        segments: list[tuple[float, float]],
        num_speakers: int | None = None,
        between: Callable[[], None] | None = None,
    ) -> list[int]:
        """A speaker per segment (times in ms), numbered 0, 1, ... by first appearance.
        `between` runs between the model's batches (the VAD thread's other work)."""
        from funasr.models.campplus.utils import correct_labels

        if not segments:
            return []
        known = self._segment_embeddings(samples, segments, MIN_SEGMENT_MS, between)
        if not known:  # every segment is short: embed them anyway
            known = self._segment_embeddings(samples, segments, 0, between)
        if not known:
            return [0] * len(segments)
        indices = sorted(known)
        labels = cluster(np.stack([known[i] for i in indices]), num_speakers)
        by_segment = dict(zip(indices, labels.tolist(), strict=True))
        filled = [by_segment.get(i, by_segment[nearest(i, segments, by_segment)])
                  for i in range(len(segments))]  # fmt: skip
        return [int(label) for label in correct_labels(filled)]

    def embedding(self, samples: np.ndarray) -> np.ndarray | None:
        """One utterance's embedding (unit length): the mean of its windows, as a segment's
        in `label`; a live session clusters these as they come (live/speakers.py)."""
        whole = [(0.0, samples.size * 1000 / SAMPLE_RATE)]
        return self._segment_embeddings(samples, whole, 0).get(0)

    def _segment_embeddings(
        self, samples: np.ndarray, segments: list[tuple[float, float]], min_ms: int,
        between: Callable[[], None] | None = None,
    ) -> dict[int, np.ndarray]:  # fmt: skip
        from funasr.models.campplus.utils import sv_chunk

        windows: list[tuple[int, np.ndarray]] = []
        for index, (start_ms, end_ms) in enumerate(segments):
            first, last = int(start_ms * 16), min(int(end_ms * 16), samples.size)
            if last - first < max(min_ms * 16, MIN_SAMPLES):
                continue
            audio = samples[first:last]
            if audio.size < WINDOW:  # not padded: padding would dominate the embedding
                windows.append((index, np.ascontiguousarray(audio)))
                continue
            for _, _, chunk in sv_chunk([[first / SAMPLE_RATE, last / SAMPLE_RATE, audio]]):
                windows.append((index, np.ascontiguousarray(chunk, dtype=np.float32)))
        embeddings = self._embed([w for _, w in windows], between)
        by_segment: dict[int, list[np.ndarray]] = {}
        for (index, _), embedding in zip(windows, embeddings, strict=True):
            norm = float(np.linalg.norm(embedding))
            if norm > 1e-6:  # digital silence embeds to zero: no direction
                by_segment.setdefault(index, []).append(embedding / norm)
        return {i: normalised(np.mean(e, axis=0)) for i, e in by_segment.items()}

    def _embed(
        self, windows: list[np.ndarray], between: Callable[[], None] | None = None
    ) -> list[np.ndarray]:
        """Embeddings in order; equal lengths share a call (funasr pads a batch to its
        longest item, which would change the others)."""
        out: list[np.ndarray | None] = [None] * len(windows)
        by_length: dict[int, list[int]] = {}
        for index, window in enumerate(windows):
            by_length.setdefault(window.size, []).append(index)
        for indices in by_length.values():
            for start in range(0, len(indices), BATCH):
                group = indices[start : start + BATCH]
                if between is not None:
                    between()
                found = self._model.generate(input=[windows[i] for i in group], batch_size=BATCH)
                rows = np.concatenate([r["spk_embedding"].cpu().numpy() for r in found])
                for i, row in zip(group, rows, strict=True):
                    out[i] = row
        return [row for row in out if row is not None]


def cluster(embeddings: np.ndarray, num_speakers: int | None) -> np.ndarray:
    """Labels for unit-length rows: `num_speakers` groups, or as many as are distinct."""
    from funasr.models.campplus.cluster_backend import ClusterBackend
    from sklearn.cluster import AgglomerativeClustering

    rows = embeddings.shape[0]
    if rows <= 1 or num_speakers == 1:
        return np.zeros(rows, dtype=np.int64)
    if num_speakers is not None:
        clustering = AgglomerativeClustering(
            n_clusters=min(num_speakers, rows), metric="cosine", linkage="average"
        )
        labels: np.ndarray = clustering.fit_predict(embeddings).astype(np.int64)
        return labels
    clustering = AgglomerativeClustering(
        n_clusters=None, distance_threshold=1.0 - MERGE_COSINE, metric="cosine",
        linkage="average",
    )  # fmt: skip
    labels = clustering.fit_predict(embeddings).astype(np.int64)
    merged: np.ndarray = ClusterBackend(merge_thr=MERGE_COSINE).merge_by_cos(
        labels, embeddings, MERGE_COSINE
    )
    return merged


def nearest(index: int, segments: list[tuple[float, float]], labelled: dict[int, int]) -> int:
    """The labelled segment closest in time to segment `index`."""
    start, end = segments[index]

    def gap(other: int) -> float:
        other_start, other_end = segments[other]
        return max(other_start - end, start - other_end, 0.0)

    return min(labelled, key=lambda other: (gap(other), other))


def normalised(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)
