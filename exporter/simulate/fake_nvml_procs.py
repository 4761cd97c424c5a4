"""Simulated NVML: process lists (compute, graphics, MPS; v1/v2/v3) and per-process utilisation samples.

The lists follow the driver's size-then-fill protocol that pynvml relies on: called with no array, a list answers
NVML_SUCCESS and count 0 when empty, else NVML_ERROR_INSUFFICIENT_SIZE with the count; called with an array too
small, INSUFFICIENT_SIZE again; otherwise it fills the array. Under MPS the compute list shows the MPS server and
``nvmlDeviceGetMPSComputeRunningProcesses`` the clients. On a MIG-enabled GPU's own handle the lists cover every
MIG device with GI/CI ids but without per-process memory (NVML_VALUE_NOT_AVAILABLE): per-process memory is only
reported on the MIG device handle. No simulated process draws graphics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from exporter.simulate.fake_nvml_core import (
    ERROR_INSUFFICIENT_SIZE,
    ERROR_NOT_FOUND,
    ERROR_NOT_SUPPORTED,
    INVALID_ID,
    SUCCESS,
    VALUE_NOT_AVAILABLE_ULL,
    Fail,
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


def _list(lib: FakeNvml, handle: Any, count: Any, infos: Any, mps_list: bool) -> int:
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
    array = target(infos)
    has_ids = hasattr(type(array[0]) if len(found) else object, "gpuInstanceId")
    for i, (pid, memory, gi, ci) in enumerate(found):
        if has_ids:
            put(array[i], pid=pid, usedGpuMemory=memory, gpuInstanceId=gi, computeInstanceId=ci)
        else:  # the v1 struct: pid and memory only
            put(array[i], pid=pid, usedGpuMemory=memory)
    n.value = len(found)
    return SUCCESS


@symbol(
    "nvmlDeviceGetComputeRunningProcesses",
    "nvmlDeviceGetComputeRunningProcesses_v2",
    "nvmlDeviceGetComputeRunningProcesses_v3",
)
def _compute(lib: FakeNvml, handle: Any, count: Any, infos: Any) -> int:
    return _list(lib, handle, count, infos, mps_list=False)


@symbol(
    "nvmlDeviceGetMPSComputeRunningProcesses",
    "nvmlDeviceGetMPSComputeRunningProcesses_v2",
    "nvmlDeviceGetMPSComputeRunningProcesses_v3",
)
def _mps(lib: FakeNvml, handle: Any, count: Any, infos: Any) -> int:
    return _list(lib, handle, count, infos, mps_list=True)


@symbol(
    "nvmlDeviceGetGraphicsRunningProcesses",
    "nvmlDeviceGetGraphicsRunningProcesses_v2",
    "nvmlDeviceGetGraphicsRunningProcesses_v3",
)
def _graphics(lib: FakeNvml, handle: Any, count: Any, infos: Any) -> int:
    lib.device(handle)
    target(count).value = 0
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
