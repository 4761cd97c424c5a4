"""Simulated NVML: initialisation, system queries, device enumeration and handles by index, UUID, serial, PCI id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from exporter.simulate.fake_nvml_core import (
    ERROR_DRIVER_NOT_LOADED,
    ERROR_GPU_IS_LOST,
    ERROR_INVALID_ARGUMENT,
    ERROR_LIB_RM_VERSION_MISMATCH,
    ERROR_LIBRARY_NOT_FOUND,
    ERROR_NOT_FOUND,
    ERROR_NOT_SUPPORTED,
    ERROR_STRINGS,
    ERROR_UNINITIALIZED,
    SUCCESS,
    Fail,
    store,
    store_pointer,
    store_text,
    symbol,
    target,
    value,
)
from exporter.simulate.hardware import pci_bus_id

if TYPE_CHECKING:
    from exporter.simulate.fake_nvml import FakeNvml


@symbol("nvmlInit", "nvmlInit_v2", init=False)
def _init(lib: FakeNvml) -> int:
    return _init_with_flags(lib, 0)


@symbol("nvmlInitWithFlags", init=False)
def _init_with_flags(lib: FakeNvml, flags: Any) -> int:
    faults = lib.node.faults
    if faults.library_missing:
        return ERROR_LIBRARY_NOT_FOUND
    if lib.node.clock.now() < lib.loads_at:
        return ERROR_DRIVER_NOT_LOADED
    if lib.kernel_mismatch():
        return ERROR_LIB_RM_VERSION_MISMATCH
    lib.init_count += 1
    return SUCCESS


@symbol("nvmlShutdown", init=False)
def _shutdown(lib: FakeNvml) -> int:
    if lib.init_count <= 0:
        return ERROR_UNINITIALIZED
    lib.init_count -= 1
    return SUCCESS


@symbol("nvmlErrorString", init=False)
def _error_string(lib: FakeNvml, code: Any) -> bytes:
    return ERROR_STRINGS.get(value(code), "Unknown Error").encode()


@symbol("nvmlSystemGetDriverVersion")
def _driver_version(lib: FakeNvml, buffer: Any, length: Any) -> int:
    store_text(buffer, length, lib.node.driver_version)
    return SUCCESS


@symbol("nvmlSystemGetNVMLVersion")
def _nvml_version(lib: FakeNvml, buffer: Any, length: Any) -> int:
    store_text(buffer, length, lib.node.driver.nvml_version)
    return SUCCESS


@symbol("nvmlSystemGetCudaDriverVersion", "nvmlSystemGetCudaDriverVersion_v2")
def _cuda_version(lib: FakeNvml, out: Any) -> int:
    store(out, lib.node.driver.cuda_version)
    return SUCCESS


@symbol("nvmlSystemGetProcessName")
def _process_name(lib: FakeNvml, pid: Any, buffer: Any, length: Any) -> int:
    proc = lib.runtime.process(value(pid))
    if proc is None:
        raise Fail(ERROR_NOT_FOUND)
    facts = lib.runtime.facts(proc.pid)
    store_text(buffer, length, facts.cmdline[0])
    return SUCCESS


@symbol("nvmlDeviceGetCount", "nvmlDeviceGetCount_v2")
def _device_count(lib: FakeNvml, out: Any) -> int:
    store(out, len(lib.node.gpus))
    return SUCCESS


def _give_gpu(lib: FakeNvml, index: int, out: Any) -> int:
    gpus = lib.node.gpus
    if not 0 <= index < len(gpus):
        raise Fail(ERROR_INVALID_ARGUMENT)
    gpu = gpus[index]
    if gpu.lost:
        raise Fail(ERROR_GPU_IS_LOST)
    store_pointer(out, lib.gpu_handle(gpu).address)
    return SUCCESS


@symbol("nvmlDeviceGetHandleByIndex", "nvmlDeviceGetHandleByIndex_v2")
def _handle_by_index(lib: FakeNvml, index: Any, out: Any) -> int:
    return _give_gpu(lib, value(index), out)


def _text(arg: Any) -> str:
    raw = arg.value if hasattr(arg, "value") else arg
    return raw.decode() if isinstance(raw, bytes) else str(raw)


@symbol("nvmlDeviceGetHandleByUUID")
def _handle_by_uuid(lib: FakeNvml, uuid: Any, out: Any) -> int:
    wanted = _text(uuid)
    lib.runtime.state()
    for gpu in lib.node.gpus:
        if gpu.uuid == wanted:
            return _give_gpu(lib, gpu.index, out)
        if gpu.mig_enabled:
            for device in gpu.devices():
                if device.uuid == wanted:
                    if gpu.lost:
                        raise Fail(ERROR_GPU_IS_LOST)
                    store_pointer(out, lib.mig_handle(gpu, device.key).address)
                    return SUCCESS
    raise Fail(ERROR_NOT_FOUND)


@symbol("nvmlDeviceGetHandleBySerial")
def _handle_by_serial(lib: FakeNvml, serial: Any, out: Any) -> int:
    wanted = _text(serial)
    for gpu in lib.node.gpus:
        if gpu.serial == wanted:
            return _give_gpu(lib, gpu.index, out)
    raise Fail(ERROR_NOT_FOUND)


@symbol("nvmlDeviceGetHandleByPciBusId", "nvmlDeviceGetHandleByPciBusId_v2")
def _handle_by_pci(lib: FakeNvml, bus_id: Any, out: Any) -> int:
    wanted = _text(bus_id).upper()
    for gpu in lib.node.gpus:
        full = pci_bus_id(gpu.index)
        if wanted in (full, full[4:]):
            return _give_gpu(lib, gpu.index, out)
    raise Fail(ERROR_NOT_FOUND)


@symbol("nvmlSystemGetConfComputeState")
def _conf_compute_state(lib: FakeNvml, out: Any) -> int:
    """R535+: confidential computing is off on every simulated node (environment, feature, dev-tools mode 0)."""
    state = target(out)
    state.environment, state.ccFeature, state.devToolsMode = 0, 0, 0
    return SUCCESS


@symbol("nvmlDeviceGetConfComputeMemSizeInfo")
def _conf_compute_memory(lib: FakeNvml, handle: Any, out: Any) -> int:
    """R535+: with confidential computing off there is no protected memory region to size."""
    lib.device(handle)
    raise Fail(ERROR_NOT_SUPPORTED)
