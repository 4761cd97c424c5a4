"""Snapshot -> metric families, checked on hand-built snapshots: DESIGN.md's names and labels, absent-not-zero,
memory once per GPU instance, aggregation, health counters, and promtool's silence."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from exporter.attribution.attributor import Attributor
from exporter.attribution.sources import PodMeta
from exporter.collector import CollectorOptions, SlicewiseCollector
from exporter.snapshot import ComputeMode, Gpu, MigDevice, NvmlError, Process, Snapshot
from tests.exporter.fakes import FakePods, FakeProc, FakeProcs
from tests.exporter.promtext import one, parse, promtool_check

GIB = 2**30
CID = "846e8782c7d9b930b110cae16b1fd42ee67ab26007fae540459269907e6b472e"
POD = "687fb852-2d47-4977-819c-d01c90a54504"
K8S_CGROUP = (
    "0::/kubepods.slice/kubepods-burstable.slice/"
    f"kubepods-burstable-pod{POD.replace('-', '_')}.slice/cri-containerd-{CID}.scope\n"
)


def h100_mig() -> Gpu:
    return Gpu(
        index=0,
        uuid="GPU-aaaa",
        model="NVIDIA H100 80GB HBM3",
        mig_enabled=True,
        compute_mode=ComputeMode.DEFAULT,
        memory_total_bytes=80 * GIB,
        memory_used_bytes=30 * GIB,
        sm_count=132,
        mig_devices=(
            MigDevice(
                gi=1,
                ci=0,
                uuid="MIG-1",
                profile="3g.40gb",
                placement_start=0,
                placement_size=4,
                memory_total_bytes=40 * GIB,
                memory_used_bytes=20 * GIB,
                sm_count=30,
                processes=(Process(101, 12 * GIB),),  # GI split into two CIs: no GPM figures (module doc)
            ),
            MigDevice(
                gi=1,
                ci=1,
                uuid="MIG-2",
                profile="3g.40gb",
                placement_start=0,
                placement_size=4,
                memory_total_bytes=40 * GIB,
                memory_used_bytes=20 * GIB,
                sm_count=30,
                processes=(Process(102, 8 * GIB),),
            ),
            MigDevice(
                gi=9,
                ci=0,
                uuid="MIG-3",
                profile="1g.10gb",
                placement_start=6,
                placement_size=1,
                memory_total_bytes=10 * GIB,
                memory_used_bytes=5 * GIB,
                sm_count=16,
                sm_active_ratio=0.75,
                sm_occupancy_ratio=0.4,
                dram_active_ratio=0.2,
                processes=(Process(103, 5 * GIB), Process(104, None)),
            ),
        ),
    )


def a100_mps() -> Gpu:
    return Gpu(
        index=1,
        uuid="GPU-bbbb",
        model="NVIDIA A100-SXM4-80GB",
        mig_enabled=False,
        compute_mode=ComputeMode.EXCLUSIVE_PROCESS,
        mps_active=True,
        memory_total_bytes=80 * GIB,
        memory_used_bytes=9 * GIB,
        sm_count=108,
        sm_active_ratio=0.5,
        processes=(Process(201, 4 * GIB, 0.25, mps_client=True), Process(202, 3 * GIB, 0.2, mps_client=True)),
    )


class Source:
    def __init__(self, *snapshots: Snapshot) -> None:
        self.snapshots = list(snapshots)

    def read(self) -> Snapshot:
        return self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]


def procs() -> FakeProcs:
    return FakeProcs(
        {
            101: FakeProc(K8S_CGROUP, comm="python3"),
            102: FakeProc(K8S_CGROUP, comm="python3"),
            103: FakeProc("0::/system.slice/triton-server.service\n", comm="tritonserver"),
            104: FakeProc("0::/system.slice/triton-server.service\n", comm="tritonserver"),
            201: FakeProc("0::/user.slice/user-1000.slice/session-2.scope\n", comm="python", user="bob"),
            # 202 has exited by the time it is read
        }
    )


def pods() -> FakePods:
    return FakePods([PodMeta(POD, "ml", "trainer-7d9f8c6b5-x2x7q", "Deployment", "trainer", {CID: "pytorch"})])


def scrape(collector: SlicewiseCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def snapshot(errors: tuple[NvmlError, ...] = ()) -> Snapshot:
    return Snapshot(True, "550.90.07", (h100_mig(), a100_mps(), Gpu(index=2, uuid="GPU-cccc", up=False)), errors)


def test_every_contract_series() -> None:
    collector = SlicewiseCollector(Source(snapshot()), Attributor(procs(), pods()), CollectorOptions("gpu-node-a"))
    s = parse(scrape(collector))
    info = one(
        s,
        "slicewise_gpu_info",
        gpu="0",
        gpu_uuid="GPU-aaaa",
        model="NVIDIA H100 80GB HBM3",
        driver_version="550.90.07",
        mig_mode="enabled",
        compute_mode="Default",
        mps="inactive",
        node="gpu-node-a",
    )
    assert info == 1
    assert (
        one(s, "slicewise_gpu_info", gpu="1", mig_mode="disabled", compute_mode="Exclusive_Process", mps="active") == 1
    )
    assert one(s, "slicewise_gpu_memory_total_bytes", gpu="0", gpu_uuid="GPU-aaaa") == 80 * GIB
    assert one(s, "slicewise_gpu_memory_used_bytes", gpu="1") == 9 * GIB
    assert one(s, "slicewise_gpu_sm_count", gpu="0") == 132
    assert one(s, "slicewise_gpu_sm_active_ratio", gpu="1") == 0.5
    assert [x.labels["gpu"] for x in s["slicewise_gpu_sm_active_ratio"]] == ["1"]  # absent in MIG mode, not 0
    # MIG: info per device, memory once per GPU instance, SMs per device, GPM only where measured
    assert (
        one(
            s,
            "slicewise_mig_info",
            gpu="0",
            gi="9",
            ci="0",
            mig_uuid="MIG-3",
            profile="1g.10gb",
            placement_start="6",
            placement_size="1",
        )
        == 1
    )
    assert len(s["slicewise_mig_info"]) == 3
    assert [(x.labels["gi"], x.value) for x in s["slicewise_mig_memory_total_bytes"]] == [
        ("1", 40 * GIB),
        ("9", 10 * GIB),
    ]
    assert one(s, "slicewise_mig_memory_used_bytes", gi="1", profile="3g.40gb") == 20 * GIB
    assert one(s, "slicewise_mig_sm_count", gi="1", ci="1", profile="3g.40gb") == 30
    assert one(s, "slicewise_mig_sm_active_ratio", gi="9", ci="0", profile="1g.10gb") == 0.75
    assert one(s, "slicewise_mig_sm_occupancy_ratio", gi="9") == 0.4
    assert one(s, "slicewise_mig_dram_active_ratio", gi="9") == 0.2
    assert len(s["slicewise_mig_sm_active_ratio"]) == 1
    # processes: Kubernetes owner, systemd unit, user/command; MPS clients on the A100; 202 exited: skipped
    k8s = dict(
        gpu="0",
        gpu_uuid="GPU-aaaa",
        gi="1",
        ci="0",
        pid="101",
        process="python3",
        workload="ml/trainer",
        namespace="ml",
        pod="trainer-7d9f8c6b5-x2x7q",
        container="pytorch",
    )
    assert one(s, "slicewise_process_memory_used_bytes", **k8s) == 12 * GIB
    assert (
        one(
            s,
            "slicewise_process_memory_used_bytes",
            pid="103",
            workload="triton-server.service",
            namespace="",
            pod="",
            container="",
            gi="9",
            ci="0",
        )
        == 5 * GIB
    )
    assert not [x for x in s["slicewise_process_memory_used_bytes"] if x.labels["pid"] == "104"]  # memory unknown
    assert one(s, "slicewise_process_memory_used_bytes", pid="201", gi="", ci="", workload="bob/python") == 4 * GIB
    assert one(s, "slicewise_process_sm_active_ratio", pid="201", gi="", ci="") == 0.25
    assert not [x for x in s["slicewise_process_memory_used_bytes"] if x.labels["pid"] == "202"]
    assert {x.labels["pid"] for x in s["slicewise_process_sm_active_ratio"]} == {"201"}  # never on MIG
    # health
    assert one(s, "slicewise_exporter_processes_skipped_total") == 1
    assert one(s, "slicewise_exporter_gpu_up", gpu="2", gpu_uuid="GPU-cccc") == 0
    assert one(s, "slicewise_exporter_gpu_up", gpu="0") == 1
    assert not [x for x in s["slicewise_gpu_info"] if x.labels["gpu"] == "2"]  # a lost GPU has no info series
    assert one(s, "slicewise_exporter_nvml_up") == 1
    assert one(s, "slicewise_exporter_build_info") == 1
    assert one(s, "slicewise_exporter_collect_duration_seconds") > 0
    # every series carries gpu and gpu_uuid (DESIGN.md), the exporter's own health aside
    for name, samples in s.items():
        if name.startswith("slicewise_") and not name.startswith("slicewise_exporter_"):
            assert all(x.labels.get("gpu") and x.labels.get("gpu_uuid") for x in samples), name


def test_promtool_has_nothing_to_say() -> None:
    collector = SlicewiseCollector(
        Source(snapshot((NvmlError("nvmlDeviceGetUUID", "NVML_ERROR_GPU_IS_LOST"),))),
        Attributor(procs(), pods()),
        CollectorOptions("gpu-node-a"),
    )
    assert promtool_check(scrape(collector)) == ""
    aggregated = SlicewiseCollector(Source(snapshot()), Attributor(procs(), pods()), CollectorOptions("n", True))
    assert promtool_check(scrape(aggregated)) == ""


def test_aggregate_per_workload_and_device() -> None:
    two_pods = Snapshot(
        True,
        "550.90.07",
        (
            Gpu(
                index=0,
                uuid="GPU-x",
                model="NVIDIA A30",
                mig_enabled=False,
                compute_mode=ComputeMode.DEFAULT,
                memory_total_bytes=24 * GIB,
                memory_used_bytes=6 * GIB,
                sm_count=56,
                sm_active_ratio=0.6,
                processes=(Process(101, 2 * GIB, 0.3), Process(102, 3 * GIB, 0.2), Process(103, 1 * GIB, 0.1)),
            ),
        ),
    )
    collector = SlicewiseCollector(Source(two_pods), Attributor(procs(), pods()), CollectorOptions("n", True))
    s = parse(scrape(collector))
    series = s["slicewise_process_memory_used_bytes"]
    assert {(x.labels["workload"], x.value) for x in series} == {
        ("ml/trainer", 5 * GIB),
        ("triton-server.service", 1 * GIB),
    }
    assert all(x.labels["pid"] == "" and x.labels["pod"] == "" for x in series)
    assert one(s, "slicewise_process_sm_active_ratio", workload="ml/trainer") == 0.5


def test_errors_are_counted_across_scrapes() -> None:
    lost = NvmlError("nvmlDeviceGetMemoryInfo", "NVML_ERROR_UNKNOWN")
    collector = SlicewiseCollector(
        Source(snapshot((lost,)), snapshot((lost, lost)), snapshot()), Attributor(procs(), pods())
    )
    for _ in range(3):
        text = scrape(collector)
    s = parse(text)
    assert (
        one(s, "slicewise_exporter_nvml_errors_total", function="nvmlDeviceGetMemoryInfo", error="NVML_ERROR_UNKNOWN")
        == 3
    )
    assert one(s, "slicewise_exporter_processes_skipped_total") == 3


def test_a_failing_read_still_answers_with_health() -> None:
    class Broken:
        def read(self) -> Snapshot:
            raise RuntimeError("bug")

    s = parse(scrape(SlicewiseCollector(Broken(), Attributor(procs()))))
    assert one(s, "slicewise_exporter_collect_failures_total") == 1
    assert one(s, "slicewise_exporter_nvml_up") == 0
    assert "slicewise_gpu_info" not in s


def test_nvml_down_serves_health_only() -> None:
    down = Snapshot(
        False, gpus=(Gpu(0, "GPU-aaaa", up=False),), errors=(NvmlError("nvmlInit", "NVML_ERROR_DRIVER_NOT_LOADED"),)
    )
    s = parse(scrape(SlicewiseCollector(Source(down), Attributor(procs()))))
    assert one(s, "slicewise_exporter_nvml_up") == 0
    assert one(s, "slicewise_exporter_gpu_up", gpu="0", gpu_uuid="GPU-aaaa") == 0
    assert (
        one(s, "slicewise_exporter_nvml_errors_total", function="nvmlInit", error="NVML_ERROR_DRIVER_NOT_LOADED") == 1
    )
