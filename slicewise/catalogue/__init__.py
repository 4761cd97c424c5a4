"""The GPU and MIG catalogue: GPU models, their MIG GPU-instance profiles and the placement rules.

The data lives in ``gpus.yaml`` beside this file, taken from NVIDIA's MIG user guide and real ``nvidia-smi mig
-lgip/-lgipp`` transcripts (see the sources at the top of that file). The simulator builds its GPUs from it and the
advisor sizes and packs MIG instances with it; neither hard-codes a profile.

A GPU the catalogue does not know can still be advised: the exporter publishes the profile table its driver reports
(``slicewise.catalogue.tables``), and inside ``with learned(models):`` :func:`find_model` and :func:`model` also
answer for those models, after the catalogue's own, so a new GPU generation needs no release of slicewise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources

import yaml

from slicewise.errors import BadInput

MIB = 1024 * 1024

# libyaml's parser where PyYAML was built with it: the same safe loading, several times faster
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class MigProfile:
    """One GPU-instance profile of one GPU model, e.g. ``3g.40gb`` on an A100 80GB."""

    key: str  # geometry key: 1g, 1g+me, 1g-2mem, 2g, 2g+me, 3g, 4g, 7g
    name: str  # what nvidia-smi, mig-parted and the device plugin call it
    nvml_enum: int  # NVML_GPU_INSTANCE_PROFILE_* passed to nvmlDeviceGetGpuInstanceProfileInfo
    smi_id: int  # nvmlGpuInstanceProfileInfo_t.id, the id `nvidia-smi mig -cgi` takes
    compute_slices: int
    memory_slices: int
    max_count: int  # at most this many instances of the profile on one GPU
    starts: tuple[int, ...]  # valid placement starts, in memory slices
    size: int  # placement size, in memory slices
    memory_mib: int
    sm_count: int
    copy_engines: int
    decoders: int
    jpeg: int
    ofa: int
    inferred: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # (field, how) for values no source gives

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * MIB

    @property
    def media_extensions(self) -> bool:
        """A ``+me`` profile: it holds the GPU's only JPEG/OFA engines, so at most one per GPU."""
        return self.key.endswith("+me")


@dataclass(frozen=True)
class GpuModel:
    """A GPU model as NVML names it, with what MIG can make of it."""

    key: str  # catalogue key, e.g. H100-80GB
    nvml_names: tuple[str, ...]  # nvmlDeviceGetName values; the first is the one the simulator reports
    pci_device_ids: tuple[str, ...]  # every PCI device id of the family (mig-parted's device-filter group)
    architecture: str  # ampere | hopper | blackwell | unknown (a table learned from a driver)
    memory_total_mib: int
    sm_count: int
    compute_slices: int
    memory_slices: int
    profiles: tuple[MigProfile, ...]
    sources: tuple[str, ...]
    status: str
    reference: str | None = None  # the entry of ../shared/reference/mig_profiles.yaml it was checked against
    inferred: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # (field, how) for values no source gives
    learned: bool = False  # built from a driver-published table, not from gpus.yaml

    @property
    def name(self) -> str:
        return self.nvml_names[0]

    @property
    def pci_device_id(self) -> str:
        """The PCI device id the simulator reports (the first of :attr:`pci_device_ids`; "" for a learned table
        that had none)."""
        return self.pci_device_ids[0] if self.pci_device_ids else ""

    @property
    def memory_total_bytes(self) -> int:
        return self.memory_total_mib * MIB

    @property
    def has_gpm(self) -> bool:
        """GPU Performance Monitoring (per-MIG SM activity) exists on Hopper and newer only."""
        return self.architecture not in ("ampere",)

    def profile(self, name_or_key: str) -> MigProfile:
        for p in self.profiles:
            if name_or_key in (p.name, p.key):
                return p
        known = ", ".join(p.name for p in self.profiles)
        raise BadInput(f"{self.name} has no MIG profile {name_or_key!r} (it has {known})")

    def profile_by_enum(self, nvml_enum: int) -> MigProfile | None:
        return next((p for p in self.profiles if p.nvml_enum == nvml_enum), None)

    def profile_by_smi_id(self, smi_id: int) -> MigProfile | None:
        return next((p for p in self.profiles if p.smi_id == smi_id), None)


@dataclass(frozen=True)
class Placement:
    """A GPU instance placed on a GPU: the profile and its start memory slice."""

    profile: MigProfile
    start: int

    @property
    def slices(self) -> range:
        return range(self.start, self.start + self.profile.size)


@cache
def models() -> tuple[GpuModel, ...]:
    """Every GPU model in the catalogue, in the order of ``gpus.yaml``."""
    text = resources.files(__package__).joinpath("gpus.yaml").read_text(encoding="utf-8")
    raw = yaml.load(text, Loader=_SafeLoader)
    out = []
    for m in raw["models"]:
        geo = raw["geometries"][m["geometry"]]
        profiles = []
        for p in m["profiles"]:
            g = geo["profiles"][p["key"]]
            decoders, jpeg, ofa = p["media"]
            profiles.append(
                MigProfile(
                    key=p["key"],
                    name=p["name"],
                    nvml_enum=g["nvml_enum"],
                    smi_id=g["smi_id"],
                    compute_slices=g["compute"],
                    memory_slices=g["memory"],
                    max_count=g["max"],
                    starts=tuple(g["starts"]),
                    size=g["size"],
                    memory_mib=p["memory_mib"],
                    sm_count=p["sms"],
                    copy_engines=p["ce"],
                    decoders=decoders,
                    jpeg=jpeg,
                    ofa=ofa,
                    inferred=tuple((k, str(v)) for k, v in (p.get("inferred") or {}).items()),
                )
            )
        out.append(
            GpuModel(
                key=m["key"],
                nvml_names=tuple(m["nvml_names"]),
                pci_device_ids=tuple(m["pci_device_ids"]),
                architecture=m["architecture"],
                memory_total_mib=m["memory_total_mib"],
                sm_count=m["sm_count"],
                compute_slices=geo["compute_slices"],
                memory_slices=geo["memory_slices"],
                profiles=tuple(profiles),
                sources=tuple(m["sources"]),
                status=m["status"],
                reference=m.get("reference"),
                inferred=tuple((k, str(v)) for k, v in (m.get("inferred") or {}).items()),
            )
        )
    return tuple(out)


def model(key_or_nvml_name: str) -> GpuModel:
    """The catalogue model for a key (``H100-80GB``) or an NVML product name (``NVIDIA H100 80GB HBM3``)."""
    found = find_model(key_or_nvml_name)
    if found is None:
        known = ", ".join(m.key for m in models())
        raise BadInput(f"unknown GPU model {key_or_nvml_name!r} (the catalogue knows {known})")
    return found


# Models learned from driver-published tables for the advice being computed (see ``learned``).
_LEARNED: ContextVar[tuple[GpuModel, ...]] = ContextVar("slicewise_learned_models", default=())


@contextmanager
def learned(extra: Iterable[GpuModel]) -> Iterator[None]:
    """Within the block, :func:`find_model` and :func:`model` also know these models (after the catalogue's own).

    A context variable rather than an argument threaded through every caller: the advisor's planners, packers and
    config writers all look models up by name, and each advice run brings its own tables."""
    token = _LEARNED.set(tuple(extra))
    try:
        yield
    finally:
        _LEARNED.reset(token)


def resolve_model(key_or_nvml_name: str, extra: Iterable[GpuModel] = ()) -> GpuModel | None:
    """The catalogue's model for a key or NVML name, else one of ``extra`` (tables learned from a driver), else None."""
    for m in (*models(), *extra):
        if key_or_nvml_name == m.key or key_or_nvml_name in m.nvml_names:
            return m
    return None


def find_model(key_or_nvml_name: str) -> GpuModel | None:
    """Like :func:`model`, but ``None`` for a GPU neither the catalogue nor a learned table knows (it may still run,
    without MIG advice)."""
    return resolve_model(key_or_nvml_name, _LEARNED.get())


def check_geometry(gpu: GpuModel, placements: Iterable[Placement]) -> None:
    """Raise :class:`BadInput` unless the GPU instances can coexist on one GPU, as the driver would.

    The rules: each start is one the profile allows, no two instances share a memory slice, no profile exceeds its
    per-GPU maximum, the compute slices add up to at most the GPU's, and at most one ``+me`` instance.
    """
    placed = list(placements)
    used: dict[int, Placement] = {}
    for pl in placed:
        if pl.profile not in gpu.profiles:
            raise BadInput(f"{pl.profile.name} is not a MIG profile of {gpu.name}")
        if pl.start not in pl.profile.starts:
            raise BadInput(
                f"{pl.profile.name} cannot start at memory slice {pl.start} on {gpu.name} "
                f"(valid starts: {list(pl.profile.starts)})"
            )
        for s in pl.slices:
            if s in used:
                other = used[s]
                raise BadInput(
                    f"{pl.profile.name}@{pl.start} overlaps {other.profile.name}@{other.start} "
                    f"at memory slice {s} on {gpu.name}"
                )
            used[s] = pl
    problem = _over_limits(gpu, [pl.profile for pl in placed])
    if problem is not None:
        raise BadInput(problem)


def _over_limits(gpu: GpuModel, profiles: list[MigProfile]) -> str | None:
    """The first of :func:`check_geometry`'s rules that do not depend on where instances start (per-profile
    maxima, compute slices, one ``+me``) that ``profiles`` break, in words; None where they keep them all."""
    for prof, n in Counter(profiles).items():
        if n > prof.max_count:
            return f"{n} x {prof.name} on one {gpu.name}: at most {prof.max_count}"
    compute = sum(p.compute_slices for p in profiles)
    if compute > gpu.compute_slices:
        return f"MIG geometry uses {compute} compute slices on {gpu.name}: it has {gpu.compute_slices}"
    if sum(1 for p in profiles if p.media_extensions) > 1:
        return f"more than one +me MIG profile on one {gpu.name}: the GPU has one set of media engines"
    return None


def place(gpu: GpuModel, profile_names: Iterable[str]) -> tuple[Placement, ...]:
    """Place GPU instances of the named profiles at valid starts, largest first, as ``nvidia-smi mig -cgi`` would.

    Raises :class:`BadInput` when they cannot all fit on one GPU.
    """
    wanted = sorted((gpu.profile(n) for n in profile_names), key=lambda p: (-p.size, -p.compute_slices, p.name))
    starts = _starts(gpu, tuple(p.name for p in wanted))
    if starts is None:
        names = ", ".join(p.name for p in wanted)
        raise BadInput(f"MIG instances [{names}] do not fit on one {gpu.name}")
    return tuple(sorted((Placement(p, s) for p, s in zip(wanted, starts, strict=True)), key=lambda pl: pl.start))


@lru_cache(maxsize=4096)
def _starts(gpu: GpuModel, names: tuple[str, ...]) -> tuple[int, ...] | None:
    """Each instance's start (``names`` largest first), or None where they do not fit.

    Memoised: a fleet plan places the same few geometries on hundreds of GPUs. The search is the one
    :func:`check_geometry` would accept step by step: the per-GPU limits do not depend on where instances start, so
    they are checked once, and the backtracking over starts only has to avoid shared memory slices (bitmasks).
    """
    wanted = [gpu.profile(n) for n in names]
    if _over_limits(gpu, wanted) is not None:
        return None
    chosen: list[int] = []
    dead: set[tuple[int, int]] = set()  # (instance, slices in use) from which the rest cannot be placed

    def fill(i: int, used: int) -> bool:
        if i == len(wanted):
            return True
        if (i, used) in dead:
            return False
        prof = wanted[i]
        for start in prof.starts:
            mask = ((1 << prof.size) - 1) << start
            if used & mask:
                continue
            chosen.append(start)
            if fill(i + 1, used | mask):
                return True
            chosen.pop()
        dead.add((i, used))
        return False

    return tuple(chosen) if fill(0, 0) else None
