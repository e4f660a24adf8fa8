"""Realtime deltas from re-decoded partials: only what two partials agree on is sent, never
the newest word, and whatever the final decode says, the deltas join to the transcript."""

from __future__ import annotations

import random

from sensevoice_server.api.realtime_deltas import Deltas


def test_words_go_out_once_two_partials_agree_and_the_final_brings_the_rest() -> None:
    deltas = Deltas()
    sent = [deltas.partial(p) for p in ("we", "we drink", "we drink tea", "we drink tea with")]
    assert sent == ["", "we", " drink", " tea"]
    last, transcript = deltas.final("we drink tea with milk every morning.")
    assert last == " with milk every morning."
    assert "".join(sent) + last == transcript == "we drink tea with milk every morning."


def test_a_word_the_partials_disagree_on_is_held_back() -> None:
    deltas = Deltas()
    assert [deltas.partial(p) for p in ("we drank", "we drank tea", "we drink tea milk")] == [
        "", "we drank", ""]  # fmt: skip
    assert deltas.partial("we drink tea milk every") == ""  # "drank" was sent: no agreement past it


def test_when_the_final_changes_a_sent_word_what_was_sent_stands_and_the_rest_follows() -> None:
    deltas = Deltas()
    for text in ("my sister", "my sister and", "my sister and my"):
        deltas.partial(text)
    assert deltas.sent_text == "my sister and"
    last, transcript = deltas.final("by sister and my brother play music")
    assert transcript == "my sister and my brother play music"
    assert last == " my brother play music"


def test_text_without_spaces_is_sent_by_character() -> None:
    deltas = Deltas()
    sent = "".join(deltas.partial(p) for p in ("我们", "我们明天", "我们明天一起"))
    assert sent == "我们明天"
    last, transcript = deltas.final("我们明天一起跑步。")
    assert sent + last == transcript == "我们明天一起跑步。"


def test_whatever_the_decodes_say_the_deltas_join_to_the_transcript() -> None:
    rng = random.Random(7)
    vocabulary = ["we", "drink", "drank", "tea", "milk", "with", "every", "morning"]
    for _ in range(300):
        deltas = Deltas()
        words: list[str] = []
        sent = ""
        for _ in range(rng.randint(0, 8)):
            words = [rng.choice(vocabulary) if rng.random() < 0.2 else w for w in words]
            words.append(rng.choice(vocabulary))
            sent += deltas.partial(" ".join(words))
        final = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 9)))
        last, transcript = deltas.final(final)
        assert sent + last == transcript
