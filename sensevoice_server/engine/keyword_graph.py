"""Keywords as token sequences in a trie, and the boost a hypothesis earns walking it.

This is the context graph of contextual biasing for CTC and transducer models (icefall's
`ContextGraph`, which sherpa-onnx's hotwords use): each token that extends a match of some
keyword earns `boost`; a match that breaks off gives back what it earned, so a partial
match never pays in the end; a finished keyword keeps its boost. pyctcdecode's hotwords were
the library to use here, and do not fit: they match whole words split on spaces (no help for
Mandarin, written without them), score a word only once its beam leaves it, and give no
token frames for word times; no maintained Python library offers a token-level graph apart
from a decoder of its own (icefall's needs k2). So this file is the small gap: a trie with
restart at the root (no Aho-Corasick failure links: a keyword that starts inside another's
broken match is found from its own first token on).

Keywords are spelled the way the model writes: as given, lower case and capitalised (a
model trained on cased text writes "Kessler", one trained lower case "kessler"), each
variant tokenised by the model's own SentencePiece, without the word-start piece SentencePiece
puts before a word written alone where the model would not write it (Mandarin inside a
sentence). A variant with a piece the vocabulary lacks (<unk>) cannot be emitted and is left
out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sensevoice_server.engine.tokens import Vocabulary

WORD_START = "\u2581"
DEFAULT_BOOST = 3.0  # log-probability per matched token (bench/bench_keywords.py sweeps it)

ROOT = 0


@dataclass(frozen=True)
class State:
    """Where a hypothesis stands in the graph: a node, and the boost its open match holds."""

    node: int = ROOT
    pending: float = 0.0


@dataclass
class KeywordGraph:
    boost: float = DEFAULT_BOOST
    children: list[dict[int, int]] = field(default_factory=lambda: [{}])
    ends: list[bool] = field(default_factory=lambda: [False])
    keywords: int = 0  # how many of the given keywords could be spelled

    @classmethod
    def build(
        cls, keywords: tuple[str, ...], vocabulary: Vocabulary, boost: float = DEFAULT_BOOST
    ) -> KeywordGraph:
        graph = cls(boost)
        for keyword in keywords:
            spelled = [graph.add(ids) for ids in spellings(keyword, vocabulary)]
            graph.keywords += any(spelled)
        return graph

    def add(self, ids: tuple[int, ...]) -> bool:
        if not ids:
            return False
        node = ROOT
        for token in ids:
            child = self.children[node].get(token)
            if child is None:
                child = len(self.children)
                self.children[node][token] = child
                self.children.append({})
                self.ends.append(False)
            node = child
        self.ends[node] = True
        return True

    def step(self, state: State, token: int) -> tuple[State, float]:
        """The state after `token`, and the score it adds (negative when a match breaks)."""
        child = self.children[state.node].get(token)
        if child is not None:
            return self._entered(child, state.pending), self.boost
        withdrawn = -state.pending
        child = self.children[ROOT].get(token) if state.node != ROOT else None
        if child is None:
            return State(), withdrawn
        return self._entered(child, 0.0), withdrawn + self.boost

    def finish(self, state: State) -> float:
        """What an open match gives back when the audio ends inside it."""
        return -state.pending

    def _entered(self, node: int, pending: float) -> State:
        if self.ends[node]:  # a keyword is complete: its boost is kept
            return State(node if self.children[node] else ROOT, 0.0)
        return State(node, pending + self.boost)


def spellings(keyword: str, vocabulary: Vocabulary) -> set[tuple[int, ...]]:
    """Token-id sequences the model could write `keyword` as (see the module's note)."""
    variants = {keyword, keyword.lower(), keyword[:1].upper() + keyword[1:]}
    spelled: set[tuple[int, ...]] = set()
    for variant in variants:
        ids = vocabulary.encode(variant)
        if ids and vocabulary.pieces[ids[0]] == WORD_START:
            ids = ids[1:]  # SentencePiece's lone word start before a character-written word
        if ids and all(vocabulary.pieces[i] != "<unk>" and i != 0 for i in ids):
            spelled.add(tuple(ids))
    return spelled
