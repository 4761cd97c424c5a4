"""How many GPUs of one model the MIG instances need, and which geometry each GPU takes.

Exact: a cutting-stock integer program over the model's valid geometries (plan/geometries.py): x_g GPUs take
geometry g; minimise sum(x_g) subject to, for every profile p, sum_g count(g, p) * x_g >= demand(p). Its size is
(geometries x profiles), a few dozen by at most six, whatever the number of workloads, so HiGHS (scipy.optimize.milp)
solves it in milliseconds for 50 or 5,000 workloads alike.

Lower bound (proven, always reported): the largest of the LP relaxation rounded up, total compute slices / slices
per GPU, total memory slices / slices per GPU, and per profile its demand / most instances of it one GPU holds.

Fallback: if HiGHS hits its time limit without a solution, LP rounding: the LP relaxation's vertex solution
rounded down, the rest packed first-fit decreasing (largest instance first, into the first GPU where
``catalogue.place`` still finds valid starts). Rounding up instead would cover the demand with at most one GPU more
per demanded profile, so the fallback is never more than (profiles demanded, at most 6) GPUs above the lower bound.
The gap to the bound is reported either way.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.optimize import LinearConstraint, milp

from advisor.decide.fits import instances_per_gpu
from advisor.plan.geometries import Geometry, as_geometry, feasible, maximal_geometries
from slicewise.catalogue import GpuModel

ILP_TIME_LIMIT_S = 10.0


@dataclass(frozen=True)
class MigPacking:
    geometries: tuple[Geometry, ...]  # one per GPU, holding at least the demanded instances
    lower_bound: int
    method: str

    @property
    def gpus(self) -> int:
        return len(self.geometries)


def trivial_bound(gpu: GpuModel, demand: Counter[str]) -> int:
    """Bounds no packing can beat: compute slices, memory slices, and per-profile instance limits."""
    if not demand:
        return 0
    profiles = {p.name: p for p in gpu.profiles}
    compute = sum(profiles[p].compute_slices * n for p, n in demand.items())
    memory = sum(profiles[p].size * n for p, n in demand.items())
    per_profile = max(math.ceil(n / instances_per_gpu(gpu.key, p)) for p, n in demand.items())
    return max(math.ceil(compute / gpu.compute_slices), math.ceil(memory / gpu.memory_slices), per_profile)


def _matrix(gpu: GpuModel, demand: Counter[str]) -> tuple[list[str], tuple[Geometry, ...], np.ndarray]:
    names = sorted(demand)
    columns = maximal_geometries(gpu.key, names)
    a = np.array([[dict(g).get(p, 0) for g in columns] for p in names], dtype=float)
    return names, columns, a


def lp_bound(gpu: GpuModel, demand: Counter[str]) -> int:
    """The LP relaxation of the cutting-stock program, rounded up (tolerance for floating point)."""
    if not demand:
        return 0
    names, columns, a = _matrix(gpu, demand)
    d = np.array([demand[p] for p in names], dtype=float)
    res = milp(
        np.ones(len(columns)), constraints=LinearConstraint(a, lb=d, ub=np.inf), integrality=np.zeros(len(columns))
    )
    if res.x is None:
        return 0
    return math.ceil(float(res.fun) - 1e-6)


def first_fit_decreasing(
    gpu: GpuModel, demand: Counter[str], bins: list[Counter[str]] | None = None
) -> list[Counter[str]]:
    """Largest instances first (memory slices, then compute), each into the first GPU that still takes it.

    All instances of one profile go in a row, and a GPU that refused one never takes the next (it only fills up),
    so each profile sweeps the GPUs once: linear in the number of instances.
    """
    profiles = {p.name: p for p in gpu.profiles}
    order = sorted(demand, key=lambda p: (-profiles[p].size, -profiles[p].compute_slices, p))
    bins = [Counter(b) for b in bins] if bins else []
    for name in order:
        first = 0
        for _ in range(demand[name]):
            while first < len(bins):
                bins[first][name] += 1
                if feasible(gpu, dict(bins[first])):
                    break
                bins[first][name] -= 1
                first += 1
            else:
                bins.append(Counter({name: 1}))
    return bins


def lp_rounding(gpu: GpuModel, demand: Counter[str]) -> list[Counter[str]] | None:
    """Round the LP relaxation's vertex solution down, then pack what is left first-fit decreasing.

    Rounding every fractional geometry *up* instead would already cover the demand with at most one extra GPU per
    fractional variable, and a vertex has at most one per demanded profile: so this is within (profiles demanded)
    GPUs of the lower bound, and the residual packing usually does better than that guarantee.
    """
    names, columns, a = _matrix(gpu, demand)
    d = np.array([demand[p] for p in names], dtype=float)
    res = milp(
        np.ones(len(columns)), constraints=LinearConstraint(a, lb=d, ub=np.inf), integrality=np.zeros(len(columns))
    )
    if res.x is None:
        return None
    floor = np.floor(res.x + 1e-9).astype(int)
    bins = [Counter(dict(g)) for g, n in zip(columns, floor, strict=True) for _ in range(n)]
    covered = Counter[str]()
    for b in bins:
        covered.update(b)
    residual = Counter({p: n - covered[p] for p, n in demand.items() if n > covered[p]})
    rounded = first_fit_decreasing(gpu, residual, bins)
    ceiling = [
        Counter(dict(g)) for g, n in zip(columns, np.ceil(res.x - 1e-9).astype(int), strict=True) for _ in range(n)
    ]
    return rounded if len(rounded) <= len(ceiling) else ceiling


def pack_mig(gpu: GpuModel, demand: Counter[str], *, fallback: str | None = None) -> MigPacking:
    """GPUs (with their geometries) for ``demand`` (profile name -> instances) on one GPU model.

    ``fallback`` forces a heuristic ("lp-rounding" or "ffd") instead of the integer program, for comparison.
    """
    demand = Counter({p: n for p, n in demand.items() if n > 0})
    if not demand:
        return MigPacking((), 0, "no MIG instances")
    bound = max(trivial_bound(gpu, demand), lp_bound(gpu, demand))
    if fallback is None:
        names, columns, a = _matrix(gpu, demand)
        d = np.array([demand[p] for p in names], dtype=float)
        res = milp(
            np.ones(len(columns)),
            constraints=LinearConstraint(a, lb=d, ub=np.inf),
            integrality=np.ones(len(columns)),
            options={"time_limit": ILP_TIME_LIMIT_S},
        )
        if res.x is not None:
            counts = np.rint(res.x).astype(int)
            if np.all(a @ counts >= d):
                chosen = tuple(g for g, n in zip(columns, counts, strict=True) for _ in range(n))
                if res.status == 0:
                    return MigPacking(chosen, bound, "integer program (optimal)")
                gap = len(chosen) - bound
                return MigPacking(chosen, bound, f"integer program (time limit; {gap} GPU(s) above the lower bound)")
    bins = lp_rounding(gpu, demand) if fallback != "ffd" else None
    name = "LP rounding with first-fit decreasing"
    if bins is None:
        bins, name = first_fit_decreasing(gpu, demand), "first-fit decreasing"
    gap = len(bins) - bound
    return MigPacking(tuple(as_geometry(dict(b)) for b in bins), bound, f"{name} ({gap} GPU(s) above the lower bound)")
