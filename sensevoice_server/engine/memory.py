"""Hand freed heap memory back to the system once loading is done.

Loading an ONNX model parses its protobuf (as large as the file) and frees it once the
session holds the weights; glibc keeps such freed pages in the process's heap for reuse, so
the server stayed about 150 MB above what it uses (the full-size int8 session: 463 MB
resident after loading, 320 MB after `malloc_trim`; docs/FACTS.md). Neither onnxruntime nor
Python returns them; glibc's `malloc_trim` does, which is the gap this fills. On a C library
without it (musl, macOS) nothing happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)


def give_back_freed_memory() -> None:
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is not None:
        trim(0)
