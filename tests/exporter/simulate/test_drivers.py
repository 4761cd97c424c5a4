"""The simulated driver generations reproduce what each real one does to NVML clients: the bugs the exporter must
survive show up through pynvml's own code, and nvitop (which handles them) reads every profile right."""

from __future__ import annotations

from collections.abc import Callable

import pynvml
import pytest

from exporter.simulate import Attachment
from exporter.simulate.drivers import PROFILES, driver_profile, upgrade_kernel_module, use_driver
from slicewise.errors import BadInput

AttachScenario = Callable[..., Attachment]


def _on(attach_scenario: AttachScenario, scenario: str, driver: str, privileged: bool = True) -> Attachment:
    a = attach_scenario(scenario, init=False)
    use_driver(a.fleet, driver, privileged=privileged)
    pynvml.nvmlInit()
    return a


def _truth(a: Attachment) -> set[tuple[int, int]]:
    return {(p.pid, p.memory_bytes) for p in a.node.processes() if p.workload is not None}


@pytest.mark.parametrize("driver", ["470", "535.98"])
def test_pynvml_unversioned_process_list_raises_library_mismatch_without_v3(
    attach_scenario: AttachScenario, driver: str
) -> None:
    a = _on(attach_scenario, "timeslice", driver)
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLLibraryMismatchError):  # not an NVMLError: it escaped the old reader
        pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    listed = {(p.pid, p.usedGpuMemory) for p in pynvml.nvmlDeviceGetComputeRunningProcesses_v2(handle)}
    assert listed == _truth(a)


def test_pynvml_misreads_the_5_field_struct_of_535_54(attach_scenario: AttachScenario) -> None:
    a = _on(attach_scenario, "timeslice", "535.54")
    infos = pynvml.nvmlDeviceGetComputeRunningProcesses(pynvml.nvmlDeviceGetHandleByIndex(0))
    read = {(p.pid, p.usedGpuMemory) for p in infos}
    truth = _truth(a)
    assert len(truth) == 4 and len(infos) == 4
    assert (infos[0].pid, infos[0].usedGpuMemory) in truth  # the first entry is right...
    assert len(read & truth) == 1  # ...every later one is garbage (NVIDIA/go-nvml#75)


@pytest.mark.parametrize("driver", list(PROFILES))
def test_nvitop_reads_the_process_list_on_every_driver(attach_scenario: AttachScenario, driver: str) -> None:
    nvitop_libnvml = pytest.importorskip("nvitop.api.libnvml")
    scenario = "timeslice" if driver == "470" else "mps"
    a = _on(attach_scenario, scenario, driver)
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    kind = "nvmlDeviceGetComputeRunningProcesses" if driver == "470" else "nvmlDeviceGetMPSComputeRunningProcesses"
    # nvitop decides the symbol and struct once per process; start it afresh for this library
    for name in list(vars(nvitop_libnvml)):
        if name.endswith("__get_running_processes_version_suffix"):
            setattr(nvitop_libnvml, name, None)
    infos = getattr(nvitop_libnvml, kind)(handle)
    assert {(p.pid, p.usedGpuMemory) for p in infos} == _truth(a)


def test_privileges_decide_no_permission_on_the_mig_parent_only(attach_scenario: AttachScenario) -> None:
    _on(attach_scenario, "h100-mig", "550", privileged=False)
    parent = pynvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_NoPermission):
        pynvml.nvmlDeviceGetMemoryInfo(parent)
    with pytest.raises(pynvml.NVMLError_NoPermission):
        pynvml.nvmlDeviceGetGpuInstanceById(parent, 1)
    mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, 0)
    assert pynvml.nvmlDeviceGetMemoryInfo(mig).total > 0  # the MIG device's own memory: anyone may read it


def test_symbols_follow_the_profile(attach_scenario: AttachScenario) -> None:
    a = _on(attach_scenario, "a100-mig", "470")
    with pytest.raises(pynvml.NVMLError_FunctionNotFound):
        pynvml.nvmlGpmSampleAlloc()
    with pytest.raises(pynvml.NVMLError_FunctionNotFound):
        pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0), version=pynvml.nvmlMemory_v2)
    assert pynvml.nvmlSystemGetDriverVersion() == "470.256.02"
    assert pynvml.nvmlSystemGetCudaDriverVersion() == 11040
    assert a.node.driver_version == "470.256.02"


def test_kernel_module_upgrade_is_a_version_mismatch(attach_scenario: AttachScenario) -> None:
    a = _on(attach_scenario, "timeslice", "535.98")
    upgrade_kernel_module(a.fleet, "550")
    with pytest.raises(pynvml.NVMLError_DriverNotLoaded):
        pynvml.nvmlDeviceGetCount()
    pynvml.nvmlShutdown()
    with pytest.raises(pynvml.NVMLError_LibRmVersionMismatch):
        pynvml.nvmlInit()


def test_profiles_by_name_or_version_and_bad_names() -> None:
    assert driver_profile("535.54.03") is driver_profile("535.54")
    with pytest.raises(BadInput, match=r"unknown driver profile '999' \(known: 470, 525, 535\.54"):
        driver_profile("999")


def test_exporter_gives_up_after_a_driver_upgrade_and_serves_until_then() -> None:
    """The GPU Operator upgrades the driver under a running exporter: it must exit (its pod restarts and loads the
    new library), not retry for ever while holding the old driver's files (NVIDIA/gpu-operator#2570)."""
    from exporter.app import ExporterOptions, build_exporter
    from exporter.simulate import ManualClock, build_scenario
    from tests.exporter.simulate.conftest import AFTERNOON

    fleet = build_scenario("timeslice", clock=ManualClock(AFTERNOON))
    exporter = build_exporter(ExporterOptions(simulate_driver="535.98"), serve=False, fleet=fleet)
    fatal: list[str] = []
    exporter.session.on_fatal = fatal.append
    try:
        upgrade_kernel_module(fleet, "550")
        assert not exporter.reader.read().nvml_up  # the session is gone
        fleet.clock.advance(15)  # type: ignore[attr-defined]
        assert not exporter.reader.read().nvml_up
        assert len(fatal) == 1 and "LIB_RM_VERSION_MISMATCH" in fatal[0]
    finally:
        exporter.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--simulate.driver", "535.54"], "--simulate.driver and --simulate.unprivileged need --simulate"),
        (["--simulate=h100-mig", "--simulate.driver", "418"], "unknown driver profile '418'"),
        (["--simulate=h100-mig", "--simulate.driver", "470"], "does not support NVIDIA H100 80GB HBM3"),
    ],
)
def test_bad_driver_flags_exit_2(args: list[str], message: str) -> None:
    from tests.exporter.test_cli import exporter

    done = exporter("--web.listen-address", "127.0.0.1:0", *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_a_blackwell_node_gets_a_driver_that_drives_it() -> None:
    from exporter.simulate import build_scenario

    fleet = build_scenario("mixed")
    drivers = {n.name: n.driver.name for n in fleet.nodes}
    assert drivers["sim-h100-0"] == "550"
    assert all(name == "580" for node, name in drivers.items() if node.startswith("sim-b200"))
    with pytest.raises(BadInput, match="does not support NVIDIA B200"):
        use_driver(fleet, "550", node="sim-b200-0")


def test_the_exporter_process_exits_1_after_a_driver_upgrade() -> None:
    """The whole path: slicewise-exporter serving, the kernel module upgraded under it, scrapes, exit status 1."""
    import subprocess
    import sys

    from tests.support import free_port

    port = free_port()
    code = f"""
import threading, time, urllib.request
from exporter.simulate import attached
from exporter.simulate.drivers import upgrade_kernel_module

def upgrade_then_scrape():
    while attached() is None:
        time.sleep(0.05)
    time.sleep(1.0)
    upgrade_kernel_module(attached().fleet, "550")
    for _ in range(40):
        try:
            urllib.request.urlopen("http://127.0.0.1:{port}/metrics", timeout=5).read()
        except OSError:
            return
        time.sleep(0.25)

threading.Thread(target=upgrade_then_scrape, daemon=True).start()
from exporter.cli import main
main(["--simulate=timeslice", "--simulate.driver=535.98", "--nvml.retry-interval=1s",
      "--web.listen-address=127.0.0.1:{port}", "--kubernetes=off"])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert "LIB_RM_VERSION_MISMATCH" in done.stderr and "restarted exporter loads the new driver" in done.stderr
