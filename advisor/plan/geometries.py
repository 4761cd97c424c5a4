"""Every MIG geometry one GPU can take, enumerated once per GPU model from the catalogue's placement rules.

A geometry is a multiset of profiles that ``catalogue.place`` can lay out at valid starts. There are few (tens per
model), because a GPU has 7 compute and 8 memory slices, so the fleet plan can list them all and choose how many
GPUs take each one (plan/mig.py), instead of searching over placements workload by workload.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from advisor.decide.fits import shareable_profiles
from slicewise.catalogue import GpuModel, model, place
from slicewise.errors import BadInput

Geometry = tuple[tuple[str, int], ...]  # ((profile name, count), ...) sorted by name, counts >= 1


def as_geometry(counts: dict[str, int]) -> Geometry:
    return tuple(sorted((p, n) for p, n in counts.items() if n > 0))


def fits_one_gpu(gpu: GpuModel, profile_names: Iterable[str]) -> bool:
    """Whether ``catalogue.place`` lays these instances out at valid starts. Cheap necessary conditions (slices,
    per-profile maxima) go first: place's backtracking is slowest on the sets that cannot fit at all."""
    names = list(profile_names)
    profiles = [gpu.profile(n) for n in names]
    if (
        sum(p.compute_slices for p in profiles) > gpu.compute_slices
        or sum(p.size for p in profiles) > gpu.memory_slices
    ):
        return False
    if any(names.count(p.name) > p.max_count for p in set(profiles)):
        return False
    try:
        place(gpu, names)
    except BadInput:
        return False
    return True


@cache
def _feasible(gpu_key: str, geometry: Geometry) -> bool:
    return fits_one_gpu(model(gpu_key), [p for p, n in geometry for _ in range(n)])


def feasible(gpu: GpuModel, counts: dict[str, int]) -> bool:
    """Whether these instances fit on one GPU; cached, so packing heuristics can ask often."""
    return _feasible(gpu.key, as_geometry(counts))


@cache
def all_geometries(gpu_key: str) -> tuple[Geometry, ...]:
    """Every non-empty valid geometry over the profiles the advisor recommends (shareable_profiles)."""
    gpu = model(gpu_key)
    names = [p.name for p in shareable_profiles(gpu)]
    found: list[Geometry] = []

    def grow(i: int, counts: dict[str, int]) -> None:
        if i == len(names):
            if counts:
                found.append(as_geometry(counts))
            return
        grow(i + 1, counts)
        n = 1
        while True:
            trial = {**counts, names[i]: n}
            if not feasible(gpu, trial):  # adding more of a profile never makes an infeasible geometry feasible
                break
            grow(i + 1, trial)
            n += 1

    grow(0, {})
    return tuple(found)


def maximal_geometries(gpu_key: str, profiles: Iterable[str]) -> tuple[Geometry, ...]:
    """Valid geometries restricted to ``profiles``, keeping only those no other one dominates (>= in every count).

    With covering constraints (at least the demanded instances), a dominated geometry is never needed.
    """
    wanted = set(profiles)
    projected = {tuple((p, n) for p, n in g if p in wanted) for g in all_geometries(gpu_key)}
    projected.discard(())
    as_dicts = [dict(g) for g in projected]

    def dominated(a: dict[str, int]) -> bool:
        return any(b != a and all(b.get(p, 0) >= n for p, n in a.items()) for b in as_dicts)

    return tuple(sorted(as_geometry(g) for g in as_dicts if not dominated(g)))
