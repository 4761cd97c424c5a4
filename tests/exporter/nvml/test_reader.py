"""The reader's own rules, on pynvml answers stated exactly (see fake_pynvml): MPS clients not the server, MIG
devices with profile and placement, GPM only from the second read and never for a GI split into CIs, per-process
SM activity averaged since the last read, and failures that lose one value, one GPU, or the NVML session."""

from __future__ import annotations

from collections.abc import Callable

import pynvml
import pytest

from exporter.nvml.reader import NvmlReader
from exporter.nvml.session import NvmlSession
from exporter.snapshot import ComputeMode, MemorySource, NvmlError, Process
from tests.exporter.nvml.fake_pynvml import FakeGpu, FakeMig, FakeNvml, FakeProcessInfo

GIB = 2**30


class Clock:
    """Seconds that pass only when a test says so; ``step`` is added on every read when set (scrapes far apart)."""

    def __init__(self, step: float = 0.0) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def reader(monkeypatch: pytest.MonkeyPatch, nvml: FakeNvml, clock: Clock | None = None) -> NvmlReader:
    nvml.install(monkeypatch)
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: None)
    session = NvmlSession()
    assert session.start()
    return NvmlReader(session, clock=clock or Clock(step=15.0))


def mig_gpu() -> FakeGpu:
    return FakeGpu(
        uuid="GPU-h100",
        mig=True,
        migs=[
            FakeMig(1, 0, "MIG-a", 9, "3g.40gb", 0, 4, 60, (40 * GIB, 10 * GIB), [FakeProcessInfo(11, 6 * GIB)]),
            FakeMig(1, 1, "MIG-b", 9, "3g.40gb", 0, 4, 0, (40 * GIB, 10 * GIB), [FakeProcessInfo(12, 4 * GIB)]),
            FakeMig(5, 0, "MIG-c", 19, "1g.10gb", 6, 1, 16, (10 * GIB, 3 * GIB), [FakeProcessInfo(13, 3 * GIB)]),
        ],
        gpm_values={1: (50.0, 20.0, 10.0), 5: (75.0, 40.0, 100.2)},
    )


def test_whole_gpu_with_mps_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = FakeGpu(
        uuid="GPU-a100",
        name="NVIDIA A100-SXM4-80GB",
        cores=6912,
        capability=(8, 0),
        compute_mode=pynvml.NVML_COMPUTEMODE_EXCLUSIVE_PROCESS,
        util=55,
        compute=[FakeProcessInfo(100, 300 * 2**20), FakeProcessInfo(101, 2 * GIB)],
        mps=[FakeProcessInfo(101, 2 * GIB), FakeProcessInfo(102, 3 * GIB)],
        samples=[(101, 10, 40), (101, 20, 60), (102, 15, 10)],
    )
    nvml = FakeNvml([gpu], names={100: "/usr/bin/nvidia-cuda-mps-server", 101: "python", 102: "python"})
    r = reader(monkeypatch, nvml)
    assert {p.sm_active_ratio for p in r.read().gpus[0].processes} == {None}  # first read: where to start only
    gpu.samples = [(101, 30, 40), (101, 40, 60), (102, 35, 10)]
    snap = r.read()
    (g,) = snap.gpus
    assert g.model == "NVIDIA A100-SXM4-80GB" and g.sm_count == 108  # 6912 cores / 64 per SM (GA100)
    assert g.compute_mode is ComputeMode.EXCLUSIVE_PROCESS and g.mig_enabled is False
    assert g.mps_active  # the server was seen, and is not published
    assert sorted(g.processes, key=lambda p: p.pid) == [
        Process(101, 2 * GIB, 0.5, mps_client=True),  # mean of 40 % and 60 %
        Process(102, 3 * GIB, 0.1, mps_client=True),
    ]
    assert g.sm_active_ratio == 0.55
    assert snap.errors == ()


def test_per_process_activity_covers_only_the_time_since_the_last_read(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = FakeGpu(uuid="GPU-x", compute=[FakeProcessInfo(7, GIB), FakeProcessInfo(8, GIB)], samples=[(7, 100, 90)])
    r = reader(monkeypatch, FakeNvml([gpu]))
    first = {p.pid: p.sm_active_ratio for p in r.read().gpus[0].processes}
    assert first == {7: None, 8: None}  # the whole buffer (since = 0) is an unknown past: not published
    gpu.samples.append((7, 150, 90))
    assert {p.pid: p.sm_active_ratio for p in r.read().gpus[0].processes} == {7: 0.9, 8: 0.0}  # 8: no kernels
    second = {p.pid: p.sm_active_ratio for p in r.read().gpus[0].processes}
    assert second == {7: 0.0, 8: 0.0}  # nothing new since timestamp 150 (NVML answers NOT_FOUND)
    gpu.samples.append((8, 200, 30))
    assert {p.pid: p.sm_active_ratio for p in r.read().gpus[0].processes} == {7: 0.0, 8: 0.3}


def test_mig_devices_profiles_and_gpm(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml([mig_gpu()])
    r = reader(monkeypatch, nvml)
    first = r.read().gpus[0]
    assert first.mig_enabled and first.sm_active_ratio is None and first.processes == ()
    a, b, c = first.mig_devices
    assert (a.gi, a.ci, a.uuid, a.profile, a.placement_start, a.placement_size) == (1, 0, "MIG-a", "3g.40gb", 0, 4)
    assert (c.profile, c.memory_total_bytes, c.memory_used_bytes, c.sm_count) == ("1g.10gb", 10 * GIB, 3 * GIB, 16)
    assert [p.pid for p in c.processes] == [13]
    assert c.sm_active_ratio is None  # first read: no earlier GPM sample to compare with
    second = r.read().gpus[0]
    a, b, c = second.mig_devices
    assert (c.sm_active_ratio, c.sm_occupancy_ratio, c.dram_active_ratio) == (0.75, 0.4, 1.0)  # 100.2 % clipped
    assert a.sm_active_ratio is None and b.sm_active_ratio is None  # GI 1 holds two CIs: no per-CI figure
    assert all(p.sm_active_ratio is None for m in second.mig_devices for p in m.processes)  # not on MIG
    assert nvml.samples_alive == 1  # only GI 5's latest sample is kept
    assert nvml.calls.count("nvmlGpuInstanceGetInfo") == 3  # instance facts are read once per MIG device UUID


def test_scrapes_within_a_second_repeat_the_last_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second scrape right after the first must not publish a ratio over a few milliseconds (or a false 0)."""
    gpu = mig_gpu()
    whole = FakeGpu(uuid="GPU-x", compute=[FakeProcessInfo(7, GIB)], samples=[(7, 100, 90)])
    nvml = FakeNvml([gpu, whole])
    clock = Clock()
    r = reader(monkeypatch, nvml, clock)
    r.read()
    clock.now += 15
    whole.samples.append((7, 200, 50))
    first = r.read()
    clock.now += 0.2
    again = r.read()
    assert again.gpus[0].mig_devices[2].sm_active_ratio == first.gpus[0].mig_devices[2].sm_active_ratio == 0.75
    assert again.gpus[1].processes[0].sm_active_ratio == first.gpus[1].processes[0].sm_active_ratio == 0.5
    assert nvml.calls.count("nvmlGpmMetricsGet") == 1  # no new GPM comparison for the close scrape
    assert nvml.calls.count("nvmlDeviceGetProcessUtilization") == 2


def test_without_root_placement_is_empty_and_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """NVML hands out GPU-instance handles to root only; the profile still comes from the MIG device's name."""
    gpu = mig_gpu()
    gpu.fail["nvmlDeviceGetGpuInstanceById"] = pynvml.NVML_ERROR_NO_PERMISSION
    nvml = FakeNvml([gpu])
    r = reader(monkeypatch, nvml)
    first, second = r.read(), r.read()
    a, b, c = second.gpus[0].mig_devices
    assert [(m.profile, m.placement_start, m.placement_size) for m in (a, b, c)] == [
        ("3g.40gb", None, None),  # named "MIG 1c.3g.40gb": one of two compute instances
        ("3g.40gb", None, None),
        ("1g.10gb", None, None),
    ]
    assert first.errors == second.errors == ()
    assert nvml.calls.count("nvmlDeviceGetGpuInstanceById") == 1  # asked once, then remembered


def test_gpm_restricted_to_admins_is_absent_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = mig_gpu()
    gpu.fail["nvmlGpmMigSampleGet"] = pynvml.NVML_ERROR_NO_PERMISSION
    nvml = FakeNvml([gpu])
    r = reader(monkeypatch, nvml)
    snaps = [r.read() for _ in range(3)]
    assert all(m.sm_active_ratio is None for s in snaps for m in s.gpus[0].mig_devices)
    assert all(s.errors == () for s in snaps)
    assert nvml.calls.count("nvmlGpmMigSampleGet") == 1
    assert nvml.samples_alive == 0


def test_a_failed_call_loses_that_value_only(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = FakeGpu(uuid="GPU-x", compute=[FakeProcessInfo(7, GIB)])
    gpu.fail["nvmlDeviceGetUtilizationRates"] = pynvml.NVML_ERROR_UNKNOWN
    gpu.fail["nvmlDeviceGetMemoryInfo"] = pynvml.NVML_ERROR_TIMEOUT
    snap = reader(monkeypatch, FakeNvml([gpu])).read()
    (g,) = snap.gpus
    assert g.up and g.sm_active_ratio is None and g.memory_used_bytes is None
    assert [p.pid for p in g.processes] == [7]
    assert NvmlError("nvmlDeviceGetUtilizationRates", "NVML_ERROR_UNKNOWN") in snap.errors
    assert NvmlError("nvmlDeviceGetMemoryInfo_v2", "NVML_ERROR_TIMEOUT") in snap.errors


def test_not_supported_is_absent_and_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = FakeGpu(uuid="GPU-x", name="NVIDIA GeForce RTX 4090", capability=(8, 9), cores=16384)
    gpu.fail["nvmlDeviceGetProcessUtilization"] = pynvml.NVML_ERROR_NOT_SUPPORTED
    snap = reader(monkeypatch, FakeNvml([gpu])).read()
    assert snap.errors == ()
    assert snap.gpus[0].mig_enabled is False and snap.gpus[0].sm_count == 128


def test_a_lost_gpu_is_down_and_the_others_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    lost, fine = FakeGpu(uuid="GPU-lost"), FakeGpu(uuid="GPU-fine")
    r = reader(monkeypatch, FakeNvml([lost, fine]))
    assert [g.up for g in r.read().gpus] == [True, True]
    lost.fail["nvmlDeviceGetMemoryInfo"] = pynvml.NVML_ERROR_GPU_IS_LOST
    lost.fail["nvmlDeviceGetUUID"] = pynvml.NVML_ERROR_GPU_IS_LOST
    snap = r.read()
    assert [(g.index, g.uuid, g.up) for g in snap.gpus] == [(0, "GPU-lost", False), (1, "GPU-fine", True)]
    assert NvmlError("nvmlDeviceGetUUID", "NVML_ERROR_GPU_IS_LOST") in snap.errors


def test_a_gpu_that_left_the_count_is_reported_down(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml([FakeGpu(uuid="GPU-0"), FakeGpu(uuid="GPU-1")])
    r = reader(monkeypatch, nvml)
    r.read()
    nvml.gpus.pop()  # fell off the bus: the driver no longer enumerates it
    assert [(g.uuid, g.up) for g in r.read().gpus] == [("GPU-0", True), ("GPU-1", False)]


def test_nvml_gone_mid_scrape_reports_all_down_and_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml([FakeGpu(uuid="GPU-0")])
    r = reader(monkeypatch, nvml)
    r.read()
    nvml.fail["nvmlDeviceGetCount"] = pynvml.NVML_ERROR_UNINITIALIZED
    snap = r.read()
    assert not snap.nvml_up and [(g.uuid, g.up) for g in snap.gpus] == [("GPU-0", False)]
    assert not r.session.up
    del nvml.fail["nvmlDeviceGetCount"]
    r.session._next_try = 0  # the retry interval has passed
    assert r.read().gpus[0].up


def test_unknown_pid_names_are_asked_again_and_known_ones_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = FakeGpu(uuid="GPU-x", compute=[FakeProcessInfo(5, GIB), FakeProcessInfo(6, GIB)])
    nvml = FakeNvml([gpu], names={5: "python"})
    r = reader(monkeypatch, nvml)
    r.read()
    r.read()
    assert nvml.calls.count("nvmlSystemGetProcessName") == 3  # pid 5 once; pid 6 (not visible) each time


def test_mig_parent_memory_denied_is_the_sum_of_gpu_instances_said_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gpu = mig_gpu()
    gpu.parent_memory_denied = True
    nvml = FakeNvml([gpu])
    r = reader(monkeypatch, nvml)
    snaps = [r.read() for _ in range(3)]
    g = snaps[-1].gpus[0]
    assert g.memory_source is MemorySource.GPU_INSTANCES
    assert (g.memory_total_bytes, g.memory_used_bytes) == (50 * GIB, 13 * GIB)  # GI 1 (once, two CIs) + GI 5
    assert all(s.errors == () for s in snaps)
    assert nvml.calls.count("nvmlDeviceGetMemoryInfo") == 1 + 3 * 3  # the parent once, then MIG devices only
    assert sum("sum of its GPU instances" in m for m in caplog.messages) == 1


def test_empty_mig_slot_answering_invalid_argument_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = mig_gpu()
    gpu.empty_slot_error = pynvml.NVML_ERROR_INVALID_ARGUMENT
    snap = reader(monkeypatch, FakeNvml([gpu])).read()
    assert snap.errors == () and len(snap.gpus[0].mig_devices) == 3


def test_nan_from_gpm_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = mig_gpu()
    gpu.gpm_values[5] = (float("nan"), 40.0, float("nan"))
    r = reader(monkeypatch, FakeNvml([gpu]))
    r.read()
    c = r.read().gpus[0].mig_devices[2]
    assert (c.sm_active_ratio, c.sm_occupancy_ratio, c.dram_active_ratio) == (None, 0.4, None)


def test_gpu_instance_recreated_under_the_same_id_is_not_diffed_against_the_old(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gpu = mig_gpu()
    nvml = FakeNvml([gpu])
    r = reader(monkeypatch, nvml)
    r.read()
    assert r.read().gpus[0].mig_devices[2].sm_active_ratio == 0.75
    gpu.migs[2].uuid = "MIG-c2"  # destroyed and created again: GI 5 once more, a new MIG device UUID
    again = r.read()
    assert again.gpus[0].mig_devices[2].sm_active_ratio is None and again.errors == ()
    assert r.read().gpus[0].mig_devices[2].sm_active_ratio == 0.75
    assert nvml.samples_alive == 1


def test_split_gpu_instance_measured_per_mig_device_where_the_driver_accepts_handles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gpu = mig_gpu()
    gpu.gpm_mig_handles = True
    gpu.gpm_device_values = {"MIG-a": (30.0, 10.0, 5.0), "MIG-b": (60.0, 20.0, 5.0)}
    r = reader(monkeypatch, FakeNvml([gpu]))
    r.read()
    a, b, c = r.read().gpus[0].mig_devices
    assert (a.sm_active_ratio, b.sm_active_ratio, c.sm_active_ratio) == (0.3, 0.6, 0.75)


@pytest.mark.parametrize("detected", [False, True])
def test_driver_without_v3_process_lists_falls_back_to_v2(monkeypatch: pytest.MonkeyPatch, detected: bool) -> None:
    """Whether the missing _v3 is seen when probing the library or only when called, _v2 is read, nothing counted."""
    gpu = FakeGpu(uuid="GPU-x", compute=[FakeProcessInfo(7, GIB), FakeProcessInfo(8, 2 * GIB)])
    nvml = FakeNvml([gpu])
    if detected:
        nvml.absent = {f"nvmlDeviceGet{k}RunningProcesses_v3" for k in ("Compute", "Graphics", "MPSCompute")}
    r = reader(monkeypatch, nvml)
    for kind in ("Compute", "Graphics", "MPSCompute"):  # as pynvml on such a driver: the _v3 wrapper cannot work
        monkeypatch.setattr(pynvml, f"nvmlDeviceGet{kind}RunningProcesses_v3", _function_not_found)
    snap = r.read()
    assert [(p.pid, p.memory_used_bytes) for p in snap.gpus[0].processes] == [(7, GIB), (8, 2 * GIB)]
    assert snap.errors == ()


def _function_not_found(handle: object) -> None:
    raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)


def test_process_list_version_detection() -> None:
    from exporter.nvml.processes import V1, V2, V3, V3_CC, detect

    def exports(*names: str) -> Callable[[str], bool]:
        return lambda symbol: symbol in names

    v3, v2 = "nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2"
    cc, detail = "nvmlDeviceGetConfComputeMemSizeInfo", "nvmlDeviceGetRunningProcessDetailList"
    assert detect(exports(v3, v2)) == [V3, V2, V1]  # R510-R530
    assert detect(exports(v3, v2, cc)) == [V3_CC, V2, V1]  # 535.43.02-535.86
    assert detect(exports(v2, cc)) == [V2, V1]  # 535.98
    assert detect(exports(v3, v2, cc, detail)) == [V3, V2, V1]  # R550+
    assert detect(exports()) == [V1]  # before R450
