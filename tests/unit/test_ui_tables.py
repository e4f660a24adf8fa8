"""The web UI's tables, as the page gets them from `/config`: the short columns wide enough
for their header and values on one line, the text a share of the table, wrapped at words.

Without widths, the segments table gave "start" two letters a line ("st/ar/t") and ran the
text off-screen (the README's screenshot shows it); test_ui_browser.py looks at the result
in Chromium.
"""

from __future__ import annotations

from typing import Any

import pytest

from sensevoice_server.ui.transcribe import SEGMENT_COLUMNS, SPEAKER_WIDTHS
from tests.support.inprocess import InProcessApp

pytestmark = pytest.mark.anyio

# Gradio's table cells: a 14 px monospace font (8.4 px a character), 8 px padding each side
CHAR_PX, PADDING_PX = 8.4, 16
# the longest word a short column shows (a time under two hours; "Laughter, BGM" wraps)
LONGEST = {"start": "1234.567", "end": "1234.567", "seconds": "1234.567", "language": "nospeech",
           "emotion": "surprised", "events": "Laughter", "status": "from cache"}  # fmt: skip
# Gradio's page, and so the table, is 960 px wide in a window of 1024 to 1279 px (measured
# in Chromium: a 1120 px window, 960 px; 1280, 1216)
TABLE_PX = 960


def assert_readable(headers: list[str], widths: list[str], text: str) -> None:
    """Each short column holds its header and longest word on one line; the text column
    gets at least 40 % of the table, and all of them fit in a table TABLE_PX wide."""
    assert len(widths) == len(headers)
    short = 0.0
    for column, width in zip(headers, widths, strict=True):
        if column == text:
            assert width.endswith("%") and float(width[:-1]) >= 40, width
            continue
        assert width.endswith("px"), (column, width)
        longest = max(len(column), len(LONGEST.get(column, "")))
        assert float(width[:-2]) >= longest * CHAR_PX + PADDING_PX, (column, width)
        short += float(width[:-2])
    share = float(widths[headers.index(text)][:-1]) / 100
    assert short + share * TABLE_PX <= TABLE_PX, f"{widths} overflow {TABLE_PX} px"


async def served(app: InProcessApp, elem_id: str) -> dict[str, Any]:
    config = (await app.client.get("/config")).json()
    (found,) = [c["props"] for c in config["components"] if c["props"].get("elem_id") == elem_id]
    return dict(found)


@pytest.mark.parametrize(("elem_id", "text"), [("segments", "text"),
                                               ("batch-results", "transcript")])  # fmt: skip
async def test_short_columns_fit_on_one_line_and_the_text_wraps_within_the_table(
    app: InProcessApp, elem_id: str, text: str
) -> None:
    props = await served(app, elem_id)
    assert props["wrap"] is True
    assert_readable(props["headers"], props["column_widths"], text)


def test_the_speaker_column_keeps_the_table_within_the_window() -> None:
    """With speaker labels on (a model this tier does not load), one more short column."""
    assert_readable([*SEGMENT_COLUMNS, "speaker"], [str(w) for w in SPEAKER_WIDTHS], "text")
