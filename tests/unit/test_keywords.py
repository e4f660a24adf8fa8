"""Keyword biasing in the decoder: the graph's accounting, the beam search on made-up
logits, and the bounds on a caller's lists. (What it does on speech: tests/e2e/test_keywords.py
and bench/bench_keywords.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from sensevoice_server.engine.beam_search import beam_search
from sensevoice_server.engine.keyword_graph import KeywordGraph, State
from sensevoice_server.engine.language_set import outside
from sensevoice_server.engine.tokens import QUERY_FRAMES, Vocabulary, greedy
from sensevoice_server.errors import BadRequest
from sensevoice_server.options import DecodeOptions, checked_keywords, checked_languages, listed

PIECES = ["<blank>", "<|en|>", "<|zh|>", "<|NEUTRAL|>", "<|Speech|>", "<|woitn|>",
          "\u2581blue", "\u2581lake", "\u2581bake", "\u2581the", "\u2581blew"]  # fmt: skip
VOCABULARY = Vocabulary(PIECES)
TAGS = [1, 3, 4, 5]  # <|en|><|NEUTRAL|><|Speech|><|woitn|>


def logits_for(frames: list[dict[int, float]]) -> np.ndarray:
    """Query frames giving TAGS, then one row per dict of token probabilities (the rest of
    each row is blank)."""
    rows = []
    for tag in TAGS:
        row = np.full(len(PIECES), -20.0, np.float32)
        row[tag] = 0.0
        rows.append(row)
    for probabilities in frames:
        row = np.full(len(PIECES), 1e-9)
        for token, p in probabilities.items():
            row[token] = p
        row[0] = max(1e-9, 1 - sum(probabilities.values()))
        rows.append(np.log(row / row.sum()).astype(np.float32))
    return np.stack(rows)


def test_a_match_earns_its_boost_and_a_broken_one_gives_it_back() -> None:
    graph = KeywordGraph.build(("blue lake",), VOCABULARY, boost=2.0)
    state, added = graph.step(State(), VOCABULARY.ids["\u2581blue"])
    assert added == 2.0 and state.pending == 2.0
    broken, given_back = graph.step(state, VOCABULARY.ids["\u2581bake"])
    assert given_back == -2.0 and broken == State()
    done, added = graph.step(state, VOCABULARY.ids["\u2581lake"])
    assert added == 2.0 and done == State()  # complete: kept, and free for the next one
    assert graph.finish(state) == -2.0  # audio ending mid-keyword pays nothing


def test_keywords_the_vocabulary_cannot_spell_are_left_out() -> None:
    graph = KeywordGraph.build(("Blue Lake", "zebra"), VOCABULARY)
    assert graph.keywords == 1  # "Blue Lake" is spelled lower case, "zebra" not at all


def test_without_keywords_the_beam_search_reads_as_greedy_decoding() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, len(PIECES))).astype(np.float32) * 3
    empty = KeywordGraph.build((), VOCABULARY)
    assert beam_search(logits, VOCABULARY, empty)[0] == greedy(logits, VOCABULARY)[0]


def test_a_keyword_the_audio_makes_likely_wins_and_one_it_does_not_stays_out() -> None:
    blue, lake, bake, blew = (
        VOCABULARY.ids["\u2581" + w] for w in ("blue", "lake", "bake", "blew")
    )
    heard = logits_for([{blue: 0.9}, {}, {bake: 0.55, lake: 0.4}, {}])
    assert greedy(heard, VOCABULARY)[0].endswith("blue bake")
    biased = KeywordGraph.build(("blue lake",), VOCABULARY)
    text, tokens = beam_search(heard, VOCABULARY, biased)
    assert text.endswith("blue lake")
    assert [t.first_frame for t in tokens[len(TAGS) :]] == [QUERY_FRAMES, QUERY_FRAMES + 2]
    unlikely = logits_for([{blew: 0.95}, {}, {bake: 0.95, lake: 1e-6}, {}])
    assert beam_search(unlikely, VOCABULARY, biased)[0].endswith("blew bake")


def test_detection_among_expected_languages() -> None:
    logits = logits_for([])
    logits[0, 2] = -1.0  # <|zh|> second to <|en|>
    assert outside(logits, VOCABULARY, ("en", "zh")) is None  # its own guess is allowed
    assert outside(logits, VOCABULARY, ("zh",)) == "zh"


def test_lists_are_tidied_and_bounded() -> None:
    assert listed("Blue Lake, Kessler\nAcme") == ["Blue Lake", " Kessler", "Acme"]
    assert checked_keywords(["  Blue   Lake ", "Blue Lake", "", "Smith, John"]) == (
        "Blue Lake", "Smith, John",
    )  # fmt: skip
    with pytest.raises(BadRequest, match="at most 50 characters"):
        checked_keywords(["x" * 51])
    with pytest.raises(BadRequest, match="At most 100 keywords"):
        checked_keywords([f"k{i}" for i in range(101)])
    assert checked_languages(["EN", "zh", "en"]) == ("en", "zh")
    with pytest.raises(BadRequest, match="Unknown language 'fr'"):
        checked_languages(["fr"])


def test_keywords_and_expected_languages_are_part_of_the_cache_key() -> None:
    plain = DecodeOptions()
    assert DecodeOptions(keywords=("Acme",)).extras() != plain.extras()
    assert DecodeOptions(keywords=("Acme",)).extras() != DecodeOptions(keywords=("Acne",)).extras()
    assert DecodeOptions(languages=("en",)).extras() != plain.extras()
    # a forced language makes the expected ones moot: the same transcript, the same key
    assert DecodeOptions("en", languages=("zh",)).extras() == DecodeOptions("en").extras()
