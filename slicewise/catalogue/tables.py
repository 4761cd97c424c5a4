"""MIG profile tables as a GPU's driver reports them, and the catalogue model built from one.

The exporter reads one per GPU model it sees (``nvmlDeviceGetGpuInstanceProfileInfoV`` for every profile enum, and
``nvmlDeviceGetGpuInstancePossiblePlacements``) and publishes it as ``slicewise_mig_profile_*`` series; the advisor
reads it back from Prometheus or from a ``<history>.mig-profiles.yaml`` file beside a history file. A GPU model the
catalogue lacks is then advised from the driver's own table (:func:`to_model`), and where the catalogue has the model
:func:`disagreements` says where its values and the driver's differ.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from slicewise.catalogue import GpuModel, MigProfile
from slicewise.errors import BadInput

# The labels of slicewise_mig_profile_info, as the exporter publishes them and the advisor reads them back
# (DESIGN.md's metric contract): one definition for both sides.
PROFILE_INFO_LABELS: tuple[str, ...] = (
    "model",
    "profile",
    "profile_id",
    "nvml_enum",
    "pci_device_id",
    "compute_slices",
    "instances_max",
    "placement_starts",
    "placement_size",
    "copy_engines",
    "decoders",
    "jpeg",
    "ofa",
)

TABLE_VERSION = 1
# Graphics and media-engine variants of a profile (+gfx, -me, +me.all): not what the advisor recommends for compute
# work, so a learned model leaves them out. ``+me`` stays: the catalogue knows it (at most one per GPU).
_VARIANT = re.compile(r"^(\d+)g\.\d+gb(.*)$")
_LEFT_OUT_VARIANTS = ("+gfx", "-me", "+me.all")
# Memory differs between driver versions by a few hundred MiB (the reference file's -lgip ranges): within this share
# of the catalogue's figure, a driver's value is not a disagreement.
MEMORY_TOLERANCE = 0.03


@dataclass(frozen=True)
class DriverProfile:
    """One GPU-instance profile as ``nvmlGpuInstanceProfileInfo_v2_t`` and the possible placements give it."""

    name: str  # without NVML's "MIG " prefix, e.g. "1g.10gb"
    profile_id: int  # .id: what `nvidia-smi mig -cgi` takes
    nvml_enum: int  # the NVML_GPU_INSTANCE_PROFILE_* it was read with
    compute_slices: int  # .sliceCount
    instances_max: int  # .instanceCount
    memory_mib: int  # .memorySizeMB
    sm_count: int  # .multiprocessorCount
    copy_engines: int = 0
    decoders: int = 0
    jpeg: int = 0
    ofa: int = 0
    placement_starts: tuple[int, ...] = ()
    placement_size: int = 0


@dataclass(frozen=True)
class DriverTable:
    """Every MIG profile one GPU model's driver reports."""

    model: str  # NVML product name, as slicewise_gpu_info's model label
    pci_device_id: str  # "0x233010DE" (nvmlPciInfo_t.pciDeviceId), "" where unknown
    profiles: tuple[DriverProfile, ...]

    @property
    def compute_slices(self) -> int:
        return max((p.compute_slices for p in self.profiles), default=0)

    @property
    def memory_slices(self) -> int:
        return max((max(p.placement_starts, default=0) + p.placement_size for p in self.profiles), default=0)


def to_model(table: DriverTable) -> GpuModel:
    """A catalogue model from a driver's table, for a GPU gpus.yaml lacks.

    The whole GPU's memory and SMs are those of its largest profile (what MIG can hand out); the key is the product
    name without "NVIDIA " plus a digest of the table, so that two different tables never share cached geometry."""
    if not table.profiles:
        raise BadInput(f"{table.model}: the driver's MIG profile table is empty")
    usable = [p for p in table.profiles if not _variant(p.name).endswith(_LEFT_OUT_VARIANTS)]
    keys = _profile_keys(usable)
    profiles = tuple(
        MigProfile(
            key=keys[p.name],
            name=p.name,
            nvml_enum=p.nvml_enum,
            smi_id=p.profile_id,
            compute_slices=p.compute_slices,
            memory_slices=p.placement_size,
            max_count=p.instances_max,
            starts=p.placement_starts,
            size=p.placement_size,
            memory_mib=p.memory_mib,
            sm_count=p.sm_count,
            copy_engines=p.copy_engines,
            decoders=p.decoders,
            jpeg=p.jpeg,
            ofa=p.ofa,
        )
        for p in sorted(usable, key=lambda p: (p.compute_slices, p.placement_size, p.name))
        if p.placement_starts and p.placement_size > 0
    )
    if not profiles:
        raise BadInput(f"{table.model}: the driver's MIG profile table has no profile with placements")
    largest = max(profiles, key=lambda p: (p.compute_slices, p.memory_mib))
    digest = hashlib.sha256(repr(table).encode()).hexdigest()[:6]
    slug = re.sub(r"[^A-Za-z0-9]+", "-", table.model.removeprefix("NVIDIA ")).strip("-")
    return GpuModel(
        key=f"{slug}-{digest}",
        nvml_names=(table.model,),
        pci_device_ids=(table.pci_device_id,) if table.pci_device_id else (),
        architecture="unknown",
        memory_total_mib=largest.memory_mib,
        sm_count=largest.sm_count,
        compute_slices=table.compute_slices,
        memory_slices=table.memory_slices,
        profiles=profiles,
        sources=("driver",),
        status="learned from the driver's MIG profile table (whole-GPU memory and SMs: its largest profile's)",
        learned=True,
    )


def _variant(name: str) -> str:
    found = _VARIANT.match(name)
    return found.group(2) if found else ""


def _profile_keys(profiles: Iterable[DriverProfile]) -> dict[str, str]:
    """Catalogue-style keys: ``1g``, ``1g+me``, and ``1g-2mem`` for a profile with more memory slices than the
    plain one of its compute size."""
    listed = list(profiles)
    smallest: dict[tuple[int, str], int] = {}
    for p in listed:
        k = (p.compute_slices, _variant(p.name))
        smallest[k] = min(smallest.get(k, p.placement_size), p.placement_size)
    keys = {}
    for p in listed:
        variant = _variant(p.name)
        more = p.placement_size > smallest[(p.compute_slices, variant)]
        keys[p.name] = f"{p.compute_slices}g" + (f"-{p.placement_size}mem" if more else "") + variant
    return keys


def disagreements(table: DriverTable, known: GpuModel) -> list[str]:
    """Where the driver's table and the catalogue's model differ, one sentence each (the catalogue still applies).

    Compared: the PCI id, which profiles exist, and per profile its id, compute slices, instances, placements, SMs
    and memory (memory within ``MEMORY_TOLERANCE``: it moves between driver versions)."""
    found: list[str] = []
    driver = {p.name: p for p in table.profiles if not _variant(p.name).endswith(_LEFT_OUT_VARIANTS)}
    ours = {p.name: p for p in known.profiles}
    missing = sorted(set(ours) - set(driver))
    extra = sorted(set(driver) - set(ours))
    if table.pci_device_id and table.pci_device_id not in known.pci_device_ids:
        found.append(f"PCI device id {table.pci_device_id} is not in the catalogue's (mig-parted configs will miss it)")
    if missing:
        found.append(f"the driver does not offer {', '.join(missing)}")
    if extra:
        found.append(f"the driver offers {', '.join(extra)}, which the catalogue lacks")
    for name in sorted(set(ours) & set(driver)):
        d, c = driver[name], ours[name]
        pairs: Mapping[str, tuple[Any, Any]] = {
            "profile id": (d.profile_id, c.smi_id),
            "compute slices": (d.compute_slices, c.compute_slices),
            "instances": (d.instances_max, c.max_count),
            "placement starts": (list(d.placement_starts), list(c.starts)),
            "placement size": (d.placement_size, c.size),
            "SMs": (d.sm_count, c.sm_count),
        }
        for what, (theirs, mine) in pairs.items():
            if theirs != mine:
                found.append(f"{name} {what}: driver {theirs}, catalogue {mine}")
        if abs(d.memory_mib - c.memory_mib) > MEMORY_TOLERANCE * c.memory_mib:
            found.append(f"{name} memory: driver {d.memory_mib} MiB, catalogue {c.memory_mib} MiB")
    return [f"{table.model} ({known.key}): {f}" for f in found]


# --- the file form (``<history>.mig-profiles.yaml``), also what the exporter's series carry -------------------------


def to_dict(tables: Iterable[DriverTable]) -> dict[str, Any]:
    return {
        "version": TABLE_VERSION,
        "models": [
            {
                "model": t.model,
                "pci_device_id": t.pci_device_id,
                "profiles": [
                    {
                        "name": p.name,
                        "profile_id": p.profile_id,
                        "nvml_enum": p.nvml_enum,
                        "compute_slices": p.compute_slices,
                        "instances_max": p.instances_max,
                        "memory_mib": p.memory_mib,
                        "sm_count": p.sm_count,
                        "copy_engines": p.copy_engines,
                        "decoders": p.decoders,
                        "jpeg": p.jpeg,
                        "ofa": p.ofa,
                        "placement_starts": list(p.placement_starts),
                        "placement_size": p.placement_size,
                    }
                    for p in t.profiles
                ],
            }
            for t in tables
        ],
    }


_REQUIRED = ("name", "profile_id", "compute_slices", "instances_max", "memory_mib", "sm_count", "placement_starts")


def from_dict(raw: Any, where: str) -> list[DriverTable]:
    """Tables from the file form; :class:`BadInput` naming the first problem."""
    if not isinstance(raw, dict) or raw.get("version") != TABLE_VERSION or not isinstance(raw.get("models"), list):
        raise BadInput(f"{where}: not a MIG profile table file (expected version: {TABLE_VERSION} and a models list)")
    tables = []
    for i, m in enumerate(raw["models"]):
        if not isinstance(m, dict) or not isinstance(m.get("model"), str) or not isinstance(m.get("profiles"), list):
            raise BadInput(f"{where}: models[{i}] needs a model name and a profiles list")
        profiles = []
        for j, p in enumerate(m["profiles"]):
            lacking = [k for k in _REQUIRED if not isinstance(p, dict) or k not in p]
            if lacking:
                raise BadInput(f"{where}: models[{i}].profiles[{j}] lacks {', '.join(lacking)}")
            try:
                starts = tuple(int(s) for s in p["placement_starts"])
                profiles.append(
                    DriverProfile(
                        name=str(p["name"]),
                        profile_id=int(p["profile_id"]),
                        nvml_enum=int(p.get("nvml_enum", -1)),
                        compute_slices=int(p["compute_slices"]),
                        instances_max=int(p["instances_max"]),
                        memory_mib=int(p["memory_mib"]),
                        sm_count=int(p["sm_count"]),
                        copy_engines=int(p.get("copy_engines", 0)),
                        decoders=int(p.get("decoders", 0)),
                        jpeg=int(p.get("jpeg", 0)),
                        ofa=int(p.get("ofa", 0)),
                        placement_starts=starts,
                        placement_size=int(p.get("placement_size", 0)),
                    )
                )
            except (TypeError, ValueError) as exc:
                raise BadInput(f"{where}: models[{i}].profiles[{j}]: {exc}") from None
        tables.append(DriverTable(m["model"], str(m.get("pci_device_id") or ""), tuple(profiles)))
    return tables


def from_model(gpu: GpuModel) -> DriverTable:
    """The table a driver would report for a catalogue model (the simulator's, and tests')."""
    return DriverTable(
        gpu.name,
        gpu.pci_device_id if gpu.pci_device_ids else "",
        tuple(
            DriverProfile(
                name=p.name,
                profile_id=p.smi_id,
                nvml_enum=p.nvml_enum,
                compute_slices=p.compute_slices,
                instances_max=p.max_count,
                memory_mib=p.memory_mib,
                sm_count=p.sm_count,
                copy_engines=p.copy_engines,
                decoders=p.decoders,
                jpeg=p.jpeg,
                ofa=p.ofa,
                placement_starts=p.starts,
                placement_size=p.size,
            )
            for p in gpu.profiles
        ),
    )
