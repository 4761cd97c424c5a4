"""Read every GPU, MIG device and process through pynvml into a ``Snapshot``: once per scrape, typed, fault-tolerant.

What is read where, and why:
- Whole GPU: name, memory (``nvmlDeviceGetMemoryInfo`` v2, which excludes driver-reserved memory, else v1), MIG
  mode, compute mode, SM count (CUDA cores / cores per SM of its compute capability: a fixed fact of the chip,
  since NVML has no SM count for a whole GPU), and busy fraction (``nvmlDeviceGetUtilizationRates``; NVML does
  not give it for a GPU in MIG mode, so it is absent there).
- Processes on a whole GPU: the compute and graphics lists, plus ``nvmlDeviceGetMPSComputeRunningProcesses`` for
  MPS clients. The MPS server (``nvidia-cuda-mps-server``) is a compute process too; it is dropped (it holds no
  workload's memory of its own) and marks the GPU as running MPS. Per-process SM activity comes from
  ``nvmlDeviceGetProcessUtilization``, averaged over the samples since the previous scrape; a listed process with
  no sample in that interval ran no kernels, which NVML reports as no sample, so it is 0. The first read of a GPU
  only learns the newest sample's timestamp (asking with ``since = 0`` returns the whole buffer, an average over
  an unknown past), so per-process activity appears from the second read on. A scrape less than a
  second after the previous one repeats the previous interval's figures instead (as GPM does, see ``gpm``).
- MIG: each MIG device handle gives GI/CI ids, SM count and memory (of its GPU instance), and its own process
  lists (memory per process is only reported on the MIG device handle). GPU-instance profile and placement come
  from the GPU instance (cached per MIG device UUID, which changes whenever the instance is recreated). GPM gives
  per-GPU-instance SM activity, occupancy and DRAM activity on Hopper and newer; a GPU instance split into several
  compute instances is measured per compute instance on its MIG device handle (a GI-wide figure would be a guess
  for each CI), where the driver accepts that. An unused MIG slot (NOT_FOUND or INVALID_ARGUMENT) is skipped.
- Memory of a MIG-enabled GPU: NVML gives it to privileged callers only; an unprivileged one gets the sum of the
  GPU instances (``MemorySource.GPU_INSTANCES``), said once in the log.
- Process lists: the symbol and struct each driver generation needs (``processes``).
Facts that cannot change while a GPU keeps its UUID (name, SM count) are read once per UUID.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import pynvml

from exporter.nvml.calls import CAPABILITY, CAPABILITY_OR_ABSENT, Calls, GpuLost, NvmlGone
from exporter.nvml.gpm import MIN_INTERVAL_S, GpmFigures, GpmSampler
from exporter.nvml.processes import ProcessLists
from exporter.nvml.session import NvmlSession
from exporter.snapshot import ComputeMode, Gpu, MemorySource, MigDevice, Process, Snapshot
from slicewise.catalogue import find_model

log = logging.getLogger(__name__)

MPS_SERVER_NAME = "nvidia-cuda-mps-server"

# CUDA cores per SM by compute capability (NVIDIA CUDA C Programming Guide, "Compute Capabilities"): 64 on GP100,
# Volta, Turing and GA100; 128 on the other Pascal and Ampere chips, Ada, Hopper and Blackwell.
_CORES_PER_SM = {
    (6, 0): 64,
    (6, 1): 128,
    (7, 0): 64,
    (7, 2): 64,
    (7, 5): 64,
    (8, 0): 64,
    (8, 6): 128,
    (8, 7): 128,
    (8, 9): 128,
    (9, 0): 128,
    (10, 0): 128,
    (12, 0): 128,
}

_COMPUTE_MODES = {
    pynvml.NVML_COMPUTEMODE_DEFAULT: ComputeMode.DEFAULT,
    pynvml.NVML_COMPUTEMODE_EXCLUSIVE_THREAD: ComputeMode.EXCLUSIVE_THREAD,
    pynvml.NVML_COMPUTEMODE_PROHIBITED: ComputeMode.PROHIBITED,
    pynvml.NVML_COMPUTEMODE_EXCLUSIVE_PROCESS: ComputeMode.EXCLUSIVE_PROCESS,
}


@dataclass(frozen=True, slots=True)
class _GpuFacts:
    """What never changes while a GPU keeps its UUID."""

    model: str | None
    sm_count: int | None


@dataclass(frozen=True, slots=True)
class _GpuInstance:
    profile: str
    placement_start: int | None
    placement_size: int | None


@dataclass(frozen=True, slots=True)
class _MigRead:
    handle: Any
    gi: int
    ci: int
    uuid: str
    instance: _GpuInstance
    memory: tuple[int | None, int | None]
    sm_count: int | None
    processes: tuple[Process, ...]
    mps_active: bool


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class NvmlReader:
    """Reads a ``Snapshot`` per call of ``read``; keeps the little state that spans scrapes (see module doc)."""

    def __init__(
        self,
        session: NvmlSession,
        gpm: bool = True,
        process_utilization: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self._use_gpm = gpm
        self._use_process_utilization = process_utilization
        self._facts: dict[str, _GpuFacts] = {}
        self._uuid_by_index: dict[int, str] = {}
        self._mig_mode: dict[str, bool] = {}
        self._compute_mode: dict[str, ComputeMode] = {}
        self._instances: dict[str, _GpuInstance] = {}
        self._profile_names: dict[tuple[str, int], str] = {}
        self._placement_denied: dict[str, bool] = {}
        self._clock = clock
        self._util_timestamp: dict[str, int] = {}
        self._util_last: dict[str, tuple[float, dict[int, float]]] = {}  # per GPU: when read, ratio by pid
        self._mps_server_pids: dict[int, bool] = {}
        self._pids_seen: set[int] = set()
        self._mig_seen: set[str] = set()  # MIG device UUIDs read this scrape (instances of others are forgotten)
        self._memory_v2: bool | None = None
        self._parent_memory_denied: set[str] = set()  # MIG-enabled GPUs whose own memory NVML refuses us
        self._lists = ProcessLists()
        self._gpm = GpmSampler(clock)

    def read(self) -> Snapshot:
        calls = Calls()
        init_errors = self.session.drain_errors()
        if not self.session.ensure():
            init_errors += self.session.drain_errors()
            return Snapshot(nvml_up=False, gpus=tuple(self._all_down()), errors=tuple(init_errors))
        self._pids_seen = set()
        self._mig_seen = set()
        try:
            driver = calls.get("nvmlSystemGetDriverVersion", pynvml.nvmlSystemGetDriverVersion)
            count = calls.get("nvmlDeviceGetCount", pynvml.nvmlDeviceGetCount)
            if count is None:
                gpus = self._all_down()
            else:
                gpus = [self._read_gpu(calls, index) for index in range(count)]
                gpus += [self._down(i) for i in sorted(self._uuid_by_index) if i >= count]
            self._gpm.end_scrape()
            self._forget_pids_not_seen()
            # A MIG device's UUID changes whenever its instance is re-created: drop the instances not seen now.
            self._instances = {uuid: gi for uuid, gi in self._instances.items() if uuid in self._mig_seen}
            snapshot = Snapshot(True, _text(driver) if driver else None, tuple(gpus), tuple(init_errors + calls.errors))
        except NvmlGone as gone:
            self.session.lost(str(gone))
            self._gpm.reset()
            self._lists.reset()
            self._util_timestamp.clear()
            self._util_last.clear()
            return Snapshot(nvml_up=False, gpus=tuple(self._all_down()), errors=tuple(init_errors + calls.errors))
        return snapshot

    def close(self) -> None:
        self._gpm.reset()

    def diagnostics(self) -> dict[str, object]:
        """What this reader learned about the driver, for ``scripts/real-gpu-check``'s report."""
        versions = self._lists.versions
        return {
            "process_list_version": versions[0].name if versions else None,
            "gpu_memory_from_gpu_instances": sorted(self._parent_memory_denied),
            "placement_denied": sorted(u for u, denied in self._placement_denied.items() if denied),
            "memory_info_v2": self._memory_v2,
            **self._gpm.diagnostics(),
        }

    # --- one GPU -------------------------------------------------------------------------------------------------

    def _down(self, index: int) -> Gpu:
        return Gpu(index=index, uuid=self._uuid_by_index.get(index, ""), up=False)

    def _all_down(self) -> list[Gpu]:
        return [self._down(i) for i in sorted(self._uuid_by_index)]

    def _read_gpu(self, calls: Calls, index: int) -> Gpu:
        try:
            handle = calls.get("nvmlDeviceGetHandleByIndex", lambda: pynvml.nvmlDeviceGetHandleByIndex(index))
            if handle is None:
                return self._down(index)
            uuid_raw = calls.get("nvmlDeviceGetUUID", lambda: pynvml.nvmlDeviceGetUUID(handle))
            if uuid_raw is None:  # no identity, no series: every series carries gpu_uuid
                return self._down(index)
            uuid = _text(uuid_raw)
            if self._uuid_by_index.get(index) != uuid:
                self._uuid_by_index[index] = uuid
                self._gpm.forget_gpu(uuid)
            return self._read_up_gpu(calls, index, handle, uuid)
        except GpuLost:
            log.debug("GPU %d is lost", index)
            return self._down(index)

    def _read_up_gpu(self, calls: Calls, index: int, handle: Any, uuid: str) -> Gpu:
        facts = self._facts.get(uuid) or self._read_facts(calls, handle, uuid)
        mig_enabled = self._read_mig_mode(calls, handle, uuid)
        memory_total, memory_used = self._gpu_memory(calls, handle, uuid, bool(mig_enabled))
        compute_mode = self._read_compute_mode(calls, handle, uuid)
        if mig_enabled:
            mig_devices, mps_active = self._read_mig_devices(calls, handle, uuid)
            source = MemorySource.DEVICE
            if uuid in self._parent_memory_denied:
                source = MemorySource.GPU_INSTANCES
                memory_total, memory_used = _sum_of_instances(mig_devices)
            return Gpu(
                index=index,
                uuid=uuid,
                model=facts.model,
                mig_enabled=True,
                compute_mode=compute_mode,
                mps_active=mps_active,
                memory_total_bytes=memory_total,
                memory_used_bytes=memory_used,
                memory_source=source,
                sm_count=facts.sm_count,
                mig_devices=tuple(mig_devices),
            )
        rates = calls.get("nvmlDeviceGetUtilizationRates", lambda: pynvml.nvmlDeviceGetUtilizationRates(handle))
        processes, mps_active = self._read_processes(calls, handle, graphics=True)
        if self._use_process_utilization and processes:
            processes = self._with_sm_activity(calls, handle, uuid, processes)
        return Gpu(
            index=index,
            uuid=uuid,
            model=facts.model,
            mig_enabled=mig_enabled,
            compute_mode=compute_mode,
            mps_active=mps_active,
            memory_total_bytes=memory_total,
            memory_used_bytes=memory_used,
            sm_count=facts.sm_count,
            sm_active_ratio=None if rates is None else min(1.0, rates.gpu / 100.0),
            processes=tuple(processes),
        )

    def _read_facts(self, calls: Calls, handle: Any, uuid: str) -> _GpuFacts:
        name_raw = calls.get("nvmlDeviceGetName", lambda: pynvml.nvmlDeviceGetName(handle))
        name = _text(name_raw) if name_raw is not None else None
        sm_count = None
        cores = calls.get("nvmlDeviceGetNumGpuCores", lambda: pynvml.nvmlDeviceGetNumGpuCores(handle))
        capability = calls.get(
            "nvmlDeviceGetCudaComputeCapability", lambda: pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        )
        per_sm = _CORES_PER_SM.get(tuple(capability)) if capability is not None else None
        if cores and per_sm and cores % per_sm == 0:
            sm_count = cores // per_sm
        elif name is not None and (model := find_model(name)) is not None:
            sm_count = model.sm_count  # the catalogue's figure for this exact product name
        facts = _GpuFacts(model=name, sm_count=sm_count)
        if name is not None:  # a failed read is tried again next scrape
            self._facts[uuid] = facts
        return facts

    def _gpu_memory(self, calls: Calls, handle: Any, uuid: str, mig_enabled: bool) -> tuple[int | None, int | None]:
        """The GPU's own memory; in MIG mode, where NVML refuses it to this caller, (None, None) once logged.

        NVML gives a MIG-enabled GPU's memory to privileged callers only (NO_PERMISSION in an unprivileged
        container: nvidia-container-toolkit#842, k8s-device-plugin#1683). The caller then gets the sum of its
        GPU instances instead (``MemorySource.GPU_INSTANCES``), and the refusal is not an error every scrape.
        """
        if mig_enabled and uuid in self._parent_memory_denied:
            return None, None
        try:
            return self._memory(calls, handle, raise_denied=mig_enabled)
        except _Denied:
            self._parent_memory_denied.add(uuid)
            log.warning(
                "GPU %s: NVML refuses this (unprivileged) caller the memory of a MIG-enabled GPU; "
                'slicewise_gpu_memory_*_bytes{source="gpu_instances"} is the sum of its GPU instances instead',
                uuid,
            )
            return None, None

    def _memory(self, calls: Calls, handle: Any, raise_denied: bool = False) -> tuple[int | None, int | None]:
        if self._memory_v2 is not False:
            try:
                info = pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
            except pynvml.NVMLError as exc:
                code = int(exc.value)
                if raise_denied and code == pynvml.NVML_ERROR_NO_PERMISSION:
                    raise _Denied from exc
                if code not in CAPABILITY | {pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH}:
                    calls.failed("nvmlDeviceGetMemoryInfo_v2", exc)
                    return None, None
                self._memory_v2 = False
            else:
                self._memory_v2 = True
                return int(info.total), int(info.used)
        try:
            info = pynvml.nvmlDeviceGetMemoryInfo(handle)
        except pynvml.NVMLError as exc:
            if raise_denied and int(exc.value) == pynvml.NVML_ERROR_NO_PERMISSION:
                raise _Denied from exc
            calls.failed("nvmlDeviceGetMemoryInfo", exc)
            return None, None
        return int(info.total), int(info.used)

    def _read_mig_mode(self, calls: Calls, handle: Any, uuid: str) -> bool | None:
        try:
            current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
        except pynvml.NVMLError as exc:
            if int(exc.value) in CAPABILITY:  # not a MIG-capable GPU
                self._mig_mode[uuid] = False
                return False
            calls.failed("nvmlDeviceGetMigMode", exc)
            return self._mig_mode.get(uuid)  # the last mode read: MIG mode only changes with a GPU reset
        enabled = current == pynvml.NVML_DEVICE_MIG_ENABLE
        self._mig_mode[uuid] = enabled
        return enabled

    def _read_compute_mode(self, calls: Calls, handle: Any, uuid: str) -> ComputeMode | None:
        mode = calls.get("nvmlDeviceGetComputeMode", lambda: pynvml.nvmlDeviceGetComputeMode(handle))
        if mode is None:
            return self._compute_mode.get(uuid)
        known = _COMPUTE_MODES.get(int(mode), ComputeMode.UNKNOWN)
        self._compute_mode[uuid] = known
        return known

    # --- processes -----------------------------------------------------------------------------------------------

    def _read_processes(self, calls: Calls, handle: Any, graphics: bool) -> tuple[list[Process], bool]:
        """Processes on one device (GPU or MIG device) and whether an MPS server runs there."""
        compute = self._lists.get(calls, "Compute", handle)
        mps = self._lists.get(calls, "MPSCompute", handle)
        listed: dict[int, Process] = {}
        for info in mps or ():
            listed[info.pid] = Process(info.pid, info.used_memory, mps_client=True)
        mps_active = bool(listed)
        others = list(compute or ())
        if graphics:
            others += self._lists.get(calls, "Graphics", handle) or []
        for info in others:
            pid = info.pid
            self._pids_seen.add(pid)
            if pid in listed:
                continue
            if self._is_mps_server(calls, pid):
                mps_active = True
                continue
            listed[pid] = Process(pid, info.used_memory)
        return list(listed.values()), mps_active

    def _is_mps_server(self, calls: Calls, pid: int) -> bool:
        known = self._mps_server_pids.get(pid)
        if known is None:
            name = calls.get(
                "nvmlSystemGetProcessName", lambda: pynvml.nvmlSystemGetProcessName(pid), CAPABILITY_OR_ABSENT
            )
            if name is None:
                return False  # unknown now (exited, or not visible): asked again next scrape
            known = _text(name).rsplit("/", 1)[-1] == MPS_SERVER_NAME
            self._mps_server_pids[pid] = known
        return known

    def _forget_pids_not_seen(self) -> None:
        for pid in [p for p in self._mps_server_pids if p not in self._pids_seen]:
            del self._mps_server_pids[pid]

    def _with_sm_activity(self, calls: Calls, handle: Any, uuid: str, processes: list[Process]) -> list[Process]:
        now = self._clock()
        last = self._util_last.get(uuid)
        if last is not None and now - last[0] < MIN_INTERVAL_S:
            return [Process(p.pid, p.memory_used_bytes, last[1].get(p.pid), p.mps_client) for p in processes]
        first = uuid not in self._util_timestamp
        since = self._util_timestamp.get(uuid, 0)
        try:
            samples = pynvml.nvmlDeviceGetProcessUtilization(handle, since)
        except pynvml.NVMLError as exc:
            code = int(exc.value)
            if code in (pynvml.NVML_ERROR_NOT_FOUND, pynvml.NVML_SUCCESS):  # no samples since ``since``: none ran
                samples = []
            elif code in CAPABILITY:
                return processes
            else:
                calls.failed("nvmlDeviceGetProcessUtilization", exc)
                return processes
        totals: dict[int, list[int]] = {}
        newest = since
        for sample in samples:
            totals.setdefault(int(sample.pid), []).append(int(sample.smUtil))
            newest = max(newest, int(sample.timeStamp))
        self._util_timestamp[uuid] = newest
        if first:
            # ``since = 0`` returned the driver's whole sample buffer, an average over an unknown past: it only
            # sets where the next read starts, and this read publishes no per-process activity.
            self._util_last[uuid] = (now, {})
            return [Process(p.pid, p.memory_used_bytes, None, p.mps_client) for p in processes]
        ratios = {pid: min(1.0, sum(values) / len(values) / 100.0) for pid, values in totals.items()}
        out = [Process(p.pid, p.memory_used_bytes, ratios.get(p.pid, 0.0), p.mps_client) for p in processes]
        self._util_last[uuid] = (now, {p.pid: p.sm_active_ratio or 0.0 for p in out})
        return out

    # --- MIG -----------------------------------------------------------------------------------------------------

    def _read_mig_devices(self, calls: Calls, parent: Any, gpu_uuid: str) -> tuple[list[MigDevice], bool]:
        slots = calls.get("nvmlDeviceGetMaxMigDeviceCount", lambda: pynvml.nvmlDeviceGetMaxMigDeviceCount(parent))
        reads: list[_MigRead] = []
        for slot in range(slots or 0):
            handle = calls.get(
                "nvmlDeviceGetMigDeviceHandleByIndex",
                partial(pynvml.nvmlDeviceGetMigDeviceHandleByIndex, parent, slot),
                _EMPTY_SLOT,
            )
            if handle is not None:
                read = self._read_mig_device(calls, parent, gpu_uuid, handle)
                if read is not None:
                    reads.append(read)
        gpm = self._gpm_figures(calls, parent, gpu_uuid, reads)
        devices = []
        for r in reads:
            figures = gpm.get(r.uuid)
            devices.append(
                MigDevice(
                    gi=r.gi,
                    ci=r.ci,
                    uuid=r.uuid,
                    profile=r.instance.profile,
                    placement_start=r.instance.placement_start,
                    placement_size=r.instance.placement_size,
                    memory_total_bytes=r.memory[0],
                    memory_used_bytes=r.memory[1],
                    sm_count=r.sm_count,
                    sm_active_ratio=figures.sm_active_ratio if figures else None,
                    sm_occupancy_ratio=figures.sm_occupancy_ratio if figures else None,
                    dram_active_ratio=figures.dram_active_ratio if figures else None,
                    processes=r.processes,
                )
            )
        return devices, any(r.mps_active for r in reads)

    def _read_mig_device(self, calls: Calls, parent: Any, gpu_uuid: str, handle: Any) -> _MigRead | None:
        uuid_raw = calls.get("nvmlDeviceGetUUID", lambda: pynvml.nvmlDeviceGetUUID(handle))
        gi = calls.get("nvmlDeviceGetGpuInstanceId", lambda: pynvml.nvmlDeviceGetGpuInstanceId(handle))
        ci = calls.get("nvmlDeviceGetComputeInstanceId", lambda: pynvml.nvmlDeviceGetComputeInstanceId(handle))
        if uuid_raw is None or gi is None or ci is None:
            return None  # no identity for its series
        uuid = _text(uuid_raw)
        self._mig_seen.add(uuid)
        attributes = calls.get("nvmlDeviceGetAttributes", lambda: pynvml.nvmlDeviceGetAttributes(handle))
        instance = self._instances.get(uuid) or self._read_instance(
            calls, parent, handle, gpu_uuid, uuid, gi, attributes
        )
        if instance is None:
            return None
        processes, mps_active = self._read_processes(calls, handle, graphics=False)
        return _MigRead(
            handle=handle,
            gi=int(gi),
            ci=int(ci),
            uuid=uuid,
            instance=instance,
            memory=self._memory(calls, handle),
            sm_count=int(attributes.multiprocessorCount) if attributes is not None else None,
            processes=tuple(processes),
            mps_active=mps_active,
        )

    def _read_instance(
        self, calls: Calls, parent: Any, handle: Any, gpu_uuid: str, mig_uuid: str, gi: int, attributes: Any
    ) -> _GpuInstance | None:
        """Profile and placement of the MIG device's GPU instance.

        The profile comes from the MIG device's own name (``NVIDIA H100 80GB HBM3 MIG 1g.10gb``, or ``MIG
        1c.3g.40gb`` for one of several compute instances), which any user may read. The placement needs the GPU
        instance handle, and NVML gives that to root only: without it the placement labels stay empty (said once
        in the log, not counted as an error every scrape).
        """
        device_name = calls.get("nvmlDeviceGetName", lambda: pynvml.nvmlDeviceGetName(handle))
        name = _profile_from_device_name(_text(device_name)) if device_name is not None else None
        info = self._instance_info(calls, parent, gpu_uuid, gi)
        if name is None and info is not None:
            name = self._profile_name(calls, parent, gpu_uuid, int(info.profileId))
        if name is None and attributes is not None:
            # NVML's own naming rule for GPU-instance profiles: <slices>g.<memory rounded to GB>gb.
            name = f"{attributes.gpuInstanceSliceCount}g.{round(attributes.memorySizeMB / 1024)}gb"
        if name is None:
            return None
        found = _GpuInstance(
            profile=name,
            placement_start=int(info.placement.start) if info is not None else None,
            placement_size=int(info.placement.size) if info is not None else None,
        )
        if info is not None or self._placement_denied.get(gpu_uuid):
            self._instances[mig_uuid] = found
        return found

    def _instance_info(self, calls: Calls, parent: Any, gpu_uuid: str, gi: int) -> Any:
        if self._placement_denied.get(gpu_uuid):
            return None
        try:
            instance = pynvml.nvmlDeviceGetGpuInstanceById(parent, gi)
        except pynvml.NVMLError as exc:
            if int(exc.value) == pynvml.NVML_ERROR_NO_PERMISSION:
                self._placement_denied[gpu_uuid] = True
                log.warning(
                    "GPU %s: NVML gives MIG GPU instances to root only; placement_start/placement_size stay empty",
                    gpu_uuid,
                )
            else:
                calls.failed("nvmlDeviceGetGpuInstanceById", exc, CAPABILITY_OR_ABSENT)
            return None
        return calls.get("nvmlGpuInstanceGetInfo", lambda: pynvml.nvmlGpuInstanceGetInfo(instance))

    def _profile_name(self, calls: Calls, parent: Any, gpu_uuid: str, profile_id: int) -> str | None:
        key = (gpu_uuid, profile_id)
        if key in self._profile_names:
            return self._profile_names[key]
        info = calls.get(
            "nvmlDeviceGetGpuInstanceProfileInfoByIdV",
            lambda: pynvml.nvmlDeviceGetGpuInstanceProfileInfoById(parent, profile_id),
            CAPABILITY_OR_ABSENT,
        )
        if info is None:  # older drivers: walk the profile enumeration for the matching id
            for profile in range(pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
                candidate = calls.get(
                    "nvmlDeviceGetGpuInstanceProfileInfoV",
                    partial(pynvml.nvmlDeviceGetGpuInstanceProfileInfo, parent, profile),
                    CAPABILITY_OR_ABSENT | {pynvml.NVML_ERROR_INVALID_ARGUMENT},
                )
                if candidate is not None and int(candidate.id) == profile_id:
                    info = candidate
                    break
        if info is None:
            return None
        name = _text(info.name).removeprefix("MIG ").strip()
        self._profile_names[key] = name
        return name

    def _gpm_figures(
        self, calls: Calls, parent: Any, gpu_uuid: str, reads: Iterable[_MigRead]
    ) -> dict[str, GpmFigures]:
        """GPM figures by MIG device UUID: per GPU instance where it holds one compute instance, else per compute
        instance through its own handle (see ``gpm``)."""
        if not self._use_gpm:
            return {}
        by_gi: dict[int, list[_MigRead]] = {}
        for r in reads:
            by_gi.setdefault(r.gi, []).append(r)
        if not by_gi or not self._gpm.supported(calls, parent, gpu_uuid):
            return {}
        figures = {}
        for gi, members in sorted(by_gi.items()):
            if len(members) == 1:
                found = self._gpm.mig(calls, parent, gpu_uuid, gi, members[0].uuid)
                if found is not None:
                    figures[members[0].uuid] = found
                continue
            for r in members:
                found = self._gpm.mig_device(calls, r.handle, gpu_uuid, r.uuid)
                if found is not None:
                    figures[r.uuid] = found
        return figures


# An unused MIG slot answers NOT_FOUND (nvml.h) or, on some drivers, INVALID_ARGUMENT; NVIDIA's own enumerators
# (go-nvlib's VisitMigDevices, k8s-device-plugin) skip both. Neither is an error.
_EMPTY_SLOT = CAPABILITY_OR_ABSENT | {pynvml.NVML_ERROR_INVALID_ARGUMENT}

_MIG_NAME = re.compile(r" MIG (?:\d+c\.)?(\d+g\.\S+)$")


def _profile_from_device_name(name: str) -> str | None:
    """``NVIDIA A100-SXM4-80GB MIG 1c.3g.40gb`` -> ``3g.40gb`` (the GPU-instance profile); None if not a MIG name."""
    found = _MIG_NAME.search(name.strip())
    return found.group(1) if found else None


class _Denied(Exception):
    """NVML_ERROR_NO_PERMISSION where the caller's privileges decide, not a failure."""


def _sum_of_instances(devices: Iterable[MigDevice]) -> tuple[int | None, int | None]:
    """Memory of every GPU instance together (each once, whatever its compute instances); None if one is unknown."""
    by_gi: dict[int, MigDevice] = {}
    for d in devices:
        by_gi.setdefault(d.gi, d)
    if not by_gi or any(d.memory_total_bytes is None or d.memory_used_bytes is None for d in by_gi.values()):
        return None, None
    return (
        sum(d.memory_total_bytes or 0 for d in by_gi.values()),
        sum(d.memory_used_bytes or 0 for d in by_gi.values()),
    )
