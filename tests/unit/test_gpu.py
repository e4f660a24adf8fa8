"""Whether there is a GPU is asked of the CUDA driver, not of torch (gpu.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sensevoice_server.gpu import cuda_devices, cuda_usable


def test_without_a_cuda_driver_there_is_no_device_and_auto_means_cpu() -> None:
    """A machine without a GPU (these, and CI): auto is the CPU, and torch is not imported
    to find that out."""
    if cuda_devices():
        pytest.skip("this machine has a CUDA device")
    assert cuda_usable() is False
    code = (
        "import sys\n"
        "from sensevoice_server.settings import Settings\n"
        "print(Settings(device='auto').resolved_device(), 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["cpu", "False"], done.stderr
