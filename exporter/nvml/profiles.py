"""The MIG profile table the driver reports, per GPU model: read once per model and kept until a MIG mode changes.

For every ``NVML_GPU_INSTANCE_PROFILE_*`` enum, ``nvmlDeviceGetGpuInstanceProfileInfoV`` (id, slices, instances,
memory, SMs, engines, and the name) and ``nvmlDeviceGetGpuInstancePossiblePlacements`` (the starts and size). An
enum the GPU lacks answers NOT_SUPPORTED or INVALID_ARGUMENT and is skipped. The driver answers these only for a GPU
in MIG mode, so a model is read from one of its GPUs that has MIG enabled; a model none of whose GPUs does has no
table yet. A GPU whose MIG mode changes makes its model's table be read again from the next GPU of that model in MIG
mode (the last table read stays published meanwhile; a driver update needs a reboot, which restarts the exporter).
About 2 x 18 calls per model, once: nothing per scrape.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

import pynvml

from exporter.nvml.calls import CAPABILITY, Calls, GpuLost, NvmlGone
from exporter.snapshot import Snapshot
from slicewise.catalogue.tables import DriverProfile, DriverTable

log = logging.getLogger(__name__)

# A profile this GPU does not have: NOT_SUPPORTED on current drivers, INVALID_ARGUMENT for an enum past its count.
_ABSENT = CAPABILITY | {pynvml.NVML_ERROR_INVALID_ARGUMENT, pynvml.NVML_ERROR_NOT_FOUND}
_MAX_PLACEMENTS = 8  # at most 8 memory slices, so at most 8 starts


class ProfileTables:
    """Keeps the driver's MIG profile table of every GPU model seen (call :meth:`update` with each snapshot)."""

    def __init__(self) -> None:
        self._tables: dict[str, DriverTable] = {}
        self._stale: set[str] = set()  # models to read again (one of their GPUs changed MIG mode)
        self._failed: set[str] = set()  # models whose read gave nothing: not asked again every scrape
        self._mig_mode: dict[str, bool | None] = {}  # by GPU UUID, to notice a change

    def update(self, snapshot: Snapshot, calls: Calls) -> list[DriverTable]:
        """The tables of the models in this snapshot, reading those not known yet (errors go to ``calls``)."""
        if not snapshot.nvml_up:
            return self.tables()
        for gpu in snapshot.gpus:
            if not gpu.up or not gpu.model:
                continue
            previous = self._mig_mode.get(gpu.uuid, gpu.mig_enabled)
            self._mig_mode[gpu.uuid] = gpu.mig_enabled
            if previous != gpu.mig_enabled:
                self._stale.add(gpu.model)  # the last table read stays published until a new one is read
                self._failed.discard(gpu.model)
            wanted = gpu.model not in self._tables or gpu.model in self._stale
            if gpu.mig_enabled and wanted and gpu.model not in self._failed:
                try:
                    table = read_table(calls, gpu.uuid, gpu.model)
                except (GpuLost, NvmlGone):
                    continue  # the reader reports those; the table is read on a later scrape
                if table is None:
                    self._failed.add(gpu.model)  # e.g. NO_PERMISSION: counted once, tried after a mode change
                else:
                    self._tables[gpu.model] = table
                    self._stale.discard(gpu.model)
        return self.tables()

    def tables(self) -> list[DriverTable]:
        return [self._tables[m] for m in sorted(self._tables)]


def read_table(calls: Calls, uuid: str, model: str) -> DriverTable | None:
    """One GPU's MIG profile table; None when the GPU gives no profile (not MIG-capable, or the calls failed)."""
    handle = calls.get("nvmlDeviceGetHandleByUUID", lambda: pynvml.nvmlDeviceGetHandleByUUID(uuid))
    if handle is None:
        return None
    pci = calls.get("nvmlDeviceGetPciInfo_v3", lambda: pynvml.nvmlDeviceGetPciInfo(handle))
    profiles = []
    for enum in range(pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
        info = calls.get(
            "nvmlDeviceGetGpuInstanceProfileInfoV",
            lambda enum=enum: pynvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, enum),  # type: ignore[misc]
            _ABSENT,
        )
        if info is None or int(info.instanceCount) == 0:
            continue
        starts, size = _placements(calls, handle, enum)
        profiles.append(
            DriverProfile(
                name=_name(info),
                profile_id=int(info.id),
                nvml_enum=enum,
                compute_slices=int(info.sliceCount),
                instances_max=int(info.instanceCount),
                memory_mib=int(info.memorySizeMB),
                sm_count=int(info.multiprocessorCount),
                copy_engines=int(info.copyEngineCount),
                decoders=int(info.decoderCount),
                jpeg=int(info.jpegCount),
                ofa=int(info.ofaCount),
                placement_starts=starts,
                placement_size=size,
            )
        )
    if not profiles:
        return None
    pci_id = f"0x{int(pci.pciDeviceId):08X}" if pci is not None else ""
    log.info("read the MIG profile table of %s (%d profiles)", model, len(profiles))
    return DriverTable(model, pci_id, tuple(profiles))


def _name(info: Any) -> str:
    raw = info.name
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    return text.removeprefix("MIG ").strip()


def _placements(calls: Calls, handle: Any, enum: int) -> tuple[tuple[int, ...], int]:
    array = (pynvml.c_nvmlGpuInstancePlacement_t * _MAX_PLACEMENTS)()
    count = ctypes.c_uint(_MAX_PLACEMENTS)
    done = calls.get(
        "nvmlDeviceGetGpuInstancePossiblePlacements_v2",
        lambda: pynvml.nvmlDeviceGetGpuInstancePossiblePlacements(handle, enum, array, ctypes.byref(count)),
        _ABSENT,
    )
    if done is None:
        return (), 0
    found = [array[i] for i in range(min(count.value, _MAX_PLACEMENTS))]
    return tuple(int(p.start) for p in found), max((int(p.size) for p in found), default=0)
