"""The compute, graphics and MPS process lists, read right on every driver generation.

pynvml's unversioned ``nvmlDeviceGet{Compute,Graphics,MPSCompute}RunningProcesses`` call the ``_v3`` symbol and,
where a driver lacks it (before 510.39, and 535.98), raise ``NVMLLibraryMismatchError``, which is not an
``NVMLError``. And 535.43.02 to 535.86.x fill a 5-field, 32-byte struct under the ``_v3`` name, which pynvml reads
as 24-byte entries: every entry after the first is garbage. So, as nvitop does (nvitop/api/libnvml.py), the
symbol and struct are chosen once per NVML session from what the library exports:

- ``_v3`` present: the 5-field struct when ``nvmlDeviceGetConfComputeMemSizeInfo`` is exported and
  ``nvmlDeviceGetRunningProcessDetailList`` is not (535.43-535.86), else the 4-field v2 struct;
- else ``_v2`` with the v2 struct; else the unversioned symbol with the 2-field v1 struct (no GI/CI ids).

A call that still answers FUNCTION_NOT_FOUND (or pynvml's mismatch error) falls back to the next older version.
The v2-layout calls go through pynvml's own ``_v3``/``_v2`` wrappers; the two layouts pynvml has no wrapper for
are read here with the driver's size-then-fill protocol. Sources for each driver: ``exporter.simulate.drivers``.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pynvml

from exporter.nvml.calls import Calls

log = logging.getLogger(__name__)

KINDS = ("Compute", "Graphics", "MPSCompute")
_NOT_AVAILABLE = (1 << 64) - 1  # NVML_VALUE_NOT_AVAILABLE in usedGpuMemory


class _InfoV1(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong)]


class _InfoV3CC(ctypes.Structure):
    """nvmlProcessInfo_v3_t of 535.43.02-535.86.x: v2 plus ``usedGpuCcProtectedMemory``."""

    _fields_ = [
        ("pid", ctypes.c_uint),
        ("usedGpuMemory", ctypes.c_ulonglong),
        ("gpuInstanceId", ctypes.c_uint),
        ("computeInstanceId", ctypes.c_uint),
        ("usedGpuCcProtectedMemory", ctypes.c_ulonglong),
    ]


@dataclass(frozen=True, slots=True)
class ListedProcess:
    pid: int
    used_memory: int | None  # None where NVML reports NVML_VALUE_NOT_AVAILABLE


@dataclass(frozen=True, slots=True)
class Version:
    """One way of reading the lists: the symbol suffix and the struct it fills (None: pynvml's v2 wrapper)."""

    suffix: str
    struct: type[ctypes.Structure] | None
    name: str


V3 = Version("_v3", None, "_v3 (v2 struct)")
V3_CC = Version("_v3", _InfoV3CC, "_v3 (5-field struct of 535.43-535.86)")
V2 = Version("_v2", None, "_v2")
V1 = Version("", _InfoV1, "unversioned (v1 struct)")


def _exports(symbol: str) -> bool:
    try:
        pynvml._nvmlGetFunctionPointer(symbol)
    except pynvml.NVMLError as exc:
        return int(exc.value) != pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
    return True


def detect(exports: Callable[[str], bool] = _exports) -> list[Version]:
    """The versions to try, best first, for the library loaded now."""
    if exports("nvmlDeviceGetComputeRunningProcesses_v3"):
        cc_struct = exports("nvmlDeviceGetConfComputeMemSizeInfo") and not exports(
            "nvmlDeviceGetRunningProcessDetailList"
        )
        return [V3_CC if cc_struct else V3, V2, V1]
    if exports("nvmlDeviceGetComputeRunningProcesses_v2"):
        return [V2, V1]
    return [V1]


def _read_raw(function: str, struct: type[ctypes.Structure], handle: Any) -> list[ListedProcess]:
    """Size-then-fill with our own struct, as pynvml's wrappers do with theirs (raises NVMLError)."""
    fn = pynvml._nvmlGetFunctionPointer(function)
    count = ctypes.c_uint(0)
    for _ in range(3):  # more processes may start between the two calls: ask again with the new count
        ret = fn(handle, ctypes.byref(count), None)
        if ret == pynvml.NVML_SUCCESS:
            return []
        if ret != pynvml.NVML_ERROR_INSUFFICIENT_SIZE:
            raise pynvml.NVMLError(ret)
        count.value = count.value * 2 + 5
        array = (struct * count.value)()
        ret = fn(handle, ctypes.byref(count), array)
        if ret == pynvml.NVML_SUCCESS:
            entries = [array[i] for i in range(count.value)]
            return [ListedProcess(int(e.pid), _memory(int(e.usedGpuMemory))) for e in entries]
        if ret != pynvml.NVML_ERROR_INSUFFICIENT_SIZE:
            raise pynvml.NVMLError(ret)
    raise pynvml.NVMLError(pynvml.NVML_ERROR_INSUFFICIENT_SIZE)


def _memory(raw: int | None) -> int | None:
    return None if raw is None or raw == _NOT_AVAILABLE else raw


def _read(version: Version, kind: str, handle: Any) -> list[ListedProcess]:
    function = f"nvmlDeviceGet{kind}RunningProcesses{version.suffix}"
    if version.struct is not None:
        return _read_raw(function, version.struct, handle)
    infos = getattr(pynvml, function)(handle)
    return [ListedProcess(int(i.pid), _memory(i.usedGpuMemory)) for i in infos]


class ProcessLists:
    """Which version to call, chosen on the first list read after each NVML initialisation."""

    def __init__(self) -> None:
        self._versions: dict[str, list[Version]] = {}
        self._detected: list[Version] | None = None

    def reset(self) -> None:
        """NVML was initialised again (perhaps another driver): choose afresh."""
        self._versions.clear()
        self._detected = None

    @property
    def versions(self) -> list[Version] | None:
        return self._detected

    def get(self, calls: Calls, kind: str, handle: Any) -> list[ListedProcess] | None:
        """The ``kind`` list on ``handle``, or None when it failed (the error recorded as for any call)."""
        if self._detected is None:
            self._detected = detect()
            log.info("NVML process lists: reading %s", self._detected[0].name)
        versions = self._versions.setdefault(kind, list(self._detected))
        function = f"nvmlDeviceGet{kind}RunningProcesses"
        while versions:
            try:
                return _read(versions[0], kind, handle)
            except pynvml.NVMLLibraryMismatchError:
                pass
            except pynvml.NVMLError as exc:
                if int(exc.value) != pynvml.NVML_ERROR_FUNCTION_NOT_FOUND:
                    calls.failed(function, exc)  # one label whatever the version, stable across drivers
                    return None
            dropped = versions.pop(0)
            log.info("NVML %s%s is not exported; trying an older version", function, dropped.suffix)
        return None  # no version of this list at all: treated as unsupported, not an error
