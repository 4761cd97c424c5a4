"""What one scrape read from NVML, as typed values: GPUs, their MIG devices, and the processes on each.

A value NVML could not give (not supported on this GPU, or the call failed) is ``None`` and its series is absent:
the exporter publishes measurements only, never a stand-in zero. Processes carry only what NVML knows (pid and
measurements); which workload a pid belongs to is attribution's job (``exporter.attribution``), joined in the
collector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ComputeMode(StrEnum):
    """``nvmlDeviceGetComputeMode``, spelled as nvidia-smi spells it."""

    DEFAULT = "Default"
    EXCLUSIVE_THREAD = "Exclusive_Thread"  # deprecated by NVIDIA, still reportable
    PROHIBITED = "Prohibited"
    EXCLUSIVE_PROCESS = "Exclusive_Process"
    UNKNOWN = "Unknown"


class MemorySource(StrEnum):
    """Where a GPU's memory figures come from (the ``source`` label of ``slicewise_gpu_memory_*``)."""

    DEVICE = "device"  # nvmlDeviceGetMemoryInfo on the GPU itself
    GPU_INSTANCES = "gpu_instances"  # MIG mode, unprivileged: the sum of its GPU instances (excludes unused memory)


@dataclass(frozen=True, slots=True)
class Process:
    """One process with a context on one device (a whole GPU or one MIG device)."""

    pid: int
    memory_used_bytes: int | None  # None where NVML does not report it (NVML_VALUE_NOT_AVAILABLE)
    sm_active_ratio: float | None = None  # nvmlDeviceGetProcessUtilization; None on MIG and where unmeasured
    mps_client: bool = False  # listed by nvmlDeviceGetMPSComputeRunningProcesses


@dataclass(frozen=True, slots=True)
class MigDevice:
    """A MIG device: one compute instance (``ci``) inside one GPU instance (``gi``), which owns the memory."""

    gi: int
    ci: int
    uuid: str
    profile: str  # the GPU-instance profile, e.g. "1g.10gb" (without NVML's "MIG " prefix)
    placement_start: int | None
    placement_size: int | None
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    sm_count: int | None
    sm_active_ratio: float | None = None  # GPM, Hopper and newer only
    sm_occupancy_ratio: float | None = None
    dram_active_ratio: float | None = None
    processes: tuple[Process, ...] = ()


@dataclass(frozen=True, slots=True)
class Gpu:
    """One physical GPU. ``up`` is False when NVML lost it; then only ``index`` and (if ever seen) ``uuid`` hold."""

    index: int
    uuid: str
    up: bool = True
    model: str | None = None
    mig_enabled: bool | None = None
    compute_mode: ComputeMode | None = None
    mps_active: bool = False
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    memory_source: MemorySource = MemorySource.DEVICE
    sm_count: int | None = None
    sm_active_ratio: float | None = None
    mig_devices: tuple[MigDevice, ...] = ()
    processes: tuple[Process, ...] = ()  # processes on the whole GPU; MIG processes live in their MIG device

    def all_processes(self) -> list[tuple[MigDevice | None, Process]]:
        """Every process on this GPU with the MIG device it runs in (None on a whole GPU)."""
        found: list[tuple[MigDevice | None, Process]] = [(None, p) for p in self.processes]
        for mig in self.mig_devices:
            found.extend((mig, p) for p in mig.processes)
        return found


@dataclass(frozen=True, slots=True)
class NvmlError:
    """One failed NVML call: the C function and the NVML error constant, e.g. ``NVML_ERROR_GPU_IS_LOST``."""

    function: str
    error: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one scrape read. ``nvml_up`` is False while NVML cannot be initialised (then ``gpus`` is empty)."""

    nvml_up: bool
    driver_version: str | None = None
    gpus: tuple[Gpu, ...] = ()
    errors: tuple[NvmlError, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Workload:
    """Who a process works for, as DESIGN.md's ``workload`` label names it, with the Kubernetes details if any.

    ``source`` says which attribution step named it (kubernetes, container, slurm, systemd, user), so a reader
    can tell a Kubernetes owner from a ``<user>/<command>`` fallback.
    """

    name: str
    source: str
    namespace: str = ""
    pod: str = ""
    container: str = ""


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A pid's workload and its short command name (``/proc/<pid>/comm``), the ``process`` label."""

    process: str
    workload: Workload
