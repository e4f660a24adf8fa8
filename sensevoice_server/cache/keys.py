"""Cache keys: one named function decides what identifies a transcript."""

from __future__ import annotations

import hashlib

# Bump when the shape of stored values changes: old entries then simply stop matching.
KEY_VERSION = "v2"  # v2: segments carry words, speakers and token log-probabilities
KINDS = frozenset({"pcm", "bytes"})


def sha256_hex(data: bytes | memoryview) -> str:
    """Hash of the whole content: a prefix hash would let two different clips share a key."""
    return hashlib.sha256(data).hexdigest()


def cache_key(
    kind: str,
    digest: str,
    *,
    language: str,
    use_itn: bool,
    fingerprint: str,
    extras: tuple[str, ...] = (),
) -> str:
    """The one place keys are built; everything that changes a transcript goes in.

    - `kind` + `digest`: what the audio is. "pcm" is the SHA-256 of the decoded 16 kHz mono
      float32 samples (the same speech in another container still hits); "bytes" is the
      SHA-256 of the upload's raw bytes, so a repeated upload is answered before decoding.
    - `language`, `use_itn`: the request options that change the model's output.
    - `extras`: what was computed beside the text ("words", "logprobs", "speakers"): a
      transcript without word times must not answer a request for them.
    - `fingerprint`: the Engine's model fingerprint, which already covers the weights, the VAD
      model and the VAD/merge settings, so an upgraded model never serves stale text.
    - `KEY_VERSION`: the layout of the stored value.
    Parts are joined with ":" and kept readable so `redis-cli --scan` shows what a key is for.
    """
    if kind not in KINDS:
        raise ValueError(f"cache key kind must be one of {sorted(KINDS)}, not {kind!r}")
    parts = [KEY_VERSION, kind, digest, language, "itn" if use_itn else "noitn", fingerprint]
    parts += sorted(extras)
    if any(not part or ":" in part for part in parts):
        raise ValueError(f"cache key parts must be non-empty and free of ':': {parts!r}")
    return ":".join(parts)
