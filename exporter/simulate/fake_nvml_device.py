"""Simulated NVML: per-device identity, memory, utilisation and board telemetry (what nvidia-smi and nvitop show).

Board telemetry (temperature, power, clocks, PCIe, ECC) is answered for whole GPUs; on a MIG device handle the
driver answers NVML_ERROR_NOT_SUPPORTED, and so does this. Utilisation rates are NOT_SUPPORTED on a GPU in MIG
mode and on MIG devices, as on the driver. Fans: the SXM boards simulated here are passively cooled (0 fans).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from exporter.simulate.fake_nvml_core import (
    ERROR_ARGUMENT_VERSION_MISMATCH,
    ERROR_INVALID_ARGUMENT,
    ERROR_NOT_FOUND,
    ERROR_NOT_SUPPORTED,
    SUCCESS,
    Fail,
    check_version,
    put,
    store,
    store_pointer,
    store_text,
    symbol,
    target,
    value,
)
from exporter.simulate.hardware import RESERVED_SHARE, board, pci_bus_id
from exporter.simulate.runtime import GPU_BASELINE_MEMORY, MIB

if TYPE_CHECKING:
    from exporter.simulate.fake_nvml import FakeNvml, Target

NVML_MEMORY_V2 = 0x02000028
NVML_TEMPERATURE_V1 = 0x100000C
ARCHITECTURE = {"ampere": 7, "hopper": 9, "blackwell": 10}  # NVML_DEVICE_ARCH_*
BRAND_NVIDIA = 14
COMPUTEMODE_DEFAULT = 0
COMPUTEMODE_EXCLUSIVE_PROCESS = 3
MIG_GI_BASELINE = 12 * MIB  # what an idle GPU instance shows as used
SUBSYSTEM_IDS = {"A30-24GB": 0x153210DE, "A100-40GB": 0x134F10DE, "A100-80GB": 0x147F10DE,
                 "H100-80GB": 0x16C110DE, "H200-141GB": 0x18A110DE}  # fmt: skip


def _whole_gpu(t: Target) -> None:
    if t.is_mig_device:
        raise Fail(ERROR_NOT_SUPPORTED)


def gpu_activity(t: Target) -> float:
    """The share of the GPU's SMs busy now (all its devices together)."""
    devices = t.tick.devices
    busy = sum(float(t.tick.device_ratio[i]) * devices[i].sm_count for i in t.gpu_devices())
    return min(1.0, busy / t.gpu.model.sm_count)


def _gpu_memory_used(t: Target) -> int:
    indices = t.gpu_devices()
    used = sum(int(t.tick.device_memory[i]) for i in indices)
    if t.gpu.mig_enabled:
        return used + MIG_GI_BASELINE * len(t.gpu.instances)
    return used + GPU_BASELINE_MEMORY


def _mig_memory(t: Target) -> tuple[int, int]:
    """A MIG device's memory is its GPU instance's: total of the GI, used by every process in the GI."""
    dev = t.dev()
    assert dev.gi is not None
    gi_devices = [i for i in t.gpu_devices() if t.tick.devices[i].gi is dev.gi]
    used = sum(int(t.tick.device_memory[i]) for i in gi_devices) + MIG_GI_BASELINE
    return dev.gi.profile.memory_bytes, used


def _memory(t: Target) -> tuple[int, int, int]:
    """(total, reserved, used) in bytes for the v2 struct; v1 folds reserved into used."""
    if t.is_mig_device:
        total, used = _mig_memory(t)
        return total, 0, used
    total = t.gpu.model.memory_total_bytes
    reserved = int(total * RESERVED_SHARE) // MIB * MIB
    return total, reserved, _gpu_memory_used(t)


@symbol("nvmlDeviceGetName")
def _name(lib: FakeNvml, handle: Any, buffer: Any, length: Any) -> int:
    t = lib.device(handle)
    store_text(buffer, length, t.dev().device_name if t.is_mig_device else t.gpu.model.name)
    return SUCCESS


@symbol("nvmlDeviceGetUUID")
def _uuid(lib: FakeNvml, handle: Any, buffer: Any, length: Any) -> int:
    t = lib.device(handle)
    store_text(buffer, length, t.dev().uuid if t.is_mig_device else t.gpu.uuid)
    return SUCCESS


@symbol("nvmlDeviceGetSerial")
def _serial(lib: FakeNvml, handle: Any, buffer: Any, length: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    store_text(buffer, length, t.gpu.serial)
    return SUCCESS


@symbol("nvmlDeviceGetIndex", "nvmlDeviceGetMinorNumber")
def _index(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    store(out, t.gpu.index)
    return SUCCESS


@symbol("nvmlDeviceGetPciInfo", "nvmlDeviceGetPciInfo_v2", "nvmlDeviceGetPciInfo_v3")
def _pci(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    info = target(out)
    bus_id = pci_bus_id(t.gpu.index)
    bus = int(bus_id.split(":")[1], 16)
    info.busIdLegacy = bus_id[4:].encode()
    info.busId = bus_id.encode()
    info.domain = 0
    info.bus = bus
    info.device = 0
    info.pciDeviceId = int(t.gpu.model.pci_device_id, 16)
    info.pciSubSystemId = SUBSYSTEM_IDS.get(t.gpu.model.key, 0)
    return SUCCESS


@symbol("nvmlDeviceGetBrand")
def _brand(lib: FakeNvml, handle: Any, out: Any) -> int:
    lib.device(handle)
    store(out, BRAND_NVIDIA)
    return SUCCESS


@symbol("nvmlDeviceGetArchitecture")
def _architecture(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    store(out, ARCHITECTURE[t.gpu.model.architecture])
    return SUCCESS


@symbol("nvmlDeviceGetCudaComputeCapability")
def _compute_capability(lib: FakeNvml, handle: Any, major: Any, minor: Any) -> int:
    t = lib.device(handle)
    cc = board(t.gpu.model).compute_capability
    store(major, cc[0])
    store(minor, cc[1])
    return SUCCESS


@symbol("nvmlDeviceGetNumGpuCores")
def _cores(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    sms = t.dev().sm_count if t.is_mig_device else t.gpu.model.sm_count
    store(out, sms * board(t.gpu.model).cores_per_sm)
    return SUCCESS


@symbol("nvmlDeviceGetMemoryInfo")
def _memory_v1(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    lib.check_privilege("nvmlDeviceGetMemoryInfo", t)
    total, reserved, used = _memory(t)
    used = min(total, used + reserved)
    put(target(out), total=total, used=used, free=total - used)
    return SUCCESS


@symbol("nvmlDeviceGetMemoryInfo_v2")
def _memory_v2(lib: FakeNvml, handle: Any, out: Any) -> int:
    mem = target(out)
    check_version(mem, NVML_MEMORY_V2)
    t = lib.device(handle)
    lib.check_privilege("nvmlDeviceGetMemoryInfo_v2", t)
    total, reserved, used = _memory(t)
    used = min(used, total - reserved)
    put(mem, total=total, reserved=reserved, used=used, free=total - reserved - used)
    return SUCCESS


@symbol("nvmlDeviceGetBAR1MemoryInfo")
def _bar1(lib: FakeNvml, handle: Any, out: Any) -> int:
    """BAR1 (the host-visible aperture): the whole GPU's, or a MIG device's share of it by memory slices."""
    t = lib.device(handle)
    total = 64 * 1024 * MIB if t.gpu.model.architecture == "ampere" else 128 * 1024 * MIB
    if t.is_mig_device:
        gi = t.dev().gi
        assert gi is not None
        total = total * gi.profile.memory_slices // t.gpu.model.memory_slices
    bar = target(out)
    bar.bar1Total = total
    bar.bar1Used = 2 * MIB if t.is_mig_device else 5 * MIB
    bar.bar1Free = total - bar.bar1Used
    return SUCCESS


@symbol("nvmlDeviceGetDriverModel", "nvmlDeviceGetDriverModel_v2")
def _driver_model(lib: FakeNvml, handle: Any, *out: Any) -> int:
    """Windows driver models (WDDM/TCC) do not exist on Linux."""
    lib.device(handle)
    raise Fail(ERROR_NOT_SUPPORTED)


@symbol("nvmlDeviceGetUtilizationRates")
def _utilization(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    if t.is_mig_device or t.mig_parent:
        raise Fail(ERROR_NOT_SUPPORTED)
    assert t.device is not None
    util = target(out)
    ratio = float(t.tick.device_ratio[t.device])
    # "GPU utilization" is the share of time any kernel ran, which exceeds the share of SMs kept busy
    util.gpu = round(100 * min(1.0, ratio * 1.5)) if t.tick.processes[t.device] else 0
    util.memory = round(100 * float(t.tick.device_dram[t.device]))
    return SUCCESS


@symbol("nvmlDeviceGetEncoderUtilization", "nvmlDeviceGetDecoderUtilization", "nvmlDeviceGetJpgUtilization",
        "nvmlDeviceGetOfaUtilization")  # fmt: skip
def _codec_utilization(lib: FakeNvml, handle: Any, out: Any, period: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    store(out, 0)
    store(period, 167_000)
    return SUCCESS


@symbol("nvmlDeviceGetComputeMode")
def _compute_mode(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    store(out, COMPUTEMODE_EXCLUSIVE_PROCESS if (t.gpu.mps and not t.gpu.mig_enabled) else COMPUTEMODE_DEFAULT)
    return SUCCESS


@symbol("nvmlDeviceGetPersistenceMode", "nvmlDeviceGetEccMode")
def _enabled_pair_or_one(lib: FakeNvml, handle: Any, out: Any, pending: Any = None) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    store(out, 1)
    if pending is not None:
        store(pending, 1)
    return SUCCESS


@symbol("nvmlDeviceGetDisplayMode", "nvmlDeviceGetDisplayActive")
def _display(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    store(out, 0)
    return SUCCESS


@symbol("nvmlDeviceGetTotalEccErrors")
def _ecc_errors(lib: FakeNvml, handle: Any, error_type: Any, counter: Any, out: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    store(out, 0)
    return SUCCESS


def _temperature(t: Target) -> int:
    return round(31 + 42 * gpu_activity(t) + t.gpu.index % 3)


@symbol("nvmlDeviceGetTemperature")
def _get_temperature(lib: FakeNvml, handle: Any, sensor: Any, out: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    if value(sensor) != 0:  # NVML_TEMPERATURE_GPU is the only sensor
        raise Fail(ERROR_INVALID_ARGUMENT)
    store(out, _temperature(t))
    return SUCCESS


@symbol("nvmlDeviceGetTemperatureV")
def _get_temperature_v(lib: FakeNvml, handle: Any, out: Any) -> int:
    info = target(out)
    if int(info.version) != NVML_TEMPERATURE_V1:
        raise Fail(ERROR_ARGUMENT_VERSION_MISMATCH)
    t = lib.device(handle)
    _whole_gpu(t)
    info.temperature = _temperature(t)
    return SUCCESS


@symbol("nvmlDeviceGetTemperatureThreshold")
def _temperature_threshold(lib: FakeNvml, handle: Any, which: Any, out: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    b = board(t.gpu.model)
    thresholds = {0: b.shutdown_temp_c, 1: b.slowdown_temp_c, 2: b.slowdown_temp_c + 5, 3: b.slowdown_temp_c - 2}
    found = thresholds.get(value(which))
    if found is None:
        raise Fail(ERROR_NOT_SUPPORTED)
    store(out, found)
    return SUCCESS


@symbol("nvmlDeviceGetNumFans")
def _fans(lib: FakeNvml, handle: Any, out: Any) -> int:
    lib.device(handle)
    store(out, 0)
    return SUCCESS


@symbol("nvmlDeviceGetFanSpeed", "nvmlDeviceGetFanSpeed_v2")
def _fan_speed(lib: FakeNvml, handle: Any, *rest: Any) -> int:
    lib.device(handle)
    raise Fail(ERROR_NOT_SUPPORTED)


def _power_mw(t: Target) -> int:
    b = board(t.gpu.model)
    activity = gpu_activity(t)
    busy = any(t.tick.processes[i] for i in t.gpu_devices())
    watts = b.idle_power_w + (b.power_limit_w - b.idle_power_w) * ((0.12 + 0.8 * activity) if busy else 0.0)
    return round(watts * 1000)


@symbol("nvmlDeviceGetPowerUsage")
def _power(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    store(out, _power_mw(t))
    return SUCCESS


@symbol("nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetPowerManagementLimit",
        "nvmlDeviceGetPowerManagementDefaultLimit")  # fmt: skip
def _power_limit(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    store(out, board(t.gpu.model).power_limit_w * 1000)
    return SUCCESS


@symbol("nvmlDeviceGetPowerManagementLimitConstraints")
def _power_constraints(lib: FakeNvml, handle: Any, low: Any, high: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    limit = board(t.gpu.model).power_limit_w * 1000
    store(low, limit // 4)
    store(high, limit)
    return SUCCESS


@symbol("nvmlDeviceGetTotalEnergyConsumption")
def _energy(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    b = board(t.gpu.model)
    counters = lib.runtime.counters()
    busy_seconds = sum(float(counters.sm[i]) * t.tick.devices[i].capacity for i in t.gpu_devices())
    uptime = t.tick.time - 1_700_000_000
    store(out, round((b.idle_power_w * uptime + (b.power_limit_w - b.idle_power_w) * busy_seconds) * 1000))
    return SUCCESS


@symbol("nvmlDeviceGetPerformanceState", "nvmlDeviceGetPowerState")
def _pstate(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    store(out, 0)
    return SUCCESS


def _clock(t: Target, kind: int, maximum: bool) -> int:
    b = board(t.gpu.model)
    busy = maximum or any(t.tick.processes[i] for i in t.gpu_devices())
    if kind in (0, 1):  # graphics, SM
        return b.max_sm_clock_mhz if busy else b.idle_sm_clock_mhz
    if kind == 2:  # memory
        return b.max_memory_clock_mhz
    if kind == 3:  # video
        return round(b.max_sm_clock_mhz * 0.88) if busy else b.idle_sm_clock_mhz
    raise Fail(ERROR_INVALID_ARGUMENT)


@symbol("nvmlDeviceGetClockInfo")
def _clock_info(lib: FakeNvml, handle: Any, kind: Any, out: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    store(out, _clock(t, value(kind), maximum=False))
    return SUCCESS


@symbol("nvmlDeviceGetMaxClockInfo", "nvmlDeviceGetMaxCustomerBoostClock")
def _max_clock(lib: FakeNvml, handle: Any, kind: Any, out: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    store(out, _clock(t, value(kind), maximum=True))
    return SUCCESS


@symbol("nvmlDeviceGetClock")
def _clock_by_id(lib: FakeNvml, handle: Any, kind: Any, clock_id: Any, out: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    store(out, _clock(t, value(kind), maximum=value(clock_id) != 0))
    return SUCCESS


@symbol("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons")
def _clock_reasons(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    idle = not any(t.tick.processes[i] for i in t.gpu_devices())
    store(out, 0x1 if idle else 0x0)  # nvmlClocksEventReasonGpuIdle
    return SUCCESS


@symbol("nvmlDeviceGetCurrPcieLinkGeneration", "nvmlDeviceGetMaxPcieLinkGeneration",
        "nvmlDeviceGetGpuMaxPcieLinkGeneration")  # fmt: skip
def _pcie_generation(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    store(out, board(t.gpu.model).pcie_generation)
    return SUCCESS


@symbol("nvmlDeviceGetCurrPcieLinkWidth", "nvmlDeviceGetMaxPcieLinkWidth")
def _pcie_width(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    store(out, board(t.gpu.model).pcie_width)
    return SUCCESS


@symbol("nvmlDeviceGetPcieThroughput")
def _pcie_throughput(lib: FakeNvml, handle: Any, counter: Any, out: Any) -> int:
    t = lib.device(handle)
    _whole_gpu(t)
    activity = gpu_activity(t)
    store(out, round(activity * (900_000 if value(counter) == 1 else 350_000)))  # KB/s: RX (1) > TX (0)
    return SUCCESS


@symbol("nvmlDeviceGetMemoryBusWidth")
def _bus_width(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    store(out, board(t.gpu.model).memory_bus_width)
    return SUCCESS


@symbol("nvmlDeviceGetFieldValues")
def _field_values(lib: FakeNvml, handle: Any, count: Any, values: Any) -> int:
    """No NVLink or other field counters are simulated: each field answers NOT_SUPPORTED in its own slot."""
    lib.device(handle)
    array = target(values)
    for i in range(value(count)):
        array[i].nvmlReturn = ERROR_NOT_SUPPORTED
    return SUCCESS


@symbol("nvmlDeviceGetVirtualizationMode")
def _virtualization(lib: FakeNvml, handle: Any, out: Any) -> int:
    lib.device(handle)
    store(out, 0)  # bare metal
    return SUCCESS


# --- MIG device identity ------------------------------------------------------------------------------------------


@symbol("nvmlDeviceGetMigMode")
def _mig_mode(lib: FakeNvml, handle: Any, current: Any, pending: Any) -> int:
    t = lib.device(handle)
    if t.is_mig_device or not t.gpu.model.profiles:
        raise Fail(ERROR_NOT_SUPPORTED)
    mode = 1 if t.gpu.mig_enabled else 0
    store(current, mode)
    store(pending, mode)
    return SUCCESS


@symbol("nvmlDeviceGetMaxMigDeviceCount")
def _max_mig(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    if t.is_mig_device or not t.gpu.model.profiles:
        raise Fail(ERROR_NOT_SUPPORTED)
    store(out, t.gpu.model.compute_slices)
    return SUCCESS


@symbol("nvmlDeviceGetMigDeviceHandleByIndex")
def _mig_by_index(lib: FakeNvml, handle: Any, index: Any, out: Any) -> int:
    t = lib.device(handle)
    if t.is_mig_device:
        raise Fail(ERROR_INVALID_ARGUMENT)
    if not t.gpu.mig_enabled:
        raise Fail(ERROR_NOT_SUPPORTED if not t.gpu.model.profiles else ERROR_INVALID_ARGUMENT)
    devices = [t.tick.devices[i] for i in t.gpu_devices()]
    i = value(index)
    if i >= t.gpu.model.compute_slices:
        raise Fail(ERROR_INVALID_ARGUMENT)
    if i >= len(devices):
        raise Fail(ERROR_NOT_FOUND)
    store_pointer(out, lib.mig_handle(t.gpu, devices[i].key).address)
    return SUCCESS


@symbol("nvmlDeviceIsMigDeviceHandle")
def _is_mig(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    store(out, 1 if t.is_mig_device else 0)
    return SUCCESS


@symbol("nvmlDeviceGetGpuInstanceId")
def _gi_id(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    if not t.is_mig_device:
        raise Fail(ERROR_NOT_SUPPORTED)
    gi = t.dev().gi
    assert gi is not None
    store(out, gi.id)
    return SUCCESS


@symbol("nvmlDeviceGetComputeInstanceId")
def _ci_id(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    if not t.is_mig_device:
        raise Fail(ERROR_NOT_SUPPORTED)
    ci = t.dev().ci
    assert ci is not None
    store(out, ci.id)
    return SUCCESS


@symbol("nvmlDeviceGetDeviceHandleFromMigDeviceHandle")
def _parent(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    if not t.is_mig_device:
        raise Fail(ERROR_INVALID_ARGUMENT)
    store_pointer(out, lib.gpu_handle(t.gpu).address)
    return SUCCESS


@symbol("nvmlDeviceGetAttributes", "nvmlDeviceGetAttributes_v2")
def _attributes(lib: FakeNvml, handle: Any, out: Any) -> int:
    """Supported on MIG device handles only, as NVML documents."""
    t = lib.device(handle)
    if not t.is_mig_device:
        raise Fail(ERROR_NOT_SUPPORTED)
    dev = t.dev()
    assert dev.gi is not None and dev.ci is not None
    prof = dev.gi.profile
    put(
        target(out),
        multiprocessorCount=dev.sm_count,
        sharedCopyEngineCount=prof.copy_engines,
        sharedDecoderCount=prof.decoders,
        sharedEncoderCount=0,
        sharedJpegCount=prof.jpeg,
        sharedOfaCount=prof.ofa,
        gpuInstanceSliceCount=prof.compute_slices,
        computeInstanceSliceCount=dev.ci.slices,
        memorySizeMB=prof.memory_mib,
    )
    return SUCCESS
