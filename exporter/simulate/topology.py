"""GPUs as the driver sees them: whole GPUs, MIG GPU instances and compute instances, and the devices processes
run on. MIG geometry is only ever built through ``slicewise.catalogue`` (``place`` / ``check_geometry``), so an
impossible geometry is refused here exactly as the driver would refuse it.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from functools import cached_property

from exporter.simulate.noise import stable_key
from slicewise.catalogue import GpuModel, MigProfile, Placement, check_geometry, place
from slicewise.errors import BadInput

# Bumped on every change of any GPU's MIG geometry or instances: a cheap "has anything changed?" for runtimes.
_changes = itertools.count(1)
CHANGES = [0]


def _changed() -> None:
    CHANGES[0] = next(_changes)


# NVML_COMPUTE_INSTANCE_PROFILE_{1,2,3,4,7}_SLICE: `nvidia-smi mig -lcip` prints these as the CI profile ids too.
CI_PROFILE_ENUM = {1: 0, 2: 1, 3: 2, 4: 3, 7: 4, 8: 5, 6: 6}


def gpu_instance_id(gpu: GpuModel, placement: Placement) -> int:
    """GPU instance ids number the binary tree of memory-slice ranges, as the driver's swizzle ids do: the whole
    GPU is 0, its halves 1-2, quarters 3-6, eighths 7-14 (A100/H100/H200); the A30's four slices give 0, 1-2, 3-6.
    """
    size, start = placement.profile.size, placement.start
    level_base = gpu.memory_slices // size - 1
    return level_base + start // size


def _uuid(prefix: str, *parts: object) -> str:
    return f"{prefix}-{uuid.UUID(int=stable_key(*parts) << 64 | stable_key(*parts, 'low'))}"


@dataclass
class ComputeInstance:
    """A compute instance inside a GPU instance: what a MIG device is. ``slices`` are compute slices."""

    id: int
    slices: int
    start: int  # compute-slice offset inside its GPU instance

    @property
    def profile_enum(self) -> int:
        return CI_PROFILE_ENUM[self.slices]


@dataclass
class GpuInstance:
    placement: Placement
    id: int
    compute_instances: list[ComputeInstance]

    @property
    def profile(self) -> MigProfile:
        return self.placement.profile


@dataclass
class Device:
    """Where processes run: a whole GPU (``gi is None``) or a MIG device (one compute instance of one GI)."""

    gpu: Gpu
    gi: GpuInstance | None = None
    ci: ComputeInstance | None = None
    mps: bool = False  # an MPS server runs here and the processes are its clients

    @property
    def key(self) -> str:
        """Stable across MIG re-creation with the same geometry: node, GPU index, placement, CI offset."""
        if self.gi is None or self.ci is None:
            return f"{self.gpu.node}/{self.gpu.index}"
        return f"{self.gpu.node}/{self.gpu.index}/{self.gi.placement.start}:{self.gi.profile.key}/{self.ci.start}"

    @property
    def is_mig(self) -> bool:
        return self.gi is not None

    @property
    def sm_count(self) -> int:
        if self.gi is None or self.ci is None:
            return self.gpu.model.sm_count
        return self.gi.profile.sm_count * self.ci.slices // self.gi.profile.compute_slices

    @property
    def memory_bytes(self) -> int:
        return self.gpu.model.memory_total_bytes if self.gi is None else self.gi.profile.memory_bytes

    @property
    def capacity(self) -> float:
        """The most of a whole GPU's SMs this device can keep busy."""
        return self.sm_count / self.gpu.model.sm_count

    @property
    def profile_name(self) -> str:
        """The MIG profile as the history names it (the GPU-instance profile), empty on a whole GPU."""
        return "" if self.gi is None else self.gi.profile.name

    @property
    def device_name(self) -> str:
        """``nvmlDeviceGetName``: the GPU's name, plus ``MIG <profile>`` on a MIG device (``1c.3g.20gb`` when the GI
        is split into several compute instances)."""
        if self.gi is None or self.ci is None:
            return self.gpu.model.name
        prof = self.gi.profile
        if self.ci.slices == prof.compute_slices:
            return f"{self.gpu.model.name} MIG {prof.name}"
        return f"{self.gpu.model.name} MIG {self.ci.slices}c.{prof.name}"

    @cached_property
    def uuid(self) -> str:
        if self.gi is None or self.ci is None:
            return self.gpu.uuid
        return _uuid("MIG", self.gpu.uuid, self.gi.id, self.ci.id, self.gpu.generation)


@dataclass
class Gpu:
    node: str
    index: int
    model: GpuModel
    seed: int
    mig_enabled: bool = False
    mps: bool = False  # MPS on the whole GPU (non-MIG)
    instances: list[GpuInstance] = field(default_factory=list)
    mps_instances: set[int] = field(default_factory=set)  # GI placement starts that run MPS inside
    generation: int = 0  # bumped whenever MIG instances are re-created: new MIG UUIDs, processes restarted
    lost: bool = False

    @cached_property
    def uuid(self) -> str:
        return _uuid("GPU", self.seed, self.node, self.index)

    @property
    def serial(self) -> str:
        return str(1650000000000 + stable_key(self.seed, self.node, self.index, "serial") % 10**10)

    def configure_mig(self, profiles: list[str], splits: dict[int, tuple[int, ...]] | None = None) -> None:
        """Enable MIG and create GPU instances of ``profiles`` (placed as ``nvidia-smi mig -cgi`` would), each with one
        compute instance using all its slices, or the compute instances listed in ``splits`` (index into
        ``profiles`` -> compute-instance slice counts). Raises ``BadInput`` for a geometry the driver refuses.
        """
        if not self.model.profiles:
            raise BadInput(f"{self.model.name} does not support MIG")
        placements = place(self.model, profiles)
        wanted = [self.model.profile(p) for p in profiles]
        split_by_placement: dict[int, tuple[int, ...]] = {}
        for i, slices in (splits or {}).items():
            prof = wanted[i]
            target = next(pl for pl in placements if pl.profile == prof and pl.start not in split_by_placement)
            split_by_placement[target.start] = slices
        self.set_geometry(placements, split_by_placement)

    def set_geometry(self, placements: tuple[Placement, ...], splits: dict[int, tuple[int, ...]]) -> None:
        """Replace the GPU instances with exactly these placements (validated against the catalogue)."""
        check_geometry(self.model, placements)
        instances = []
        for pl in sorted(placements, key=lambda p: p.start):
            slices = splits.get(pl.start, (pl.profile.compute_slices,))
            if sum(slices) > pl.profile.compute_slices or any(s not in CI_PROFILE_ENUM for s in slices):
                raise BadInput(
                    f"compute instances {list(slices)} do not fit in a {pl.profile.name} GPU instance "
                    f"({pl.profile.compute_slices} compute slices) on {self.model.name}"
                )
            cis, offset = [], 0
            for ci_id, s in enumerate(slices):
                cis.append(ComputeInstance(id=ci_id, slices=s, start=offset))
                offset += s
            instances.append(GpuInstance(pl, gpu_instance_id(self.model, pl), cis))
        self.mig_enabled = True
        self.instances = instances
        self.generation += 1
        _changed()

    def recreate_instances(self) -> None:
        """Destroy and re-create the same GPU instances (an operator re-applying a MIG config): same GI ids, new MIG
        UUIDs, and every process on them restarted."""
        self.generation += 1
        _changed()

    def devices(self) -> list[Device]:
        if not self.mig_enabled:
            return [Device(self, mps=self.mps)]
        return [
            Device(self, gi, ci, mps=gi.placement.start in self.mps_instances)
            for gi in sorted(self.instances, key=lambda g: g.id)
            for ci in gi.compute_instances
        ]

    def instance_by_id(self, gi_id: int) -> GpuInstance | None:
        return next((gi for gi in self.instances if gi.id == gi_id), None)
