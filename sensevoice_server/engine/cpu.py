"""The CPU's name and the instruction sets the runtimes' kernels choose between.

Two decisions hang on them: which runtime `--backend auto` serves (backend_choice.py keys
its measured answer by them) and how the int8 export quantises attention (export.py): an
int8 x int8 product of two activations is only exact where the CPU multiplies unsigned by
signed bytes into 32 bits (VNNI, AMX); AVX2's byte multiply-add saturates at 16 bits.
"""

from __future__ import annotations

import os
from functools import cache

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
             "amx_tile", "amx_int8", "amx_bf16", "amx_fp16")  # fmt: skip
"""The instruction sets the runtimes' kernels choose between: a record made on a CPU
without one is no answer for a CPU with it, even under the same model name."""
EXACT_BYTE_PRODUCTS = ("avx512_vnni", "avx_vnni", "amx_int8")
"""Instruction sets whose u8 x s8 multiply-add accumulates in 32 bits, with no 16-bit
intermediate to saturate (onnxruntime's int8 kernels use them where present)."""


@cache
def cpu_info() -> tuple[str, frozenset[str]]:
    """The first processor's model name and flags from /proc/cpuinfo (the machine's
    architecture, and no flags, where there is none to read)."""
    name, flags = os.uname().machine, frozenset[str]()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                field, _, value = line.partition(":")
                if field.strip() == "model name":
                    name = value.strip()
                elif field.strip() == "flags":
                    flags = frozenset(value.split())
                    break
    except OSError:
        pass
    return name, flags


def cpu_model() -> str:
    """The CPU's model name and its instruction sets that matter here."""
    name, flags = cpu_info()
    return f"{name} [{' '.join(flag for flag in CPU_FLAGS if flag in flags)}]"


def exact_byte_products() -> bool:
    """Whether this CPU multiplies int8 activations by int8 activations without saturating."""
    return not cpu_info()[1].isdisjoint(EXACT_BYTE_PRODUCTS)
