"""Simulated NVML: process lists (compute, graphics, MPS; v1/v2/v3 and R550's detail list) and per-process
utilisation samples.

Which struct each name fills is the node's driver profile's (``exporter.simulate.drivers``): the unversioned name
the 2-field v1 struct, ``_v2`` the 4-field one, ``_v3`` the 4-field one or, on 535.43.02-535.86, the 5-field one.

The lists follow the driver's size-then-fill protocol that pynvml relies on: called with no array, a list answers
NVML_SUCCESS and count 0 when empty, else NVML_ERROR_INSUFFICIENT_SIZE with the count; called with an array too
small, INSUFFICIENT_SIZE again; otherwise it fills the array. Under MPS the compute list shows the MPS server and
``nvmlDeviceGetMPSComputeRunningProcesses`` the clients. On a MIG-enabled GPU's own handle the lists cover every
MIG device with GI/CI ids but without per-process memory (NVML_VALUE_NOT_AVAILABLE): per-process memory is only
reported on the MIG device handle. No simulated process draws graphics.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

from exporter.simulate.drivers import ProcessLayout
from exporter.simulate.fake_nvml_core import (
    ERROR_INSUFFICIENT_SIZE,
    ERROR_INVALID_ARGUMENT,
    ERROR_NOT_FOUND,
    ERROR_NOT_SUPPORTED,
    INVALID_ID,
    SUCCESS,
    VALUE_NOT_AVAILABLE_ULL,
    Fail,
    check_version,
    put,
    symbol,
    target,
    value,
)

if TYPE_CHECKING:
    from exporter.simulate.fake_nvml import FakeNvml, Target

Entry = tuple[int, int, int, int]  # pid, usedGpuMemory, gpuInstanceId, computeInstanceId


def _entries(lib: FakeNvml, t: Target, mps_list: bool, filling: bool) -> list[Entry]:
    runtime = lib.runtime
    tick = t.tick
    indices = [t.device] if t.device is not None else t.gpu_devices()
    hide_memory = t.mig_parent
    out: list[Entry] = []
    for d in indices:
        assert d is not None
        device = tick.devices[d]
        gi = device.gi.id if device.gi is not None else INVALID_ID
        ci = device.ci.id if device.ci is not None else INVALID_ID
        if device.mps and not mps_list:
            server = tick.mps_servers.get(d)
            procs = [server] if server is not None else []
        elif device.mps or not mps_list:
            procs = runtime.listed(d) if filling else [p for p in tick.processes[d] if p.pid not in tick.gone]
        else:
            procs = []
        for p in procs:
            out.append((p.pid, VALUE_NOT_AVAILABLE_ULL if hide_memory else p.memory, gi, ci))
    return out


class _InfoV1(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong)]


class _InfoV2(ctypes.Structure):
    _fields_ = [*_InfoV1._fields_, ("gpuInstanceId", ctypes.c_uint), ("computeInstanceId", ctypes.c_uint)]


class _InfoV3CC(ctypes.Structure):
    """nvmlProcessInfo_v3_t as 535.43.02-535.86 define it: 32 bytes (see ``exporter.simulate.drivers``)."""

    _fields_ = [*_InfoV2._fields_, ("usedGpuCcProtectedMemory", ctypes.c_ulonglong)]


_STRUCTS: dict[ProcessLayout, type[ctypes.Structure]] = {
    ProcessLayout.V1: _InfoV1,
    ProcessLayout.V2: _InfoV2,
    ProcessLayout.V3_CC: _InfoV3CC,
}


def _fill(infos: Any, layout: ProcessLayout, found: list[Entry]) -> None:
    """Write the entries as the driver does: its own struct, whatever array type the caller allocated.

    A caller expecting a smaller struct reads every entry after the first misaligned (the 535.54 bug). Writing
    stops at the end of the caller's buffer, where a real driver would write past it."""
    array = target(infos)
    base, capacity = ctypes.addressof(array), ctypes.sizeof(array)
    struct = _STRUCTS[layout]
    size = ctypes.sizeof(struct)
    for i, (pid, memory, gi, ci) in enumerate(found):
        if (i + 1) * size > capacity:
            break
        entry = struct.from_address(base + i * size)
        entry.pid, entry.usedGpuMemory = pid, memory
        if layout is not ProcessLayout.V1:
            entry.gpuInstanceId, entry.computeInstanceId = gi, ci
        if layout is ProcessLayout.V3_CC:
            entry.usedGpuCcProtectedMemory = 0


def _list(lib: FakeNvml, handle: Any, count: Any, infos: Any, mps_list: bool, layout: ProcessLayout) -> int:
    t = lib.device(handle)
    n = target(count)
    if infos is None:
        found = _entries(lib, t, mps_list, filling=False)
        n.value = len(found)
        return SUCCESS if not found else ERROR_INSUFFICIENT_SIZE
    found = _entries(lib, t, mps_list, filling=True)
    if n.value < len(found):
        n.value = len(found)
        return ERROR_INSUFFICIENT_SIZE
    _fill(infos, layout, found)
    n.value = len(found)
    return SUCCESS


def _layout(lib: FakeNvml, suffix: str) -> ProcessLayout:
    if suffix == "_v3":
        return lib.node.driver.v3_layout
    return ProcessLayout.V2 if suffix == "_v2" else ProcessLayout.V1


def _register(kind: str, mps_list: bool | None) -> None:
    """``nvmlDeviceGet<kind>RunningProcesses`` and its _v2/_v3; ``mps_list`` None: the graphics list (empty)."""
    for suffix in ("", "_v2", "_v3"):

        def impl(lib: FakeNvml, handle: Any, count: Any, infos: Any, suffix: str = suffix) -> int:
            if mps_list is None:
                lib.device(handle)
                target(count).value = 0
                return SUCCESS
            return _list(lib, handle, count, infos, mps_list, _layout(lib, suffix))

        symbol(f"nvmlDeviceGet{kind}RunningProcesses{suffix}")(impl)


_register("Compute", mps_list=False)
_register("MPSCompute", mps_list=True)
_register("Graphics", mps_list=None)

_DETAIL_LIST_V1 = 0x1000018
_MODES = {0: False, 2: True}  # NVML_PROCESS_MODE_COMPUTE, _MPS; 1 (graphics) is always empty here


@symbol("nvmlDeviceGetRunningProcessDetailList")
def _detail_list(lib: FakeNvml, handle: Any, plist: Any) -> int:
    """R550+: one call for any of the three lists, ``nvmlProcessDetail_v1_t`` entries (5 fields, 32 bytes)."""
    request = target(plist)
    check_version(request, _DETAIL_LIST_V1)
    t = lib.device(handle)
    mode = int(request.mode)
    if mode not in (0, 1, 2):
        raise Fail(ERROR_INVALID_ARGUMENT)
    mps_list = _MODES.get(mode)
    found = [] if mps_list is None else _entries(lib, t, mps_list, filling=bool(request.procArray))
    if not request.procArray:
        request.numProcArrayEntries = len(found)
        return SUCCESS if not found else ERROR_INSUFFICIENT_SIZE
    if request.numProcArrayEntries < len(found):
        request.numProcArrayEntries = len(found)
        return ERROR_INSUFFICIENT_SIZE
    base = ctypes.cast(request.procArray, ctypes.c_void_p).value or 0
    for i, (pid, memory, gi, ci) in enumerate(found):
        entry = _InfoV3CC.from_address(base + i * ctypes.sizeof(_InfoV3CC))
        entry.pid, entry.usedGpuMemory, entry.gpuInstanceId, entry.computeInstanceId = pid, memory, gi, ci
        entry.usedGpuCcProtectedMemory = 0
    request.numProcArrayEntries = len(found)
    return SUCCESS


@symbol("nvmlDeviceGetProcessUtilization")
def _process_utilization(lib: FakeNvml, handle: Any, samples: Any, count: Any, last_seen: Any) -> int:
    """Samples newer than ``last_seen`` (microseconds) from the driver's buffer; NOT_FOUND when there are none.
    Not supported on MIG devices, nor on a GPU in MIG mode."""
    t = lib.device(handle)
    if t.is_mig_device or t.mig_parent or t.device is None:
        raise Fail(ERROR_NOT_SUPPORTED)
    since = value(last_seen)
    found = [e for e in lib.runtime.util_samples(t.device) if e[0] > since]
    n = target(count)
    if samples is None:
        if not found:
            raise Fail(ERROR_NOT_FOUND)
        n.value = len(found)
        return ERROR_INSUFFICIENT_SIZE
    if n.value < len(found):
        n.value = len(found)
        return ERROR_INSUFFICIENT_SIZE
    array = target(samples)
    for i, (stamp, pid, sm, mem) in enumerate(found):
        put(array[i], pid=pid, timeStamp=stamp, smUtil=sm, memUtil=mem, encUtil=0, decUtil=0)
    n.value = len(found)
    return SUCCESS
