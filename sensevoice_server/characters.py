"""What kind of character a piece of text is, where words and subtitle lines are cut.

Han and kana are written without spaces, a word per character (Korean has spaces), so word
times (engine/alignment.py) and subtitle lines (subtitles.py) treat them alike.
"""

from __future__ import annotations

import unicodedata


def is_cjk(char: str) -> bool:
    """Han and kana (an empty string is not)."""
    name = unicodedata.name(char, "") if char else ""
    return name.startswith(("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH", "HIRAGANA", "KATAKANA"))


def is_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")
