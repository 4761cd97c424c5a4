"""Can a demand be met by MIG, time-slicing, MPS or a whole GPU on one GPU model, and at what size?

Each ``*_fit`` returns a :class:`Fit` (the setting and how many such workloads one GPU holds) or a :class:`NoFit`
with the plain reason why not; choose.py compares them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from advisor.decide.demand import Demand, gib, pct
from advisor.decide.rules import Rules
from advisor.model import Mode
from slicewise.catalogue import GpuModel, MigProfile, model, place
from slicewise.errors import BadInput


@dataclass(frozen=True)
class Fit:
    mode: Mode
    memory_limit_bytes: int
    compute_limit: float  # GPU fraction the workload may use
    per_gpu: int  # how many such workloads one GPU holds
    profile: MigProfile | None = None
    replicas: int | None = None
    mps_active_thread_percentage: int | None = None


@dataclass(frozen=True)
class NoFit:
    mode: Mode
    reason: str


def profile_compute(gpu: GpuModel, profile: MigProfile) -> float:
    """A MIG profile's compute as a fraction of the whole GPU's SMs (DESIGN.md's normalisation)."""
    return profile.sm_count / gpu.sm_count


def shareable_profiles(gpu: GpuModel) -> tuple[MigProfile, ...]:
    """Profiles the advisor recommends: not the whole GPU (that is `exclusive`), not +me (the GPU's only media
    engines, for video work the history cannot see)."""
    return tuple(p for p in gpu.profiles if not p.media_extensions and p.compute_slices < gpu.compute_slices)


@cache
def instances_per_gpu(gpu_key: str, profile_name: str) -> int:
    """How many instances of one profile fit on one GPU, as the driver would place them."""
    gpu = model(gpu_key)
    profile = gpu.profile(profile_name)
    count = 0
    # the per-GPU maximum and the slice totals first: place's backtracking is slow to refuse what cannot fit
    while (
        count < profile.max_count
        and (count + 1) * profile.compute_slices <= gpu.compute_slices
        and (count + 1) * profile.size <= gpu.memory_slices
    ):
        try:
            place(gpu, [profile_name] * (count + 1))
        except BadInput:
            break
        count += 1
    return count


def _share(gpu: GpuModel, p: MigProfile) -> tuple[float, int, int]:
    """How much of a GPU a profile takes (the larger of its compute and memory shares); ties go to fewer SMs."""
    return (max(p.compute_slices / gpu.compute_slices, p.size / gpu.memory_slices), p.compute_slices, p.memory_mib)


def slice_share(gpu: GpuModel, profile: MigProfile) -> float:
    """The fraction of a GPU one instance of ``profile`` takes: the larger of its compute and memory slices."""
    return _share(gpu, profile)[0]


def mig_fit(d: Demand, gpu: GpuModel) -> Fit | NoFit:
    """The smallest MIG profile whose memory covers the need and whose SMs cover the compute need (if measured)."""
    need_c = d.compute_need
    fitting = [
        p
        for p in shareable_profiles(gpu)
        if p.memory_bytes >= d.memory_need_bytes and (need_c is None or profile_compute(gpu, p) >= need_c)
    ]
    if not fitting:
        largest = max(shareable_profiles(gpu), key=lambda p: (p.memory_mib, p.sm_count))
        return NoFit(
            Mode.MIG,
            f"no MIG slice short of the whole GPU fits: the largest, {largest.name}, has "
            f"{gib(largest.memory_bytes)} and {profile_compute(gpu, largest):.2f} of the compute",
        )
    best = min(fitting, key=lambda p: _share(gpu, p))
    return Fit(
        mode=Mode.MIG,
        memory_limit_bytes=best.memory_bytes,
        compute_limit=profile_compute(gpu, best),
        per_gpu=instances_per_gpu(gpu.key, best.name),
        profile=best,
    )


def timeslice_fit(d: Demand, gpu: GpuModel, rules: Rules) -> Fit | NoFit:
    """Replicas for mostly-idle work: each tenant's peak plus headroom fits its equal share of the GPU's memory
    (the scheduler may put any `replicas` pods together), and few co-tenants are busy during a burst."""
    if d.duty_cycle is None or d.compute_mean is None:
        return NoFit(Mode.TIMESLICE, "its compute was not measured, so it cannot be shown to be mostly idle")
    if d.duty_cycle > rules.idle_duty_cycle:
        return NoFit(
            Mode.TIMESLICE,
            f"it is busy in {pct(d.duty_cycle)} of samples, more than the {pct(rules.idle_duty_cycle)} of a "
            f"mostly-idle workload, and time-slicing makes busy tenants take turns",
        )
    # an idle workload (no memory held all window) needs no memory share: it is not what limits the replicas
    by_memory = gpu.memory_total_bytes // max(d.memory_need_bytes, 1)
    by_contention = (
        rules.timeslice_max_replicas
        if d.duty_cycle * rules.timeslice_max_replicas <= rules.timeslice_max_busy_cotenants
        else math.floor(1 + rules.timeslice_max_busy_cotenants / d.duty_cycle + 1e-9)
    )
    replicas = int(min(by_memory, by_contention, rules.timeslice_max_replicas))
    if replicas < 2:
        why = (
            f"two tenants with headroom need {gib(2 * d.memory_need_bytes)}, more than the GPU's "
            f"{gib(gpu.memory_total_bytes)}"
            if by_memory < 2
            else f"with a {pct(d.duty_cycle)} duty cycle even two tenants would contend too often"
        )
        return NoFit(Mode.TIMESLICE, why)
    return Fit(
        mode=Mode.TIMESLICE,
        memory_limit_bytes=gpu.memory_total_bytes // replicas,
        compute_limit=1.0,
        per_gpu=replicas,
        replicas=replicas,
    )


def mps_compute_need(d: Demand, rules: Rules) -> float | None:
    """The SM share an MPS client must be given: its p95, or for mostly-idle work its p99, since MPS holds every
    burst to the client's share (time-slicing gives a burst the whole GPU)."""
    need_c = d.compute_need
    if need_c is None:
        return None
    if d.duty_cycle is not None and d.duty_cycle <= rules.idle_duty_cycle and d.compute_burst is not None:
        return max(need_c, d.compute_burst)
    return need_c


def mps_split(gpu: GpuModel, replicas: int) -> Fit:
    """The device plugin's MPS mode: every client gets 1/replicas of the memory and ``100 // replicas`` % of the
    SMs (CUDA_MPS_PINNED_DEVICE_MEM_LIMIT, CUDA_MPS_ACTIVE_THREAD_PERCENTAGE)."""
    threads = 100 // replicas
    return Fit(
        mode=Mode.MPS,
        memory_limit_bytes=gpu.memory_total_bytes // replicas,
        compute_limit=threads / 100,
        per_gpu=replicas,
        replicas=replicas,
        mps_active_thread_percentage=threads,
    )


def mps_replicas(d: Demand, gpu: GpuModel, rules: Rules) -> int | None:
    """The most MPS clients per GPU (at most ``Rules.mps_max_replicas``) whose even split still covers the demand's
    memory need and the SMs it must be given (``mps_compute_need``); None where not even two do."""
    need_c = mps_compute_need(d, rules)
    if need_c is None:
        return None
    for replicas in range(rules.mps_max_replicas, 1, -1):
        split = mps_split(gpu, replicas)
        if split.memory_limit_bytes >= d.memory_need_bytes and split.compute_limit >= need_c:
            return replicas
    return None


def mps_fit(d: Demand, gpu: GpuModel, rules: Rules) -> Fit | NoFit:
    """The most replicas whose even split (the device plugin's MPS mode splits memory and SMs evenly) still
    covers the memory and compute need, for workloads that trust each other."""
    need_c = mps_compute_need(d, rules)
    if need_c is None:
        return NoFit(Mode.MPS, "its compute was not measured, so no active-thread percentage can be set")
    if not d.trusted:
        return NoFit(
            Mode.MPS,
            "its workloads are not known to trust each other (not one namespace, not under MPS today), "
            "and MPS clients share one server with no fault isolation",
        )
    replicas = mps_replicas(d, gpu, rules)
    if replicas is not None:
        return mps_split(gpu, replicas)
    return NoFit(
        Mode.MPS,
        f"even two MPS replicas (half the memory, {gib(gpu.memory_total_bytes // 2)}, and 50 % of the SMs each) "
        "do not cover its need",
    )


def exclusive_fit(gpu: GpuModel) -> Fit:
    return Fit(mode=Mode.EXCLUSIVE, memory_limit_bytes=gpu.memory_total_bytes, compute_limit=1.0, per_gpu=1)
