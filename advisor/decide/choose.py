"""The rule chain: which way to share a GPU, with the reasons in plain sentences.

1. Time-slicing, if the work is mostly idle and it packs more per GPU than MIG would, or MIG would throttle its
   bursts (p99 compute above the slice) and time-slicing needs no more GPUs for them: bursts get the whole GPU.
2. MPS, if the workloads trust each other, MIG's 1/7 compute steps are too coarse for them (the smallest slice
   that fits gives >= 1.5x the compute needed), and their own MPS GPUs (an MPS server is shared only within its
   trust domain) are fewer than the GPUs their MIG slices would fill: fine-grained compute shares.
3. MIG with the smallest profile that covers the need: hardware isolation, flat latency.
4. Exclusive: nothing short of a whole GPU covers the need.
Isolation is only given up for a gain: with equal packing MIG wins, because its isolation then costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from advisor.decide.contention import CoBusy
from advisor.decide.demand import Demand, gib, pct
from advisor.decide.fits import Fit, NoFit, exclusive_fit, mig_fit, mps_fit, timeslice_fit
from advisor.decide.rules import Rules
from advisor.model import Mode, WorkloadKey
from slicewise.catalogue import GpuModel

_NOS = "nos measured, for 7 pods on an A100-80GB, 0.320 s mean latency with MPS, 0.344 s with MIG, 0.685 s time-sliced"
_MIG_FLAT = (
    "MIG isolates memory, cache and SMs in hardware, so its latency stays flat however busy its neighbours are "
    "(nos: 0.342 s with 1 pod, 0.344 s with 7) and one tenant's fault or OOM cannot touch another"
)
_COMPUTE_UNKNOWN = (
    "Compute was not measured on this GPU (A100/A30 MIG has no per-instance SM activity without dcgm-exporter's "
    "profiling metrics), so the profile is chosen by memory alone: watch its throughput after the change, or add "
    "dcgm-exporter so the next run can size compute too."
)


@dataclass(frozen=True)
class Choice:
    fit: Fit
    reasons: tuple[str, ...]


def _mig_phrase(mig: Fit | NoFit) -> str:
    if isinstance(mig, Fit) and mig.profile is not None:
        return f"{mig.per_gpu} per GPU with MIG {mig.profile.name}"
    return "1 per GPU, since MIG cannot hold it short of a whole GPU"


def _mig_overshoot(mig: Fit | NoFit, d: Demand) -> float:
    """How many times the compute it needs the MIG slice gives (infinite where no slice short of a GPU fits)."""
    need_c = d.compute_need
    if not isinstance(mig, Fit):
        return float("inf")
    if need_c is None:
        return 1.0
    return mig.compute_limit / max(need_c, 1e-6)


def _timeslice_pays(ts: Fit, mig: Fit | NoFit, d: Demand) -> bool:
    """Time-slicing for mostly-idle work: where it packs more per GPU than MIG, or where MIG would throttle the
    bursts (p99 compute above the slice) and time-slicing costs the workloads no more GPUs than MIG slices would."""
    if not isinstance(mig, Fit) or ts.per_gpu > mig.per_gpu:
        return ts.per_gpu > (mig.per_gpu if isinstance(mig, Fit) else 1)
    bursts_throttled = (d.compute_burst or 0.0) > mig.compute_limit
    return bursts_throttled and math.ceil(d.instances / ts.per_gpu) <= math.ceil(d.instances / mig.per_gpu)


def measured_timeslice(
    ts: Fit | NoFit, pool: Sequence[WorkloadKey], gpu: GpuModel, rules: Rules, cobusy: CoBusy | None
) -> tuple[Fit | NoFit, float | None]:
    """Time-slicing replicas cut down until the contention measured in the history (decide/contention.py) is at
    most ``Rules.timeslice_max_contention``; no time-slicing where even two tenants contend more than that."""
    if not isinstance(ts, Fit) or ts.replicas is None or cobusy is None:
        return ts, None
    measured = None
    for replicas in range(ts.replicas, 1, -1):
        measured = cobusy.contention(pool, replicas)
        if measured is None or measured <= rules.timeslice_max_contention:
            return replace(
                ts, replicas=replicas, per_gpu=replicas, memory_limit_bytes=gpu.memory_total_bytes // replicas
            ), measured
    assert measured is not None
    return NoFit(
        Mode.TIMESLICE,
        f"in the history, when one of these workloads was busy another was busy {pct(measured)} of the time even "
        f"with two per GPU (measured; at most {pct(rules.timeslice_max_contention)} allowed)",
    ), measured


def choose(
    d: Demand,
    gpu: GpuModel,
    rules: Rules,
    cobusy: CoBusy | None = None,
    pool: Sequence[WorkloadKey] | None = None,
) -> Choice:
    """The mode for demand ``d``; ``cobusy`` (who was busy when, from a history file) and ``pool`` (the workloads
    that may share its time-sliced GPUs, by default its members) let time-slicing use measured contention."""
    mig = mig_fit(d, gpu)
    # where who was busy when is known, measured contention bounds the replicas instead of duty cycles taken as
    # independent (the memory bound and the replica cap stay)
    unbounded = replace(rules, timeslice_max_busy_cotenants=float(rules.timeslice_max_replicas)) if cobusy else rules
    ts, measured = measured_timeslice(
        timeslice_fit(d, gpu, unbounded), pool or [m.key for m in d.members], gpu, rules, cobusy
    )
    mps = mps_fit(d, gpu, rules)
    mig_per_gpu = mig.per_gpu if isinstance(mig, Fit) else 1
    sized = d.size_sentence

    if isinstance(ts, Fit) and ts.replicas is not None and _timeslice_pays(ts, mig, d):
        assert d.duty_cycle is not None and d.compute_mean is not None
        r = ts.replicas
        if ts.per_gpu > mig_per_gpu:
            packing = f"That packs {r} per GPU against {_mig_phrase(mig)}."
        else:
            assert isinstance(mig, Fit) and mig.profile is not None
            packing = (
                f"Its bursts (p99 {d.compute_burst or 0:.2f} of a GPU) outrun MIG {mig.profile.name}'s "
                f"{mig.compute_limit:.2f}, and its {d.instances} workloads need no more GPUs time-sliced "
                f"({math.ceil(d.instances / r)}) than on MIG slices ({math.ceil(d.instances / mig.per_gpu)})."
            )
        return Choice(
            ts,
            (
                sized,
                f"Mostly idle: busy in {pct(d.duty_cycle)} of samples with mean compute {d.compute_mean:.2f} of a "
                "GPU, so time-slicing lets each burst use the whole GPU (nos: 0.088 s alone time-sliced vs 0.342 s "
                "on a small MIG slice).",
                f"{r} replicas: {r} x {gib(d.memory_need_bytes)} = {gib(r * d.memory_need_bytes)} fits the GPU's "
                f"{gib(gpu.memory_total_bytes)}, and "
                + (
                    f"in the history a burst would have met another busy tenant {pct(measured)} of the time "
                    f"(measured; at most {pct(rules.timeslice_max_contention)} allowed)."
                    if measured is not None
                    else f"a burst meets on average {(r - 1) * d.duty_cycle:.2f} other busy tenants (at most "
                    f"{rules.timeslice_max_busy_cotenants:.2f} allowed; estimated from duty cycles, tenants taken "
                    "as independent)."
                ),
                packing,
                f"Time-slicing has no memory isolation: each tenant's share, {gib(ts.memory_limit_bytes)}, covers "
                "its peak plus headroom, but a tenant growing past its past peak can OOM the others.",
            ),
        )

    overshoot = _mig_overshoot(mig, d)
    if (
        isinstance(mps, Fit)
        and mps.replicas is not None
        and overshoot >= rules.mps_min_mig_overshoot
        and math.ceil(d.instances / mps.per_gpu) < d.instances / mig_per_gpu
    ):
        trust = "already share an MPS server" if d.already_mps else f"all run in namespace {min(d.namespaces)!r}"
        coarse = (
            f"the smallest MIG slice that covers them gives {overshoot:.1f}x the compute they need"
            if isinstance(mig, Fit)
            else "no MIG slice short of a whole GPU covers them"
        )
        return Choice(
            mps,
            (
                sized,
                f"Its workloads {trust}, and MIG is too coarse for them ({coarse}): MPS gives each of {mps.replicas} "
                f"clients {mps.mps_active_thread_percentage} % of the SMs (CUDA_MPS_ACTIVE_THREAD_PERCENTAGE) and "
                f"{gib(mps.memory_limit_bytes)} of pinned memory (CUDA_MPS_PINNED_DEVICE_MEM_LIMIT), the even split "
                "the device plugin's MPS mode makes.",
                f"That packs {mps.replicas} per GPU against {_mig_phrase(mig)}: its {d.instances} workloads "
                f"(and replicas) need {math.ceil(d.instances / mps.per_gpu)} GPU(s) of their own, less than the "
                f"{d.instances / mig_per_gpu:.1f} GPUs their MIG slices would fill; {_NOS}.",
                f"Time-slicing was not chosen: {ts.reason}." if isinstance(ts, NoFit) else "",
                f"MPS has no fault isolation: a fatal error in one client ends all {mps.replicas} on the GPU.",
            ),
        )

    if isinstance(mig, Fit) and mig.profile is not None:
        reasons = [
            sized,
            f"MIG {mig.profile.name} ({gib(mig.memory_limit_bytes)}, {mig.compute_limit:.2f} of the GPU's SMs) is "
            f"the smallest slice that covers it; {mig.per_gpu} fit on one GPU.",
            _MIG_FLAT + ".",
        ]
        if isinstance(ts, NoFit):
            reasons.append(f"Time-slicing was not chosen: {ts.reason}.")
        else:
            reasons.append(f"Time-slicing would pack no more ({ts.per_gpu} per GPU), so MIG's isolation comes free.")
        if isinstance(mps, NoFit):
            reasons.append(f"MPS was not chosen: {mps.reason}.")
        elif mps.per_gpu <= mig.per_gpu:
            reasons.append(f"MPS would pack no more ({mps.per_gpu} per GPU), so MIG's isolation comes free.")
        elif overshoot >= rules.mps_min_mig_overshoot:
            reasons.append(
                f"MPS was not chosen: an MPS server is shared only by workloads that trust each other, and its "
                f"{d.instances} workload(s) would need {math.ceil(d.instances / mps.per_gpu)} GPU(s) of their own, "
                f"no fewer than the {d.instances / mig.per_gpu:.1f} GPUs their MIG slices fill beside others."
            )
        else:
            reasons.append(
                f"MPS was not chosen: MIG {mig.profile.name} gives {overshoot:.1f}x the compute needed, close enough "
                f"that its isolation is worth more than MPS's {mps.per_gpu} per GPU."
            )
        if not d.compute_known:
            reasons.append(_COMPUTE_UNKNOWN)
        return Choice(mig, tuple(r for r in reasons if r))

    whole = exclusive_fit(gpu)
    reasons = [sized, f"It needs a whole GPU: {mig.reason if isinstance(mig, NoFit) else ''}."]
    if isinstance(ts, NoFit):
        reasons.append(f"Time-slicing was not chosen: {ts.reason}.")
    if isinstance(mps, NoFit):
        reasons.append(f"MPS was not chosen: {mps.reason}.")
    if d.memory_need_bytes > gpu.memory_total_bytes:
        reasons.append(
            f"Even a whole {gpu.name} ({gib(gpu.memory_total_bytes)}) leaves it less than "
            f"{pct(d.headroom)} headroom over its {gib(d.memory_peak_bytes)} peak."
        )
    return Choice(whole, tuple(r for r in reasons if r))


def mode_name(mode: Mode) -> str:
    return {Mode.MIG: "MIG", Mode.MPS: "MPS", Mode.TIMESLICE: "time-slicing", Mode.EXCLUSIVE: "a whole GPU"}[mode]
