"""pynvml's public functions, run through pynvml's own wrappers, return what the simulated node holds."""

from __future__ import annotations

import ctypes

import numpy as np
import pynvml
import pytest

from exporter.simulate import Attachment
from exporter.simulate.activity import MemberTable
from tests.exporter.simulate.conftest import clock_of


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def test_calls_before_init_fail_as_uninitialized(attach_scenario) -> None:
    attach_scenario("exclusive", init=False)
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        pynvml.nvmlDeviceGetCount()
    pynvml.nvmlInit()
    pynvml.nvmlInit()
    pynvml.nvmlShutdown()
    assert pynvml.nvmlDeviceGetCount() == 1  # still initialised: init is reference counted
    pynvml.nvmlShutdown()
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        pynvml.nvmlShutdown()


def test_system_and_identity(attach_scenario) -> None:
    a: Attachment = attach_scenario("mixed", node="sim-a30-0")
    assert _text(pynvml.nvmlSystemGetDriverVersion()) == "550.127.08"
    assert _text(pynvml.nvmlSystemGetNVMLVersion()).startswith("12.550")
    assert pynvml.nvmlSystemGetCudaDriverVersion() == 12040
    assert pynvml.nvmlDeviceGetCount() == 8
    gpu = a.node.gpus[3]
    handle = pynvml.nvmlDeviceGetHandleByIndex(3)
    assert _text(pynvml.nvmlDeviceGetName(handle)) == "NVIDIA A30"
    assert _text(pynvml.nvmlDeviceGetUUID(handle)) == gpu.uuid
    assert gpu.uuid.startswith("GPU-") and len(gpu.uuid) == 40
    assert pynvml.nvmlDeviceGetIndex(pynvml.nvmlDeviceGetHandleByUUID(gpu.uuid)) == 3
    assert pynvml.nvmlDeviceGetIndex(pynvml.nvmlDeviceGetHandleBySerial(gpu.serial)) == 3
    pci = pynvml.nvmlDeviceGetPciInfo(handle)
    assert pynvml.nvmlDeviceGetIndex(pynvml.nvmlDeviceGetHandleByPciBusId(pci.busId)) == 3
    assert pci.pciDeviceId == 0x20B710DE
    assert pynvml.nvmlDeviceGetCudaComputeCapability(handle) == (8, 0)
    assert pynvml.nvmlDeviceGetNumGpuCores(handle) == 56 * 64
    assert pynvml.nvmlDeviceGetArchitecture(handle) == pynvml.NVML_DEVICE_ARCH_AMPERE
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlDeviceGetHandleByIndex(8)
    with pytest.raises(pynvml.NVMLError_NotFound):
        pynvml.nvmlDeviceGetHandleByUUID("GPU-00000000-0000-0000-0000-000000000000")


def test_memory_v1_and_v2(attach_scenario) -> None:
    a = attach_scenario("timeslice")
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    v2 = pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
    v1 = pynvml.nvmlDeviceGetMemoryInfo(handle)
    tick = a.node.runtime.state()
    in_processes = sum(p.memory for p in tick.processes[0])
    assert v2.total == v1.total == 81920 * 2**20
    assert v2.reserved > 0 and v2.used >= in_processes > 0
    assert v2.free == v2.total - v2.reserved - v2.used
    assert v1.used == v2.used + v2.reserved  # v1 counts driver-reserved memory as used
    with pytest.raises(pynvml.NVMLError_ArgumentVersionMismatch):
        pynvml.nvmlDeviceGetMemoryInfo(handle, version=0x01000028)


def test_utilization_rates_follow_the_processes(attach_scenario) -> None:
    a = attach_scenario("mps")
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
    ratio = float(a.node.runtime.state().device_ratio[0])
    assert rates.gpu == round(100 * min(1.0, ratio * 1.5)) and 0 < rates.gpu <= 100
    assert pynvml.nvmlDeviceGetComputeMode(handle) == pynvml.NVML_COMPUTEMODE_EXCLUSIVE_PROCESS


def test_mig_devices_and_their_identity(attach_scenario) -> None:
    a = attach_scenario("h100-mig")
    parent = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert pynvml.nvmlDeviceGetMigMode(parent) == [pynvml.NVML_DEVICE_MIG_ENABLE, pynvml.NVML_DEVICE_MIG_ENABLE]
    assert pynvml.nvmlDeviceGetMaxMigDeviceCount(parent) == 7
    with pytest.raises(pynvml.NVMLError_NotSupported):
        pynvml.nvmlDeviceGetUtilizationRates(parent)  # not in MIG mode
    expected = {d.uuid: d for d in a.node.gpus[0].devices()}
    seen = {}
    for i in range(4):
        mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, i)
        assert pynvml.nvmlDeviceIsMigDeviceHandle(mig)
        uuid = _text(pynvml.nvmlDeviceGetUUID(mig))
        device = expected[uuid]
        assert uuid.startswith("MIG-")
        assert _text(pynvml.nvmlDeviceGetName(mig)) == f"NVIDIA H100 80GB HBM3 MIG {device.profile_name}"
        assert pynvml.nvmlDeviceGetGpuInstanceId(mig) == device.gi.id
        assert pynvml.nvmlDeviceGetComputeInstanceId(mig) == 0
        attrs = pynvml.nvmlDeviceGetAttributes(mig)
        assert attrs.multiprocessorCount == device.sm_count
        assert attrs.memorySizeMB == device.gi.profile.memory_mib
        assert attrs.gpuInstanceSliceCount == device.gi.profile.compute_slices
        memory = pynvml.nvmlDeviceGetMemoryInfo(mig, version=pynvml.nvmlMemory_v2)
        assert memory.total == device.gi.profile.memory_bytes
        back = pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig)
        assert _text(pynvml.nvmlDeviceGetUUID(back)) == a.node.gpus[0].uuid
        with pytest.raises(pynvml.NVMLError_NotSupported):
            pynvml.nvmlDeviceGetProcessUtilization(mig, 0)
        seen[uuid] = device.profile_name
    assert sorted(seen.values()) == ["1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb"]
    with pytest.raises(pynvml.NVMLError_NotFound):
        pynvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, 4)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        pynvml.nvmlDeviceGetAttributes(parent)  # MIG device handles only, as NVML documents


def test_gpu_instance_profiles_placements_and_instances(attach_scenario) -> None:
    a = attach_scenario("a100-mig")
    model = a.node.gpus[0].model
    parent = pynvml.nvmlDeviceGetHandleByIndex(0)
    for prof in model.profiles:
        v2 = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(parent, prof.nvml_enum)  # ...InfoV, v2 struct
        v1 = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(parent, prof.nvml_enum, version=1)
        by_id = pynvml.nvmlDeviceGetGpuInstanceProfileInfoById(parent, prof.smi_id)
        assert _text(v2.name) == _text(by_id.name) == f"MIG {prof.name}"
        for info in (v1, v2, by_id):
            assert (info.id, info.sliceCount, info.instanceCount) == (prof.smi_id, prof.compute_slices, prof.max_count)
            assert (info.multiprocessorCount, info.memorySizeMB) == (prof.sm_count, prof.memory_mib)
        count = ctypes.c_uint(0)
        pynvml.nvmlDeviceGetGpuInstancePossiblePlacements(parent, prof.nvml_enum, None, ctypes.byref(count))
        placements = (pynvml.c_nvmlGpuInstancePlacement_t * count.value)()
        pynvml.nvmlDeviceGetGpuInstancePossiblePlacements(parent, prof.nvml_enum, placements, ctypes.byref(count))
        assert [(p.start, p.size) for p in placements] == [(s, prof.size) for s in prof.starts]
    with pytest.raises(pynvml.NVMLError_NotSupported):
        pynvml.nvmlDeviceGetGpuInstanceProfileInfo(parent, pynvml.NVML_GPU_INSTANCE_PROFILE_8_SLICE)

    # the instances that exist, with their placements
    profile = model.profile("3g.40gb")
    instances = (pynvml.c_nvmlGpuInstance_t * profile.max_count)()
    count = ctypes.c_uint(0)
    pynvml.nvmlDeviceGetGpuInstances(parent, profile.nvml_enum, instances, ctypes.byref(count))
    assert count.value == 1
    info = pynvml.nvmlGpuInstanceGetInfo(instances[0])
    gi = next(g for g in a.node.gpus[0].instances if g.profile == profile)
    assert (info.id, info.profileId, info.placement.start, info.placement.size) == (
        gi.id,
        profile.smi_id,
        gi.placement.start,
        profile.size,
    )
    assert pynvml.nvmlDeviceGetIndex(info.device) == 0
    same = pynvml.nvmlDeviceGetGpuInstanceById(parent, gi.id)
    assert pynvml.nvmlGpuInstanceGetInfo(same).placement.start == gi.placement.start

    # that GI is split into three 1-slice compute instances: three MIG devices of 14 SMs each
    ci_info = pynvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(
        same, pynvml.NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE, pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
    )
    assert (_text(ci_info.name), ci_info.multiprocessorCount, ci_info.instanceCount) == ("MIG 1c.3g.40gb", 14, 3)
    cis = (pynvml.c_nvmlComputeInstance_t * 3)()
    pynvml.nvmlGpuInstanceGetComputeInstances(
        same, pynvml.NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE, cis, ctypes.byref(count)
    )
    assert count.value == 3
    assert [pynvml.nvmlComputeInstanceGetInfo(cis[i]).placement.start for i in range(3)] == [0, 1, 2]
    split = [d for d in a.node.gpus[0].devices() if d.gi is gi]
    names = {_text(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByUUID(d.uuid))) for d in split}
    assert names == {"NVIDIA A100-SXM4-80GB MIG 1c.3g.40gb"}


def test_process_lists_use_pynvmls_size_then_fill(attach_scenario) -> None:
    a = attach_scenario("bench-8xh100")
    tick = a.node.runtime.state()
    parent = pynvml.nvmlDeviceGetHandleByIndex(2)
    everything = pynvml.nvmlDeviceGetComputeRunningProcesses(parent)  # all MIG processes, no per-process memory
    assert len(everything) == 56
    assert all(p.usedGpuMemory is None and p.gpuInstanceId != 0xFFFFFFFF for p in everything)
    for i in range(7):
        mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, i)
        index = a.node.runtime.device_index(a.node.gpus[2].devices()[i].key)
        expected = {p.pid: p.memory for p in tick.processes[index]}
        for getter in (pynvml.nvmlDeviceGetComputeRunningProcesses, pynvml.nvmlDeviceGetComputeRunningProcesses_v2):
            listed = getter(mig)
            assert {p.pid: p.usedGpuMemory for p in listed} == expected
            assert len(listed) == 8
        assert pynvml.nvmlDeviceGetGraphicsRunningProcesses(mig) == []
        assert pynvml.nvmlDeviceGetMPSComputeRunningProcesses(mig) == []
    # the pynvml wrapper asked twice: once for the size, once with an array it oversized
    fn = a.library.nvmlDeviceGetComputeRunningProcesses_v3
    count = ctypes.c_uint(0)
    assert fn(parent, ctypes.byref(count), None) == pynvml.NVML_ERROR_INSUFFICIENT_SIZE and count.value == 56
    small = (pynvml.c_nvmlProcessInfo_v3_t * 10)()
    count.value = 10
    assert fn(parent, ctypes.byref(count), small) == pynvml.NVML_ERROR_INSUFFICIENT_SIZE and count.value == 56


def test_mps_server_and_clients(attach_scenario) -> None:
    a = attach_scenario("mps")
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    tick = a.node.runtime.state()
    compute = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    clients = pynvml.nvmlDeviceGetMPSComputeRunningProcesses(handle)
    assert [p.pid for p in compute] == [tick.mps_servers[0].pid]
    assert _text(pynvml.nvmlSystemGetProcessName(compute[0].pid)) == "nvidia-cuda-mps-server"
    assert {p.pid for p in clients} == {p.pid for p in tick.processes[0]} and len(clients) == 3
    assert a.node.proc_source.comm(compute[0].pid) == "nvidia-cuda-mps"


def test_mps_inside_a_mig_instance(attach_scenario) -> None:
    a = attach_scenario("h100-mig")
    device = next(d for d in a.node.gpus[0].devices() if d.mps)
    mig = pynvml.nvmlDeviceGetHandleByUUID(device.uuid)
    compute = pynvml.nvmlDeviceGetComputeRunningProcesses(mig)
    clients = pynvml.nvmlDeviceGetMPSComputeRunningProcesses(mig)
    assert len(compute) == 1 and _text(pynvml.nvmlSystemGetProcessName(compute[0].pid)) == "nvidia-cuda-mps-server"
    assert len(clients) == 2 and all(p.gpuInstanceId == device.gi.id for p in clients)


def test_process_utilization_samples_per_pid(attach_scenario) -> None:
    a = attach_scenario("timeslice")
    clock = clock_of(a)
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    pynvml.nvmlDeviceGetProcessUtilization(handle, 0)
    clock.advance(5)
    start_us = int((clock.now() - 5) * 1e6)
    samples = pynvml.nvmlDeviceGetProcessUtilization(handle, start_us)
    pids = {p.pid for p in a.node.runtime.state().processes[0]}
    assert {s.pid for s in samples} == pids
    assert len(samples) == 5 * len(pids)  # one per process per second
    assert all(s.timeStamp > start_us and 0 <= s.smUtil <= 100 for s in samples)
    newest = max(s.timeStamp for s in samples)
    with pytest.raises(pynvml.NVMLError_NotFound):
        pynvml.nvmlDeviceGetProcessUtilization(handle, newest)  # nothing newer


def test_gpm_per_mig_instance_averages_activity_between_samples(attach_scenario) -> None:
    a = attach_scenario("h100-mig")
    clock = clock_of(a)
    parent = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert pynvml.nvmlGpmQueryDeviceSupport(parent).isSupportedDevice == 1
    gi = next(g for g in a.node.gpus[0].instances if g.profile.name == "2g.20gb")
    first, second = pynvml.nvmlGpmSampleAlloc(), pynvml.nvmlGpmSampleAlloc()
    pynvml.nvmlGpmMigSampleGet(parent, gi.id, first)
    start = clock.now()
    clock.advance(10)
    pynvml.nvmlGpmMigSampleGet(parent, gi.id, second)
    request = pynvml.c_nvmlGpmMetricsGet_t()
    request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
    ids = (
        pynvml.NVML_GPM_METRIC_SM_UTIL,
        pynvml.NVML_GPM_METRIC_SM_OCCUPANCY,
        pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL,
        pynvml.NVML_GPM_METRIC_FP64_UTIL,
    )
    request.numMetrics = len(ids)
    request.sample1, request.sample2 = first, second
    for i, metric in enumerate(ids):
        request.metrics[i].metricId = metric
    pynvml.nvmlGpmMetricsGet(request)
    # the same members evaluated independently at the ten seconds in between
    node = a.node
    devices = node.devices()
    index = {d.key: i for i, d in enumerate(devices)}
    table = MemberTable(
        [m.behaviour for m in node.members], [index[m.device_key] for m in node.members], [d.capacity for d in devices]
    )
    ev = table.evaluate(np.arange(start + 1, start + 11))
    device = next(i for i, d in enumerate(devices) if d.gi is gi)
    assert request.metrics[0].nvmlReturn == pynvml.NVML_SUCCESS
    assert request.metrics[0].value == pytest.approx(100 * ev.device_ratio[device].mean(), abs=1e-6)
    assert request.metrics[1].value == pytest.approx(100 * ev.occupancy[device].mean(), abs=1e-6)
    assert request.metrics[2].value == pytest.approx(100 * ev.dram[device].mean(), abs=1e-6)
    assert 0 < request.metrics[0].value <= 100
    assert request.metrics[3].nvmlReturn == pynvml.NVML_ERROR_NOT_SUPPORTED  # not simulated: absent, not zero
    pynvml.nvmlGpmSampleFree(first)
    pynvml.nvmlGpmSampleFree(second)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlGpmSampleFree(first)


def test_gpm_is_not_supported_on_ampere(attach_scenario) -> None:
    a = attach_scenario("a100-mig")
    parent = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert pynvml.nvmlGpmQueryDeviceSupport(parent).isSupportedDevice == 0
    sample = pynvml.nvmlGpmSampleAlloc()
    with pytest.raises(pynvml.NVMLError_NotSupported):
        pynvml.nvmlGpmMigSampleGet(parent, a.node.gpus[0].instances[0].id, sample)
    pynvml.nvmlGpmSampleFree(sample)


def test_unsimulated_functions_are_not_found(attach_scenario) -> None:
    attach_scenario("exclusive")
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_FunctionNotFound):
        pynvml.nvmlDeviceGetVgpuMetadata(handle)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        pynvml.nvmlDeviceGetFanSpeed(handle)  # simulated: the SXM board has no fan


def test_detach_restores_pynvml(attach_scenario) -> None:
    before = pynvml.nvmlLib
    a = attach_scenario("exclusive")
    assert pynvml.nvmlLib is a.library
    pynvml.nvmlDeviceGetCount()
    assert "nvmlDeviceGetCount_v2" in pynvml._nvmlGetFunctionPointer_cache
    pynvml.nvmlShutdown()
    a.detach()
    assert pynvml.nvmlLib is before
    assert "nvmlDeviceGetCount_v2" not in pynvml._nvmlGetFunctionPointer_cache


def test_concurrent_readers_see_consistent_lists(attach_scenario) -> None:
    """An exporter's HTTP threads and another pynvml user may call at once: every list stays whole."""
    import threading

    a = attach_scenario("bench-8xh100")
    clock = clock_of(a)
    problems: list[str] = []

    def walk() -> None:
        try:
            for _ in range(5):
                for index in range(8):
                    parent = pynvml.nvmlDeviceGetHandleByIndex(index)
                    for slot in range(7):
                        mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, slot)
                        if len(pynvml.nvmlDeviceGetComputeRunningProcesses(mig)) != 8:
                            problems.append("short list")
                clock.advance(1)
        except Exception as exc:  # reported below, with the thread that met it
            problems.append(repr(exc))

    threads = [threading.Thread(target=walk) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == []
