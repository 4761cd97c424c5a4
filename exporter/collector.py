"""Snapshot -> Prometheus metric families, exactly as DESIGN.md's metric contract names them.

``SlicewiseCollector`` is a prometheus_client custom collector: each scrape calls ``collect``, which reads NVML once
(through a ``SnapshotSource``), names each pid's workload, and turns both into families. Scrapes are serialised by a
lock, because the reader keeps state between scrapes (GPM samples, utilisation timestamps) that two concurrent
scrapes would tear. There is no background reader: what a scrape returns was read for that scrape.

A value the snapshot lacks (``None``) produces no sample: absent, not zero.
"""

from __future__ import annotations

import functools
import logging
import platform
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import pynvml
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, UnknownMetricFamily
from prometheus_client.registry import Collector

from exporter.attribution.attributor import Attribution, Attributor
from exporter.health import DirectoryHealth, Health
from exporter.nvml.calls import Calls
from exporter.snapshot import Gpu, MigDevice, Process, ProcessIdentity, Snapshot
from slicewise import __version__
from slicewise.catalogue.tables import PROFILE_INFO_LABELS, DriverTable

log = logging.getLogger(__name__)

GPU_LABELS = ["gpu", "gpu_uuid"]
PROCESS_LABELS = [*GPU_LABELS, "gi", "ci", "pid", "process", "workload", "namespace", "pod", "container"]


class SnapshotSource(Protocol):
    def read(self) -> Snapshot: ...


class DirectoryHealthSource(Protocol):
    def health(self) -> DirectoryHealth: ...


class ProfileTableSource(Protocol):
    """The driver's MIG profile table per GPU model (``exporter.nvml.profiles.ProfileTables``)."""

    def update(self, snapshot: Snapshot, calls: Calls) -> list[DriverTable]: ...


@dataclass(frozen=True, slots=True)
class CollectorOptions:
    node_name: str = ""
    aggregate_processes: bool = False  # --collector.process.aggregate


class SlicewiseCollector(Collector):
    def __init__(
        self,
        source: SnapshotSource,
        attributor: Attributor,
        options: CollectorOptions = CollectorOptions(),
        kubernetes: DirectoryHealthSource | None = None,
        profiles: ProfileTableSource | None = None,
    ) -> None:
        self.source = source
        self.profiles = profiles
        self.attributor = attributor
        self.options = options
        self.kubernetes = kubernetes
        self.health = Health()
        self._lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            started = time.perf_counter()
            try:
                snapshot = self.source.read()
                pids = [p.pid for gpu in snapshot.gpus for _, p in gpu.all_processes()]
                attribution = self.attributor.identify(pids)
            except Exception:  # a bug must not turn into a failed scrape: count it, serve health
                log.exception("collect failed")
                self.health.collect_failures += 1
                snapshot, attribution = Snapshot(nvml_up=False), Attribution()
            self.health.count_errors(snapshot.errors)
            self.health.processes_skipped += attribution.skipped
            families = device_families(snapshot, attribution, self.options)
            families += self._profile_families(snapshot)
            self.health.last_collect_seconds = time.perf_counter() - started
            families += health_families(snapshot, self.health, self.kubernetes)
        return families

    def _profile_families(self, snapshot: Snapshot) -> list[Metric]:
        if self.profiles is None:
            return []
        calls = Calls()
        try:
            tables = self.profiles.update(snapshot, calls)
        except Exception:  # as for the device reading: a bug costs this family, not the scrape
            log.exception("reading the MIG profile tables failed")
            self.health.collect_failures += 1
            return []
        self.health.count_errors(calls.errors)
        return profile_families(tables)


# --- devices -------------------------------------------------------------------------------------------------------


def _gauge(name: str, documentation: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


def _fact(name: str, documentation: str, labels: Sequence[str]) -> UnknownMetricFamily:
    """A constant fact whose contract name ends in ``_count``: typed untyped, because promtool's lint reserves
    ``_count`` for histograms and summaries on every other type, and ``promtool check metrics`` must stay silent."""
    return UnknownMetricFamily(name, documentation, labels=labels)


def device_families(snapshot: Snapshot, attribution: Attribution, options: CollectorOptions) -> list[Metric]:
    gpu_info = _gauge(
        "slicewise_gpu_info",
        "1 per GPU, with its model, driver, MIG mode, compute mode and whether an MPS server runs on it.",
        [*GPU_LABELS, "model", "driver_version", "mig_mode", "compute_mode", "mps", "node"],
    )
    # source: "device" (the GPU's own figure) or "gpu_instances" (MIG mode, unprivileged: the sum of its GPU
    # instances, since NVML gives a MIG-enabled GPU's memory to privileged callers only).
    memory_labels = [*GPU_LABELS, "source"]
    gpu_mem_total = _gauge("slicewise_gpu_memory_total_bytes", "Framebuffer memory of the GPU.", memory_labels)
    gpu_mem_used = _gauge("slicewise_gpu_memory_used_bytes", "Framebuffer memory in use on the GPU.", memory_labels)
    gpu_sms = _fact("slicewise_gpu_sm_count", "Streaming multiprocessors of the whole GPU.", GPU_LABELS)
    gpu_active = _gauge(
        "slicewise_gpu_sm_active_ratio",
        "Fraction of time the GPU was busy running kernels (NVML utilization); absent in MIG mode.",
        GPU_LABELS,
    )
    mig_info = _gauge(
        "slicewise_mig_info",
        "1 per MIG device, with its GPU-instance profile and placement.",
        [*GPU_LABELS, "gi", "ci", "mig_uuid", "profile", "placement_start", "placement_size"],
    )
    mig_labels = [*GPU_LABELS, "gi", "profile"]
    mig_mem_total = _gauge("slicewise_mig_memory_total_bytes", "Memory of the MIG GPU instance.", mig_labels)
    mig_mem_used = _gauge("slicewise_mig_memory_used_bytes", "Memory in use in the MIG GPU instance.", mig_labels)
    device_labels = [*GPU_LABELS, "gi", "ci", "profile"]
    mig_sms = _fact("slicewise_mig_sm_count", "Streaming multiprocessors of the MIG device.", device_labels)
    mig_active = _gauge(
        "slicewise_mig_sm_active_ratio",
        "Fraction of the MIG device's SMs busy since the previous scrape (GPM; Hopper and newer).",
        device_labels,
    )
    mig_occupancy = _gauge(
        "slicewise_mig_sm_occupancy_ratio",
        "Active warps over the theoretical maximum on the MIG device since the previous scrape (GPM).",
        device_labels,
    )
    mig_dram = _gauge(
        "slicewise_mig_dram_active_ratio",
        "DRAM bandwidth used over the maximum on the MIG device since the previous scrape (GPM).",
        device_labels,
    )
    proc_mem = _gauge(
        "slicewise_process_memory_used_bytes", "GPU memory used by the process on this device.", PROCESS_LABELS
    )
    proc_active = _gauge(
        "slicewise_process_sm_active_ratio",
        "Fraction of time the process ran kernels on this GPU since the previous scrape (NVML; not on MIG).",
        PROCESS_LABELS,
    )
    driver = snapshot.driver_version or ""
    for gpu in snapshot.gpus:
        if not gpu.up:
            continue
        g = [str(gpu.index), gpu.uuid]
        if gpu.mig_enabled is not None:
            gpu_info.add_metric(
                [
                    *g,
                    gpu.model or "",
                    driver,
                    "enabled" if gpu.mig_enabled else "disabled",
                    (gpu.compute_mode.value if gpu.compute_mode else "Unknown"),
                    "active" if gpu.mps_active else "inactive",
                    options.node_name,
                ],
                1,
            )
        _add(gpu_mem_total, [*g, gpu.memory_source.value], gpu.memory_total_bytes)
        _add(gpu_mem_used, [*g, gpu.memory_source.value], gpu.memory_used_bytes)
        _add(gpu_sms, g, gpu.sm_count)
        _add(gpu_active, g, gpu.sm_active_ratio)
        instances_done: set[int] = set()
        for mig in gpu.mig_devices:
            gi, ci = str(mig.gi), str(mig.ci)
            mig_info.add_metric(
                [*g, gi, ci, mig.uuid, mig.profile, _text(mig.placement_start), _text(mig.placement_size)], 1
            )
            if mig.gi not in instances_done:  # memory belongs to the GPU instance: once, whatever its CIs
                instances_done.add(mig.gi)
                _add(mig_mem_total, [*g, gi, mig.profile], mig.memory_total_bytes)
                _add(mig_mem_used, [*g, gi, mig.profile], mig.memory_used_bytes)
            d = [*g, gi, ci, mig.profile]
            _add(mig_sms, d, mig.sm_count)
            _add(mig_active, d, mig.sm_active_ratio)
            _add(mig_occupancy, d, mig.sm_occupancy_ratio)
            _add(mig_dram, d, mig.dram_active_ratio)
        if options.aggregate_processes:
            _add_aggregated(proc_mem, proc_active, gpu, attribution.identities)
        else:
            for device, proc in gpu.all_processes():
                identity = attribution.identities.get(proc.pid)
                if identity is None:
                    continue  # exited before it could be named: skipped and counted
                labels = _process_labels(gpu, device, proc, identity)
                _add(proc_mem, labels, proc.memory_used_bytes)
                _add(proc_active, labels, proc.sm_active_ratio)
    return [
        gpu_info,
        gpu_mem_total,
        gpu_mem_used,
        gpu_sms,
        gpu_active,
        mig_info,
        mig_mem_total,
        mig_mem_used,
        mig_sms,
        mig_active,
        mig_occupancy,
        mig_dram,
        proc_mem,
        proc_active,
    ]


def profile_families(tables: Sequence[DriverTable]) -> list[Metric]:
    """The driver's MIG profile table per GPU model: one info series per profile, with the placements as labels
    (they are what the profile is, not a measurement), and its memory and SMs as values. Constant while the exporter
    runs; the advisor reads them for a GPU model its catalogue lacks."""
    keys = ["model", "profile"]
    info = _gauge(
        "slicewise_mig_profile_info",
        "1 per MIG GPU-instance profile the driver offers on this GPU model, with its ids, slices and placements.",
        list(PROFILE_INFO_LABELS),
    )
    memory = _gauge("slicewise_mig_profile_memory_bytes", "Memory of one GPU instance of the MIG profile.", keys)
    sms = _fact("slicewise_mig_profile_sm_count", "Streaming multiprocessors of one GPU instance of the profile.", keys)
    for table in tables:
        for p in table.profiles:
            info.add_metric(
                [
                    table.model,
                    p.name,
                    str(p.profile_id),
                    str(p.nvml_enum),
                    table.pci_device_id,
                    str(p.compute_slices),
                    str(p.instances_max),
                    ",".join(str(s) for s in p.placement_starts),
                    str(p.placement_size),
                    str(p.copy_engines),
                    str(p.decoders),
                    str(p.jpeg),
                    str(p.ofa),
                ],
                1,
            )
            memory.add_metric([table.model, p.name], p.memory_mib * 1024 * 1024)
            sms.add_metric([table.model, p.name], p.sm_count)
    return [info, memory, sms] if tables else []


def _text(value: int | None) -> str:
    return "" if value is None else str(value)


def _add(family: GaugeMetricFamily | UnknownMetricFamily, labels: list[str], value: float | None) -> None:
    if value is not None:
        family.add_metric(labels, value)


def _process_labels(gpu: Gpu, mig: MigDevice | None, proc: Process, identity: ProcessIdentity) -> list[str]:
    w = identity.workload
    return [
        str(gpu.index),
        gpu.uuid,
        str(mig.gi) if mig else "",
        str(mig.ci) if mig else "",
        str(proc.pid),
        identity.process,
        w.name,
        w.namespace,
        w.pod,
        w.container,
    ]


def _add_aggregated(
    proc_mem: GaugeMetricFamily,
    proc_active: GaugeMetricFamily,
    gpu: Gpu,
    identities: dict[int, ProcessIdentity],
) -> None:
    """One series per workload and device: memory summed, SM activity summed over the processes that have one."""
    memory: dict[tuple[str, ...], int] = {}
    active: dict[tuple[str, ...], float] = {}
    for mig, proc in gpu.all_processes():
        identity = identities.get(proc.pid)
        if identity is None:
            continue
        w = identity.workload
        key = (
            str(gpu.index),
            gpu.uuid,
            str(mig.gi) if mig else "",
            str(mig.ci) if mig else "",
            "",
            "",
            w.name,
            w.namespace,
            "",
            "",
        )
        if proc.memory_used_bytes is not None:
            memory[key] = memory.get(key, 0) + proc.memory_used_bytes
        if proc.sm_active_ratio is not None:
            active[key] = min(1.0, active.get(key, 0.0) + proc.sm_active_ratio)
    for labels, value in memory.items():
        proc_mem.add_metric(list(labels), value)
    for labels, ratio in active.items():
        proc_active.add_metric(list(labels), ratio)


# --- the exporter's own health -------------------------------------------------------------------------------------


def health_families(snapshot: Snapshot, health: Health, kubernetes: DirectoryHealthSource | None) -> list[Metric]:
    build = _gauge(
        "slicewise_exporter_build_info",
        "1, with the exporter's version and the NVML bindings it runs on.",
        ["version", "pynvml_version", "python_version"],
    )
    build.add_metric([__version__, _pynvml_version(), platform.python_version()], 1)
    duration = GaugeMetricFamily(
        "slicewise_exporter_collect_duration_seconds",
        "Time this scrape spent reading NVML and naming workloads.",
        value=health.last_collect_seconds or 0.0,
    )
    nvml_up = GaugeMetricFamily(
        "slicewise_exporter_nvml_up",
        "1 when NVML is initialised, 0 while the driver is not ready.",
        value=1 if snapshot.nvml_up else 0,
    )
    gpu_up = _gauge("slicewise_exporter_gpu_up", "1 for a GPU that answered this scrape, 0 for a lost one.", GPU_LABELS)
    for gpu in snapshot.gpus:
        gpu_up.add_metric([str(gpu.index), gpu.uuid], 1 if gpu.up else 0)
    errors = CounterMetricFamily(
        "slicewise_exporter_nvml_errors",
        "NVML calls that failed, by NVML function and error (not-supported answers are not errors).",
        labels=["function", "error"],
    )
    for error, count in sorted(health.errors_snapshot().items(), key=lambda item: (item[0].function, item[0].error)):
        errors.add_metric([error.function, error.error], count)
    skipped = CounterMetricFamily(
        "slicewise_exporter_processes_skipped",
        "GPU processes left out because they exited (or were unreadable in procfs) before they could be named.",
        value=health.processes_skipped,
    )
    failures = CounterMetricFamily(
        "slicewise_exporter_collect_failures",
        "Scrapes whose device reading failed unexpectedly (a bug: see the exporter's log).",
        value=health.collect_failures,
    )
    families: list[Metric] = [build, duration, nvml_up, gpu_up, errors, skipped, failures]
    if kubernetes is not None:
        state = kubernetes.health()
        families.append(
            GaugeMetricFamily("slicewise_exporter_kubernetes_pods", "Pods of this node in the cache.", value=state.pods)
        )
        families.append(
            CounterMetricFamily(
                "slicewise_exporter_kubernetes_refresh_errors",
                "Failed pod listings from the Kubernetes API server.",
                value=state.errors,
            )
        )
        if state.last_success_unix is not None:
            families.append(
                GaugeMetricFamily(
                    "slicewise_exporter_kubernetes_last_refresh_timestamp_seconds",
                    "When this node's pods were last listed successfully.",
                    value=state.last_success_unix,
                )
            )
    return families


@functools.cache
def _pynvml_version() -> str:
    try:
        from importlib.metadata import version

        return version("nvidia-ml-py")
    except Exception:
        return getattr(pynvml, "__version__", "")
