"""Driver generations and privileges as data: which NVML symbols a simulated node's libnvidia-ml exports, which
struct it fills for the process lists, and which calls a caller without privileges is refused.

Every behaviour below has a source; the exporter must read each profile right (tests/exporter/simulate/
test_driver_matrix.py runs the full scrape on every profile, privileged and not).

- Process-list symbols (``nvmlDeviceGet{Compute,Graphics,MPSCompute}RunningProcesses``): the unversioned name
  fills ``nvmlProcessInfo_v1_t`` (pid, usedGpuMemory); ``_v2`` (R450 to now) fills ``nvmlProcessInfo_v2_t`` (adds
  gpuInstanceId, computeInstanceId). ``_v3`` was added in 510.39.01 with the v2 layout; 535.43.02 to 535.86.x fill
  a 5-field struct under ``_v3`` (adds ``usedGpuCcProtectedMemory``: 32 bytes instead of 24) without a version
  bump; 535.98 removed ``_v3``; R550 has it again with the v2 layout. Sources: nvml.h across releases as traced in
  XuehaiPan/nvitop#79 and #89 (nvidia-settings commits b2f0e7f, 39c3e28, 0cb3bef), NVIDIA/go-nvml#75 (garbage
  entries on 535.54.03), gpuopenanalytics/pynvml#50. nvitop tells the 5-field drivers apart by
  ``nvmlDeviceGetConfComputeMemSizeInfo`` present and ``nvmlDeviceGetRunningProcessDetailList`` absent
  (nvitop/api/libnvml.py), so each profile exports those symbols as those drivers did: ConfCompute from R535,
  ``nvmlDeviceGetRunningProcessDetailList`` from R550.
- ``nvmlDeviceGetMemoryInfo_v2`` (with ``reserved``): from R510 (nvml.h 11.6). GPM (``nvmlGpm*``): from R520
  (nvml.h 11.8), and Hopper needs R525 or later anyway (NVIDIA data-center driver release notes).
- Privileges: in an unprivileged container (nvidia-container-toolkit, no CAP_SYS_ADMIN, not root on the host),
  ``nvmlDeviceGetMemoryInfo`` on a MIG-enabled GPU's own handle answers NVML_ERROR_NO_PERMISSION
  (NVIDIA/nvidia-container-toolkit#842, NVIDIA/k8s-device-plugin#1683), and so does
  ``nvmlDeviceGetGpuInstanceById`` / ``nvmlDeviceGetGpuInstances`` (nvml.h: "requires privileged user"). A MIG
  device's own handle answers memory to anyone it is visible to.
- GPM on a MIG device handle (``nvmlGpmSampleGet`` with the handle of one compute instance): accepted from R550 in
  these profiles, NOT_SUPPORTED before. That boundary is an assumption, not a verified fact:
  ``scripts/real-gpu-check`` records what a real driver answers.

Select a profile per node with ``--simulate.driver`` or ``use_driver(fleet, "535.54", privileged=False)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from slicewise.errors import BadInput

if TYPE_CHECKING:
    from exporter.simulate.fleet import Fleet


class ProcessLayout(StrEnum):
    """The struct a process-list symbol fills: ``v1`` 2 fields (16 bytes), ``v2`` 4 (24), ``v3_cc`` 5 (32)."""

    V1 = "v1"
    V2 = "v2"
    V3_CC = "v3_cc"


_LISTS = ("Compute", "Graphics", "MPSCompute")
PROCESS_V3 = frozenset(f"nvmlDeviceGet{k}RunningProcesses_v3" for k in _LISTS)
MEMORY_V2 = frozenset({"nvmlDeviceGetMemoryInfo_v2"})
GPM = frozenset(
    {
        "nvmlGpmQueryDeviceSupport",
        "nvmlGpmQueryIfStreamingEnabled",
        "nvmlGpmSampleAlloc",
        "nvmlGpmSampleFree",
        "nvmlGpmSampleGet",
        "nvmlGpmMigSampleGet",
        "nvmlGpmMetricsGet",
    }
)
CONF_COMPUTE = frozenset({"nvmlDeviceGetConfComputeMemSizeInfo", "nvmlSystemGetConfComputeState"})
PROCESS_DETAIL = frozenset({"nvmlDeviceGetRunningProcessDetailList"})

# What an unprivileged caller is refused (NVML_ERROR_NO_PERMISSION), by C function; "parent" means only on the
# handle of a MIG-enabled GPU, not on its MIG devices.
UNPRIVILEGED_PARENT = frozenset({"nvmlDeviceGetMemoryInfo", "nvmlDeviceGetMemoryInfo_v2"})
UNPRIVILEGED_ALWAYS = frozenset({"nvmlDeviceGetGpuInstanceById", "nvmlDeviceGetGpuInstances"})


@dataclass(frozen=True)
class DriverProfile:
    """One driver release as NVML clients see it."""

    name: str  # what --simulate.driver takes
    version: str  # nvmlSystemGetDriverVersion
    cuda_version: int  # nvmlSystemGetCudaDriverVersion (1000 * major + 10 * minor)
    absent: frozenset[str]  # symbols this release does not export
    v3_layout: ProcessLayout  # what the _v3 process lists fill, where they exist
    gpm_on_mig_handles: bool  # nvmlGpmSampleGet accepts a MIG device handle
    architectures: frozenset[str]  # the GPU architectures this release drives
    source: str

    def exports(self, symbol: str) -> bool:
        return symbol not in self.absent

    @property
    def nvml_version(self) -> str:
        """nvmlSystemGetNVMLVersion: the CUDA major then the driver version, e.g. ``12.550.127.08``."""
        return f"{self.cuda_version // 1000}.{self.version}"

    def drives(self, architecture: str) -> bool:
        return architecture in self.architectures


_AMPERE_ONLY = frozenset({"ampere"})
_HOPPER = _AMPERE_ONLY | {"hopper"}
_BLACKWELL = _HOPPER | {"blackwell"}

PROFILES: dict[str, DriverProfile] = {
    p.name: p
    for p in (
        DriverProfile(
            "470", "470.256.02", 11040, PROCESS_V3 | MEMORY_V2 | GPM | CONF_COMPUTE | PROCESS_DETAIL,
            ProcessLayout.V2, False, _AMPERE_ONLY,
            "R470 LTSB: process lists up to _v2, memory v1 only, no GPM; no Hopper support",
        ),
        DriverProfile(
            "525", "525.147.05", 12000, CONF_COMPUTE | PROCESS_DETAIL, ProcessLayout.V2, False, _HOPPER,
            "R525: _v3 process lists with the v2 struct (since 510.39.01), memory v2, GPM",
        ),
        DriverProfile(
            "535.54", "535.54.03", 12020, PROCESS_DETAIL, ProcessLayout.V3_CC, False, _HOPPER,
            "535.43.02-535.86.x: _v3 fills the 5-field struct (nvitop#79, go-nvml#75); ConfCompute symbols present",
        ),
        DriverProfile(
            "535.98", "535.98", 12020, PROCESS_V3 | PROCESS_DETAIL, ProcessLayout.V2, False, _HOPPER,
            "535.98: the _v3 process lists removed again (nvitop#88, #89)",
        ),
        DriverProfile(
            "550", "550.127.08", 12040, frozenset(), ProcessLayout.V2, True, _HOPPER,
            "R550: _v3 with the v2 struct, nvmlDeviceGetRunningProcessDetailList",
        ),
        DriverProfile(
            "580", "580.95.05", 13000, frozenset(), ProcessLayout.V2, True, _BLACKWELL,
            "R580 (current production branch): as R550 for what slicewise reads",
        ),
    )
}  # fmt: skip

DEFAULT_DRIVER = "550"


def driver_profile(name: str) -> DriverProfile:
    """A profile by ``--simulate.driver`` name (``535.54``) or full version (``535.54.03``)."""
    for profile in PROFILES.values():
        if name in (profile.name, profile.version):
            return profile
    raise BadInput(f"unknown driver profile {name!r} (known: {', '.join(PROFILES)})")


def use_driver(fleet: Fleet, driver: str, *, privileged: bool = True, node: str | None = None) -> None:
    """Give ``fleet``'s nodes (or only ``node``) the driver ``driver``, as a privileged caller or not.

    Refused (BadInput) for a node with GPUs the driver does not support (H100 needs R525 or later).
    """
    profile = driver_profile(driver)
    nodes = [fleet.node(node)] if node is not None else fleet.nodes
    for n in nodes:
        unsupported = sorted({g.model.name for g in n.gpus if not profile.drives(g.model.architecture)})
        if unsupported:
            raise BadInput(f"driver {profile.version} does not support {', '.join(unsupported)} (node {n.name})")
    for n in nodes:
        n.driver = profile
        n.privileged = privileged


def upgrade_kernel_module(fleet: Fleet, driver: str, *, node: str | None = None) -> None:
    """Load ``driver``'s kernel module under the running processes, as a GPU Operator driver upgrade does.

    The attached library stays the old one (pynvml never loads it again), so ``nvmlInit`` answers
    NVML_ERROR_LIB_RM_VERSION_MISMATCH from now on, and calls on a session opened before answer
    NVML_ERROR_DRIVER_NOT_LOADED (the module it was opened against is gone; which error a real driver gives
    there is an assumption). A process attached afterwards with ``use_driver(fleet, driver)`` works again.
    """
    profile = driver_profile(driver)
    for n in [fleet.node(node)] if node is not None else fleet.nodes:
        n.kernel_module = profile.version
