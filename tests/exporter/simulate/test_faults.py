"""Each fault surfaces through pynvml as the NVML error a driver gives, deterministically for a seed."""

from __future__ import annotations

import pynvml
import pytest

from exporter.simulate import FaultKind, ManualClock, build_scenario
from tests.exporter.simulate.conftest import AFTERNOON, clock_of


def test_gpu_lost_is_sticky_until_recovered(attach_scenario) -> None:
    a = attach_scenario("timeslice")
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    a.fleet.faults.set(FaultKind.GPU_LOST, 1.0)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        pynvml.nvmlDeviceGetName(handle)
    a.fleet.faults.set(FaultKind.GPU_LOST, 0.0)
    for call in (pynvml.nvmlDeviceGetUUID, pynvml.nvmlDeviceGetComputeRunningProcesses):
        with pytest.raises(pynvml.NVMLError_GpuIsLost):
            call(handle)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        pynvml.nvmlDeviceGetHandleByIndex(0)
    assert pynvml.nvmlDeviceGetCount() == 1  # still enumerated
    a.node.gpus[0].lost = False
    assert pynvml.nvmlDeviceGetName(handle)


@pytest.mark.parametrize(
    ("kind", "error"), [(FaultKind.UNKNOWN, pynvml.NVMLError_Unknown), (FaultKind.TIMEOUT, pynvml.NVMLError_Timeout)]
)
def test_transient_errors_hit_single_calls(attach_scenario, kind: FaultKind, error: type) -> None:
    a = attach_scenario("h100-mig")
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    a.fleet.faults.set(kind, 0.5)
    failures = 0
    for _ in range(200):
        try:
            pynvml.nvmlDeviceGetMemoryInfo(handle)
        except error:
            failures += 1
    assert 60 < failures < 140
    a.fleet.faults.set(kind, 0.0)
    pynvml.nvmlDeviceGetMemoryInfo(handle)
    assert pynvml.nvmlSystemGetDriverVersion()  # system calls are not device calls


def test_process_exits_between_the_list_and_its_query(attach_scenario) -> None:
    a = attach_scenario("timeslice")
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    a.fleet.faults.set(FaultKind.PROCESS_EXIT, 1.0)
    listed = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    a.fleet.faults.set(FaultKind.PROCESS_EXIT, 0.0)
    assert listed
    gone = listed[0].pid
    with pytest.raises(pynvml.NVMLError_NotFound):
        pynvml.nvmlSystemGetProcessName(gone)
    with pytest.raises(ProcessLookupError):
        a.node.proc_source.cgroup(gone)
    assert pynvml.nvmlDeviceGetComputeRunningProcesses(handle) == []  # all exited
    clock_of(a).advance(1)
    again = {p.pid for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)}
    assert len(again) == len(listed) and not again & {p.pid for p in listed}  # restarted under new pids
    assert all(a.node.proc_source.comm(pid) for pid in again)


def test_mig_reconfigured_mid_run(attach_scenario) -> None:
    a = attach_scenario("h100-mig")
    parent = pynvml.nvmlDeviceGetHandleByIndex(0)
    old = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, 0)
    old_uuid = pynvml.nvmlDeviceGetUUID(old)
    old_gi = pynvml.nvmlDeviceGetGpuInstanceId(old)
    old_pids = {p.pid for p in pynvml.nvmlDeviceGetComputeRunningProcesses(old)}
    a.fleet.faults.set(FaultKind.MIG_RECONFIGURE, 1.0)
    pynvml.nvmlDeviceGetMaxMigDeviceCount(parent)  # the reconfiguration happens before this call is answered
    a.fleet.faults.set(FaultKind.MIG_RECONFIGURE, 0.0)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlDeviceGetUUID(old)
    new = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, 0)
    assert pynvml.nvmlDeviceGetUUID(new) != old_uuid
    assert pynvml.nvmlDeviceGetGpuInstanceId(new) == old_gi  # same geometry, same GI ids
    assert {p.pid for p in pynvml.nvmlDeviceGetComputeRunningProcesses(new)}.isdisjoint(old_pids)


def test_driver_not_loaded_until_it_loads() -> None:
    from exporter.simulate import attach

    clock = ManualClock(AFTERNOON)
    fleet = build_scenario("exclusive", clock=clock)
    fleet.faults.driver_loads_after_s = 30
    with attach(fleet):
        with pytest.raises(pynvml.NVMLError_DriverNotLoaded):
            pynvml.nvmlInit()
        clock.advance(30)
        pynvml.nvmlInit()
        assert pynvml.nvmlDeviceGetCount() == 1
        pynvml.nvmlShutdown()


def test_library_missing_is_library_not_found() -> None:
    from exporter.simulate import attach

    fleet = build_scenario("exclusive", clock=ManualClock(AFTERNOON))
    fleet.faults.library_missing = True
    with attach(fleet), pytest.raises(pynvml.NVMLError_LibraryNotFound):
        pynvml.nvmlInit()


def test_faults_are_deterministic_for_a_seed(attach_scenario) -> None:
    def pattern(seed: int) -> list[bool]:
        fleet = build_scenario("exclusive", seed=seed, clock=ManualClock(AFTERNOON))
        a = attach_scenario("exclusive", fleet=fleet)
        fleet.faults.set(FaultKind.UNKNOWN, 0.3)
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        out = []
        for _ in range(50):
            try:
                pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
                out.append(False)
            except pynvml.NVMLError_Unknown:
                out.append(True)
        pynvml.nvmlShutdown()
        a.detach()
        return out

    assert pattern(1) == pattern(1)
    assert pattern(1) != pattern(2)


def test_rates_are_checked() -> None:
    fleet = build_scenario("exclusive", clock=ManualClock(AFTERNOON))
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        fleet.faults.set("timeout", 1.5)
    with pytest.raises(ValueError):
        fleet.faults.set("meteor", 0.1)


def test_a_new_geometry_replaces_the_mig_devices(attach_scenario) -> None:
    a = attach_scenario("h100-mig")
    parent = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert len(a.node.processes()) == 5  # 4 workload processes and the MPS server
    a.node.gpus[0].configure_mig(["7g.80gb"])
    mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, 0)
    assert pynvml.nvmlDeviceGetName(mig) == "NVIDIA H100 80GB HBM3 MIG 7g.80gb"
    assert pynvml.nvmlDeviceGetGpuInstanceId(mig) == 0
    with pytest.raises(pynvml.NVMLError_NotFound):
        pynvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, 1)
    assert pynvml.nvmlDeviceGetComputeRunningProcesses(mig) == []  # its workloads' instances are gone
    assert a.node.processes() == []
