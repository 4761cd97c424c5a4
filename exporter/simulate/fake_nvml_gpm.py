"""Simulated NVML: GPU Performance Monitoring (Hopper and newer), per GPU and per MIG GPU instance.

A GPM sample holds the device's cumulative counters (SM-active, occupancy, DRAM-active and graphics-active
seconds) at a second; ``nvmlGpmMetricsGet`` turns two samples of the same GPU or GPU instance into percentages
over the time between them. ``nvmlGpmSampleGet`` on a MIG device handle samples that one compute instance, on the
driver profiles that accept it (``DriverProfile.gpm_on_mig_handles``). Ampere answers ``isSupportedDevice = 0``
and NVML_ERROR_NOT_SUPPORTED for samples. Metrics beyond graphics, SM activity, SM occupancy, tensor activity and
DRAM bandwidth answer NOT_SUPPORTED in their own slot, as a driver does for metrics a GPU lacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from exporter.simulate.fake_nvml_core import (
    ERROR_INVALID_ARGUMENT,
    ERROR_NOT_FOUND,
    ERROR_NOT_SUPPORTED,
    SUCCESS,
    Fail,
    check_version,
    put,
    store,
    store_pointer,
    symbol,
    target,
    value,
)

if TYPE_CHECKING:
    from exporter.simulate.fake_nvml import FakeNvml, GpmSampleHandle, Target

GPM_SUPPORT_VERSION = 1
GPM_METRICS_GET_VERSION = 1
GPM_METRIC_MAX = 477
TENSOR_SHARE = 0.55  # share of SM-active time spent in tensor cores, for ANY_TENSOR_UTIL

# metric id -> (which counter, scale, short name, long name)
_METRICS: dict[int, tuple[int, float, bytes, bytes]] = {
    1: (3, 1.0, b"GR_UTIL", b"graphics utilization"),
    2: (0, 1.0, b"SM_UTIL", b"SM utilization"),
    3: (1, 1.0, b"SM_OCCUP", b"SM occupancy"),
    5: (0, TENSOR_SHARE, b"ANY_TENSOR_UTIL", b"any tensor utilization"),
    10: (2, 1.0, b"DRAM_BW_UTIL", b"DRAM bandwidth utilization"),
}
_PERCENT = b"%"


def _hopper(t: Target) -> bool:
    return t.gpu.model.has_gpm


@symbol("nvmlGpmQueryDeviceSupport")
def _support(lib: FakeNvml, handle: Any, out: Any) -> int:
    support = target(out)
    check_version(support, GPM_SUPPORT_VERSION)
    t = lib.device(handle)
    support.isSupportedDevice = 1 if _hopper(t) else 0
    return SUCCESS


@symbol("nvmlGpmQueryIfStreamingEnabled")
def _streaming(lib: FakeNvml, handle: Any, out: Any) -> int:
    t = lib.device(handle)
    if not _hopper(t):
        raise Fail(ERROR_NOT_SUPPORTED)
    store(out, 0)
    return SUCCESS


@symbol("nvmlGpmSampleAlloc")
def _alloc(lib: FakeNvml, out: Any) -> int:
    store_pointer(out, lib.new_sample().address)
    return SUCCESS


@symbol("nvmlGpmSampleFree")
def _free(lib: FakeNvml, sample: Any) -> int:
    lib.free(sample)
    return SUCCESS


def _sample(lib: FakeNvml, sample: Any) -> GpmSampleHandle:
    from exporter.simulate.fake_nvml import GpmSampleHandle

    found = lib.lookup(sample)
    if not isinstance(found, GpmSampleHandle):
        raise Fail(ERROR_INVALID_ARGUMENT)
    return found


def _take(lib: FakeNvml, t: Target, sample: GpmSampleHandle, devices: list[int], sm_total: int, scope: tuple) -> None:
    counters = lib.runtime.counters()
    parts = []
    for array in (counters.sm, counters.occupancy, counters.dram, counters.graphics):
        parts.append(sum(float(array[d]) * t.tick.devices[d].sm_count for d in devices) / sm_total)
    sample.scope = scope
    sample.time = t.tick.time
    sample.counters = (parts[0], parts[1], parts[2], parts[3])


@symbol("nvmlGpmSampleGet")
def _sample_get(lib: FakeNvml, handle: Any, sample: Any) -> int:
    t = lib.device(handle)
    target_sample = _sample(lib, sample)
    if not _hopper(t):
        raise Fail(ERROR_NOT_SUPPORTED)
    if t.is_mig_device:  # one compute instance: its own SMs, on the drivers that accept a MIG device handle
        if not lib.node.driver.gpm_on_mig_handles:
            raise Fail(ERROR_NOT_SUPPORTED)
        dev, index = t.dev(), t.device
        assert index is not None
        _take(lib, t, target_sample, [index], dev.sm_count, ("mig", t.gpu.index, dev.key, t.gpu.generation))
        return SUCCESS
    _take(lib, t, target_sample, t.gpu_devices(), t.gpu.model.sm_count, ("gpu", t.gpu.index, t.gpu.generation))
    return SUCCESS


@symbol("nvmlGpmMigSampleGet")
def _mig_sample_get(lib: FakeNvml, handle: Any, gi_id: Any, sample: Any) -> int:
    t = lib.device(handle)
    target_sample = _sample(lib, sample)
    if not _hopper(t):
        raise Fail(ERROR_NOT_SUPPORTED)
    if t.is_mig_device or not t.gpu.mig_enabled:
        raise Fail(ERROR_INVALID_ARGUMENT)
    gi = t.gpu.instance_by_id(value(gi_id))
    if gi is None:
        raise Fail(ERROR_NOT_FOUND)
    devices = [d for d in t.gpu_devices() if t.tick.devices[d].gi is gi]
    _take(lib, t, target_sample, devices, gi.profile.sm_count, ("gi", t.gpu.index, gi.id, t.gpu.generation))
    return SUCCESS


@symbol("nvmlGpmMetricsGet")
def _metrics_get(lib: FakeNvml, out: Any) -> int:
    request = target(out)
    check_version(request, GPM_METRICS_GET_VERSION)
    first = _sample(lib, request.sample1)
    second = _sample(lib, request.sample2)
    if first.scope is None or first.scope != second.scope:
        raise Fail(ERROR_INVALID_ARGUMENT)
    elapsed = second.time - first.time
    count = int(request.numMetrics)
    if elapsed <= 0 or count > GPM_METRIC_MAX:
        raise Fail(ERROR_INVALID_ARGUMENT)
    metrics = request.metrics
    for i in range(count):
        metric = metrics[i]
        known = _METRICS.get(int(metric.metricId))
        if known is None:
            put(metric, nvmlReturn=ERROR_NOT_SUPPORTED, value=0.0)
            continue
        which, scale, short, long = known
        percent = 100.0 * scale * (second.counters[which] - first.counters[which]) / elapsed
        put(metric, nvmlReturn=SUCCESS, value=min(100.0, max(0.0, percent)))
        put(metric.metricInfo, shortName=short, longName=long, unit=_PERCENT)
    return SUCCESS
