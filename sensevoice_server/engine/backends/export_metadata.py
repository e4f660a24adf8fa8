"""What an ONNX export says about itself, and the inputs it takes: shared by every runtime
that runs an export (onnx.py: onnxruntime, openvino.py: OpenVINO).

An export carries sherpa-onnx's metadata (engine/export.py): the CMVN, the vocabulary size,
the query ids of each language and of ITN, and for int8 how its scales were made. Each
runtime hands over that metadata its own way; what it means, and the checks that turn a
wrong file into a clear start-up error, live here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import numpy as np

from sensevoice_server.engine.backends import Item
from sensevoice_server.engine.features import Cmvn, pad_batch
from sensevoice_server.engine.tokens import Vocabulary
from sensevoice_server.errors import ModelLoadError

REQUIRED_METADATA = ("vocab_size", "lfr_window_size", "lfr_window_shift", "neg_mean",
                     "inv_stddev", "with_itn", "without_itn", "lang_auto", "lang_zh",
                     "lang_en", "lang_yue", "lang_ja", "lang_ko")  # fmt: skip


@dataclass(frozen=True)
class ExportMetadata:
    cmvn: Cmvn
    vocabulary: Vocabulary
    languages: dict[str, int]  # query id per language name ("auto", "zh", ...)
    itn: dict[bool, int]  # query id for ITN on and off
    static: bool  # int8 with scales fixed at export time (from calibration clips)

    @classmethod
    def of(cls, model_file: Path, meta: Mapping[str, str]) -> ExportMetadata:
        """`meta` read from `model_file`, checked: the keys sherpa-onnx requires, and a
        vocabulary beside the file of the size the export was made with."""
        missing = [key for key in REQUIRED_METADATA if key not in meta]
        if missing:
            raise ModelLoadError(
                f"{model_file}: not a SenseVoice export (its metadata has no "
                f"{', '.join(missing)}); export one with python -m sensevoice_server.cli export"
            )
        vocabulary = Vocabulary.from_model_dir(model_file.parent)
        if len(vocabulary) != int(meta["vocab_size"]):
            raise ModelLoadError(
                f"{model_file}: its vocabulary ({meta['vocab_size']}) does not match "
                f"{model_file.parent}'s tokens ({len(vocabulary)}): a mismatched export"
            )
        return cls(
            cmvn=Cmvn.from_strings(meta["neg_mean"], meta["inv_stddev"]),
            vocabulary=vocabulary,
            languages={k[5:]: int(v) for k, v in meta.items() if k.startswith("lang_")},
            itn={True: int(meta["with_itn"]), False: int(meta["without_itn"])},
            static=meta.get("quantization") == "static",
        )

    def batch_independent(self, precision: str) -> bool:
        """Dynamic int8 (sherpa-onnx's downloads, or ours without calibration clips) scales
        activations over the whole padded batch, so an item's text would depend on its
        batch mates (docs/FACTS.md, "ONNX and onnxruntime"); static scales do not."""
        return precision != "int8" or self.static

    def feeds(self, items: list[Item]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The export's four inputs for a batch of `items`, and each item's frame count."""
        padded, lengths = pad_batch([item.features for item in items])
        return {
            "x": padded,
            "x_length": lengths,
            "language": np.array([self.languages.get(i.language, 0) for i in items], np.int32),
            "text_norm": np.array([self.itn[i.use_itn] for i in items], np.int32),
        }, lengths


# --- an ONNX file's metadata, without its weights ----------------------------------------------
# The gap: onnx.load parses every initializer to reach a few strings (0.9 s and a transient
# 940 MB for SenseVoiceSmall's fp32 export, measured), and OpenVINO's compiled-model cache
# skips reading the file at all, so a runtime that loads from its cache would pay that
# just for the metadata. A ModelProto is a sequence of tagged fields; metadata_props
# (field 14) holds key/value pairs; everything else is stepped over by its length.
METADATA_PROPS = 14


def onnx_metadata(model_file: Path) -> dict[str, str]:
    """The metadata_props of an ONNX file (the graph and its weights are seeked over)."""
    meta: dict[str, str] = {}
    try:
        with model_file.open("rb") as handle:
            for field, value in _fields(handle):
                if field == METADATA_PROPS and isinstance(value, bytes):
                    entry = dict(_fields(BytesIO(value)))
                    key, text = entry.get(1, b""), entry.get(2, b"")
                    if isinstance(key, bytes) and isinstance(text, bytes):
                        meta[key.decode()] = text.decode()
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{model_file}: not a readable ONNX file ({error})") from error
    return meta


def _fields(handle: BinaryIO) -> list[tuple[int, bytes | int | None]]:
    """(field number, value) of each top-level field; length-delimited values other than
    small ones (below 1 MB: strings, entries) are skipped over and given as None."""
    fields: list[tuple[int, bytes | int | None]] = []
    while (tag := _varint(handle)) is not None:
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            fields.append((field, _varint(handle)))
        elif wire in (1, 5):
            handle.seek(8 if wire == 1 else 4, 1)
        elif wire == 2:
            size = _varint(handle) or 0
            if size < 1 << 20:
                fields.append((field, handle.read(size)))
            else:
                handle.seek(size, 1)
        else:
            raise ValueError(f"wire type {wire} where ONNX has none")
    return fields


def _varint(handle: BinaryIO) -> int | None:
    """A protobuf varint, or None at the end of the input."""
    value = shift = 0
    while byte := handle.read(1):
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")
    if shift:
        raise ValueError("the file ends inside a varint")
    return None
