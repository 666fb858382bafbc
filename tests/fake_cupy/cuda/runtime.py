"""``cupy.cuda.runtime``: device count (``fake_cupy._core.DEVICE_COUNT``; 0 = no GPU), syncs."""
from __future__ import annotations

from fake_cupy import _core


class CUDARuntimeError(RuntimeError):
    def __init__(self, status: int, message: str = ""):
        self.status = status
        super().__init__(message)


def getDeviceCount() -> int:
    if _core.DEVICE_COUNT[0] == 0:
        raise CUDARuntimeError(100, "cudaErrorNoDevice: no CUDA-capable device is detected")
    return _core.DEVICE_COUNT[0]


def _check_id(i: int) -> None:
    if not 0 <= i < getDeviceCount():
        raise CUDARuntimeError(101, "cudaErrorInvalidDevice: invalid device ordinal")


def getDevice() -> int:
    return _core.current_device()


def setDevice(device: int) -> None:
    _check_id(device)
    _core.set_current_device(device)


def deviceSynchronize() -> None:
    _core.sync()


def runtimeGetVersion() -> int:
    return 12080


def driverGetVersion() -> int:
    return 12080
