"""Append-only transcript deltas from re-decoded partials.

OpenAI's realtime deltas of one item must concatenate exactly to its completed transcript,
and a sent delta cannot be taken back. SenseVoiceSmall has no streaming decoder: the live
core re-decodes the whole open utterance for each partial, and a later decode may change
earlier words. So a word is sent only once two partials in a row agree on everything up to
and including it, and never the newest word (it may still be growing). When the final
decode disagrees with what was sent, what was sent stands and the final's words after the
last sent word that it also has are appended (a word alignment, difflib's), so the completed
transcript is the deltas joined, and as close to the final decode as sent words allow.
"""

from __future__ import annotations

import difflib
import unicodedata


def units(text: str) -> tuple[list[str], str]:
    """Words and the separator that joins them: spaced words, or characters for wide
    (Chinese, Japanese) text written without spaces."""
    stripped = text.strip()
    wide = any(unicodedata.east_asian_width(c) in "WF" for c in stripped)
    if wide and not any(c.isspace() for c in stripped):
        return list(stripped), ""
    return stripped.split(), " "


class Deltas:
    """One item's deltas: `partial()` for each partial, `final()` once."""

    def __init__(self) -> None:
        self.sent: list[str] = []  # units sent so far
        self.sent_text = ""  # exactly the deltas joined
        self._previous: list[str] = []

    def partial(self, text: str) -> str:
        """The delta this partial allows ("" if none): the units two partials agree on, all
        but the newest."""
        current, separator = units(text)
        agreed = 0
        for a, b in zip(self._previous, current, strict=False):
            if a != b:
                break
            agreed += 1
        self._previous = current
        stable = current[: min(agreed, len(current) - 1)]
        if len(stable) <= len(self.sent) or stable[: len(self.sent)] != self.sent:
            return ""
        return self._send(stable[len(self.sent) :], separator)

    def final(self, text: str) -> tuple[str, str]:
        """(last delta, completed transcript) for the final decode `text`."""
        final, separator = units(text)
        if final[: len(self.sent)] == self.sent:
            rest = final[len(self.sent) :]
        else:  # the final changed a sent word: keep what was sent, add what follows it
            matcher = difflib.SequenceMatcher(None, self.sent, final, autojunk=False)
            matched = [b.b + b.size for b in matcher.get_matching_blocks() if b.size]
            rest = final[max(matched, default=0) :]
        delta = self._send(rest, separator) if rest else ""
        return delta, self.sent_text

    def _send(self, new: list[str], separator: str) -> str:
        delta = (separator if self.sent else "") + separator.join(new)
        self.sent += new
        self.sent_text += delta
        return delta
