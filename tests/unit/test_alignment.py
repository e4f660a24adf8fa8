"""Word times rest on CTC forced alignment; `forced_path` is funasr's `ctc_forced_align` in
numpy (no torch in a CPU server), so it must choose funasr's path, frame for frame."""

from __future__ import annotations

from itertools import groupby

import numpy as np
import pytest
import torch
from funasr.models.sense_voice.utils.ctc_alignment import ctc_forced_align

from sensevoice_server.engine.alignment import forced_path
from sensevoice_server.engine.tokens import BLANK, log_softmax


def funasrs_path(scores: np.ndarray, targets: list[int]) -> list[int]:
    path: list[int] = ctc_forced_align(
        torch.from_numpy(scores).unsqueeze(0),
        torch.tensor([targets], dtype=torch.long),
        torch.tensor([scores.shape[0]], dtype=torch.long),
        torch.tensor([len(targets)], dtype=torch.long),
    )[0].tolist()
    return path


@pytest.mark.parametrize("seed", range(40))
def test_the_path_is_funasrs_on_random_emissions(seed: int) -> None:
    """Random emissions, as the engine prepares them (a frame whose best is blank costs
    nothing as blank), random targets with repeats (which need a blank between them)."""
    rng = np.random.default_rng(seed)
    vocabulary, targets_count = 12, int(rng.integers(1, 8))
    frames = int(rng.integers(2 * targets_count + 1, 60))
    scores = log_softmax(rng.normal(0, 3, (frames, vocabulary)).astype(np.float32))
    scores[scores.argmax(axis=-1) == BLANK, BLANK] = 0.0
    targets = [int(t) for t in rng.integers(1, 4, targets_count)]  # few symbols: repeats
    assert forced_path(scores, targets) == funasrs_path(scores, targets)


def test_on_flat_emissions_ties_go_as_funasrs_and_the_path_spells_the_targets() -> None:
    """Every path scores the same here: only the tie-break decides, and it must be funasr's.
    A repeated symbol needs a blank between its two runs."""
    scores = np.log(np.full((5, 4), 0.25, dtype=np.float32))
    targets = [2, 2, 3]
    path = forced_path(scores, targets)
    assert path == funasrs_path(scores, targets)
    assert [symbol for symbol, _ in groupby(path) if symbol != BLANK] == [2, 2, 3]
