"""Whether this machine has a CUDA device, asked of the driver.

`torch.cuda.is_available()` answers it too, but importing torch costs about 540 MB resident
and seconds at start, which a CPU server running onnxruntime would otherwise never pay. The
CUDA driver's own library answers in milliseconds (and honours CUDA_VISIBLE_DEVICES); only
when it reports a device is torch asked, since a CPU-only torch cannot use it.
"""

from __future__ import annotations

import ctypes
import sys

DRIVER = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"


def cuda_devices() -> int:
    """CUDA devices the driver sees; 0 without a driver or a device."""
    try:
        driver = ctypes.CDLL(DRIVER)
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def cuda_usable() -> bool:
    """A CUDA device torch can run on (torch imported only when the driver reports one)."""
    if not cuda_devices():
        return False
    import torch

    return bool(torch.cuda.is_available())
