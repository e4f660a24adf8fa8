"""The subtitle limits every SRT/VTT we write must keep (subtitles.CueLimits' defaults)."""

from __future__ import annotations

import re

LIMIT_CHARS, LIMIT_LINES, LIMIT_S = 42, 2, 7.0
CUE_TIMES = re.compile(r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d) --> (\d\d):(\d\d):(\d\d)[,.](\d\d\d)")


def assert_cues_within_limits(subtitles: str) -> int:
    """Every cue: at most 2 lines of 42 characters and 7 s; returns how many cues."""
    blocks = [b for b in subtitles.replace("WEBVTT\n", "").strip().split("\n\n") if b.strip()]
    for block in blocks:
        lines = block.splitlines()
        at = next(i for i, line in enumerate(lines) if " --> " in line)
        h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, CUE_TIMES.search(lines[at]).groups())
        duration = (h2 * 3600 + m2 * 60 + s2 + ms2 / 1000) - (h1 * 3600 + m1 * 60 + s1 + ms1 / 1000)
        text = lines[at + 1 :]
        assert 1 <= len(text) <= LIMIT_LINES, block
        assert all(len(line) <= LIMIT_CHARS for line in text), block
        assert 0 <= duration <= LIMIT_S + 0.001, block
    return len(blocks)
