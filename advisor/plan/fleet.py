"""The fleet after the change: GPUs per model, each GPU's MIG geometry or sharing group, and the lower bound.

Per GPU model, workloads form pools of interchangeable slots: the instances of one MIG profile, the replicas of
one time-slicing or MPS setup (per trust domain), whole GPUs. A pool needs as many slots as the most of its
workloads' devices present at once (plan/presence.py; with no presence information, every device of every
workload): a notebook closed at night or a job between runs holds nothing. Then:
- MIG slots are packed onto GPUs by plan/mig.py (integer program over the valid geometries);
- time-slicing and MPS slots fill GPUs of their replicas setting, ``ceil(slots / replicas)`` per pool: the device
  plugin advertises the same replicas on every GPU of a node config and any ``replicas`` pods may land together,
  so pools do not mix (exact, so it is also the bound); whole-GPU slots take a GPU each;
- a workload that fits no GPU of its model keeps ``ceil(peak / GPU memory)`` GPUs per device as it runs today,
  and a model the catalogue does not know keeps the GPUs it has.
Each slot lists the workloads that take turns on it (each workload's replicas on distinct slots). The bound is
proven for the decisions made: no packing of these slots uses fewer GPUs.
The planned GPUs are then laid out on node slots of the size the history shows (``gpus_per_node``), each node
holding one sharing setup (MIG, or one time-slicing / MPS config, or whole GPUs), since the device plugin's config
is chosen per node; the mig-parted config maps each MIG node's devices to their geometries.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import replace

from advisor.model import (
    FleetPlan,
    MigInstance,
    Mode,
    ModelPlan,
    PlannedGpu,
    Unplaced,
    WorkloadRecommendation,
)
from advisor.plan.geometries import Geometry
from advisor.plan.mig import pack_mig
from advisor.plan.node_setup import NodeSetup, gpu_setup, merged
from advisor.plan.presence import BusyGpus, Presence
from advisor.plan.utilisation import utilisation
from slicewise.catalogue import GpuModel, find_model, place

DEFAULT_GPUS_PER_NODE = 8  # an HGX/DGX node, where the history does not say


def mig_config_name(gpu: GpuModel, geometry: Geometry) -> str:
    """A mig-parted config name that says what it makes, e.g. ``h100-80gb-2x3g.40gb``."""
    profiles = {p.name: p for p in gpu.profiles}
    parts = sorted(geometry, key=lambda pn: (-profiles[pn[0]].size, -profiles[pn[0]].compute_slices, pn[0]))
    return f"{gpu.key.lower()}-" + "-".join(f"{n}x{p}" for p, n in parts)


def _slots(recs: Sequence[WorkloadRecommendation], presence: Presence | None) -> int:
    """Interchangeable slots a pool needs: the most of its workloads' devices present at once (plan/presence.py),
    or every device of every workload where presence is unknown."""
    total = sum(w.features.devices for w in recs)
    if presence is None:
        return total
    seen = [w.features.key for w in recs if w.features.key in presence.keys]
    unseen = sum(w.features.devices for w in recs if w.features.key not in presence.keys)
    together = (presence.peak(seen) or 0) + unseen
    return min(total, max(together, *(w.features.devices for w in recs)))


def _assign(recs: Sequence[WorkloadRecommendation], slots: int) -> list[list[str]]:
    """Workloads per slot: each workload's replicas on distinct slots, round robin, so the slots fill evenly."""
    holders: list[list[str]] = [[] for _ in range(slots)]
    cursor = 0
    for w in sorted(recs, key=lambda w: w.workload):
        for _ in range(w.features.devices):
            holders[cursor % slots].append(w.workload)
            cursor += 1
    return holders


def _mig_gpus(
    gpu: GpuModel,
    gpu_model: str,
    recs: Sequence[WorkloadRecommendation],
    presence: Presence | None,
    fallback: str | None,
) -> tuple[list[PlannedGpu], int, str]:
    """MIG slots packed onto GPUs. A profile's workloads that share their slices (decision.replicas, from
    decide/shared_slices.py) need ``ceil(present at once / replicas)`` slices, the others one per present device;
    all of them are packed together, shared slots first, and a GPU holding a shared slice of a profile has every
    slice of that profile time-sliced alike (the device plugin's time-slicing of ``nvidia.com/mig-<profile>`` is a
    per-node setting): a workload alone on such a slice is then advertised as ``replicas`` units, so the
    resource requests pin it (configs/)."""
    shared: dict[str, list[WorkloadRecommendation]] = defaultdict(list)
    whole: dict[str, list[WorkloadRecommendation]] = defaultdict(list)
    replicas: dict[str, int] = {}
    for w in recs:
        assert w.decision.profile is not None
        if w.decision.replicas:
            shared[w.decision.profile].append(w)
            replicas[w.decision.profile] = w.decision.replicas
        else:
            whole[w.decision.profile].append(w)
    queues: dict[str, deque[tuple[list[str], bool]]] = defaultdict(deque)
    for p, members in sorted(shared.items()):
        queues[p].extend((h, True) for h in _assign(members, math.ceil(_slots(members, presence) / replicas[p])))
    for p, members in sorted(whole.items()):
        queues[p].extend((h, False) for h in _assign(members, _slots(members, presence)))
    packing = pack_mig(gpu, Counter({p: len(q) for p, q in queues.items()}), fallback=fallback)
    planned: list[PlannedGpu] = []
    for geometry in packing.geometries:
        # fill this GPU's instances from the queues; instances left empty are dropped (a subset of a valid
        # geometry is valid), so the config creates only what is used
        used: list[tuple[str, list[str], bool]] = []
        for profile, count in geometry:
            for _ in range(count):
                if queues[profile]:
                    holders_, is_shared = queues[profile].popleft()
                    used.append((profile, holders_, is_shared))
        if not used:
            continue
        time_sliced = {p for p, _, is_shared in used if is_shared}
        placements = place(gpu, [p for p, _, _ in used])
        holders: dict[str, deque[list[str]]] = defaultdict(deque)
        for profile, workloads, _ in used:
            holders[profile].append(workloads)
        instances = tuple(
            MigInstance(
                profile=pl.profile.name,
                start=pl.start,
                size=pl.profile.size,
                workloads=tuple(holders[pl.profile.name].popleft()),
                replicas=replicas[pl.profile.name] if pl.profile.name in time_sliced else None,
            )
            for pl in placements
        )
        trimmed = tuple(sorted(Counter(p for p, _, _ in used).items()))
        planned.append(
            PlannedGpu(
                gpu_model=gpu_model,
                index=0,
                mode=Mode.MIG,
                mig_config=mig_config_name(gpu, trimmed),
                mig_instances=instances,
                workloads=tuple(w for i in instances for w in i.workloads),
                replicas=None,
                mps_active_thread_percentage=None,
                memory_committed_bytes=sum(pl.profile.memory_bytes for pl in placements),
                compute_committed_gpu_fraction=round(sum(pl.profile.sm_count for pl in placements) / gpu.sm_count, 4),
            )
        )
    assert not any(queues.values()), "every MIG slot demanded is placed"
    return planned, packing.lower_bound, packing.method


def _group_gpus(
    gpu: GpuModel, gpu_model: str, recs: Sequence[WorkloadRecommendation], presence: Presence | None
) -> list[PlannedGpu]:
    """Time-slicing and MPS pools, ``replicas`` slots per GPU; whole GPUs one slot each."""
    groups: dict[tuple[Mode, int, int | None, str], list[WorkloadRecommendation]] = defaultdict(list)
    for w in recs:
        replicas = w.decision.replicas if w.decision.mode in (Mode.TIMESLICE, Mode.MPS) else 1
        # an MPS server is shared only within its trust domain (decision.sharing_group)
        key = (w.decision.mode, replicas or 1, w.decision.mps_active_thread_percentage, w.decision.sharing_group or "")
        groups[key].append(w)
    planned = []
    order = {Mode.MPS: 0, Mode.TIMESLICE: 1, Mode.EXCLUSIVE: 2}
    for (mode, replicas, threads, group), members in sorted(
        groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1], kv[0][3])
    ):
        limit = {w.workload: w.decision for w in members}
        holders = _assign(members, _slots(members, presence))
        for i in range(0, len(holders), replicas):
            chunk = holders[i : i + replicas]
            names = tuple(w for slot in chunk for w in slot)
            slot_memory = max(limit[w].memory_limit_bytes for w in names)
            slot_compute = max(limit[w].compute_limit_gpu_fraction for w in names)
            planned.append(
                PlannedGpu(
                    gpu_model=gpu_model,
                    index=0,
                    mode=mode,
                    mig_config=None,
                    mig_instances=(),
                    workloads=names,
                    replicas=replicas if mode in (Mode.TIMESLICE, Mode.MPS) else None,
                    mps_active_thread_percentage=threads,
                    memory_committed_bytes=(
                        gpu.memory_total_bytes if mode == Mode.EXCLUSIVE else len(chunk) * slot_memory
                    ),
                    compute_committed_gpu_fraction=(round(len(chunk) * slot_compute, 4) if mode == Mode.MPS else 1.0),
                    sharing_group=group or None,
                )
            )
    return planned


def _on_nodes(planned: Sequence[PlannedGpu], per_node: int) -> list[PlannedGpu]:
    """Number the GPUs and lay them out on node slots of ``per_node`` GPUs, first fit: a GPU joins the first node
    with room whose device-plugin config can serve it too (plan/node_setup.py: MIG and whole GPUs share a node
    under ``mixed``, MPS nodes stay apart), else opens a node. Identical MIG geometries come next to each other, so
    most MIG nodes take one mig-parted config for all their GPUs."""
    nodes: list[tuple[NodeSetup, int]] = []  # per node slot: its setup so far, GPUs on it
    out: list[PlannedGpu] = []
    for i, g in enumerate(planned):
        mine = gpu_setup(g)
        for slot, (setup, count) in enumerate(nodes):
            both = merged(setup, mine) if count < per_node else None
            if both is not None:
                nodes[slot] = (both, count + 1)
                out.append(replace(g, index=i, node_slot=slot, device_index=count))
                break
        else:
            nodes.append((mine, 1))
            out.append(replace(g, index=i, node_slot=len(nodes) - 1, device_index=0))
    return out


def plan_fleet(
    workloads: Sequence[WorkloadRecommendation],
    gpus_now: Mapping[str, int],
    unplaced: Sequence[Unplaced] = (),
    *,
    gpus_per_node: Mapping[str, int] | None = None,
    presence: Presence | None = None,
    fallback: str | None = None,
    busy: BusyGpus | None = None,
) -> FleetPlan:
    """Plan every GPU model the history shows (``gpus_now``: NVML product name -> distinct GPUs seen;
    ``gpus_per_node``: the most GPUs of a model on one node, default 8; ``presence``: who ran at the same time, so
    pools are sized for their busiest moment, not for every workload at once)."""
    unplaced_keys = {(u.workload, u.gpu_model) for u in unplaced}
    by_model: dict[str, list[WorkloadRecommendation]] = defaultdict(list)
    kept: dict[str, int] = defaultdict(int)
    for w in workloads:
        gpu = find_model(w.gpu_model)
        if (w.workload, w.gpu_model) in unplaced_keys:
            if gpu is not None:
                per_replica = max(1, math.ceil(w.features.memory_peak_bytes / gpu.memory_total_bytes))
                kept[w.gpu_model] += w.features.devices * per_replica
            continue
        by_model[w.gpu_model].append(w)

    model_plans: list[ModelPlan] = []
    gpus: list[PlannedGpu] = []
    for gpu_model in sorted(set(gpus_now) | set(by_model) | set(kept)):
        now = gpus_now.get(gpu_model, 0)
        gpu = find_model(gpu_model)
        if gpu is None:
            model_plans.append(
                ModelPlan(gpu_model, now, now, now, "not planned: the catalogue does not know this GPU (kept as is)")
            )
            continue
        recs = by_model.get(gpu_model, [])
        mig_recs = [w for w in recs if w.decision.mode == Mode.MIG]
        mig_gpus, mig_bound, method = (
            _mig_gpus(gpu, gpu_model, mig_recs, presence, fallback) if mig_recs else ([], 0, "")
        )
        other = _group_gpus(gpu, gpu_model, [w for w in recs if w.decision.mode != Mode.MIG], presence)
        per_node = max(1, (gpus_per_node or {}).get(gpu_model, DEFAULT_GPUS_PER_NODE))
        planned = _on_nodes([*sorted(mig_gpus, key=lambda g: g.mig_config or ""), *other], per_node)
        gpus.extend(planned)
        needed = len(planned) + kept.get(gpu_model, 0)
        bound = mig_bound + len(other) + kept.get(gpu_model, 0)
        parts = [f"MIG: {method}"] if mig_recs else []
        if other:
            parts.append("sharing groups and whole GPUs: exact")
        if presence is not None and recs:
            parts.append("pools sized for the most workloads present at once in the window")
        if kept.get(gpu_model):
            parts.append(f"{kept[gpu_model]} GPU(s) kept as they are for unplaced workloads")
        model_plans.append(
            ModelPlan(
                gpu_model,
                now,
                needed,
                bound,
                "; ".join(parts) or "nothing to place",
                gpus_per_node=per_node,
                gpus_busy_max=busy.per_model.get(gpu_model) if busy else None,
            )
        )

    before, after = utilisation(workloads, unplaced_keys, gpus_now, model_plans)
    return FleetPlan(
        gpus_now=sum(m.gpus_now for m in model_plans),
        gpus_needed=sum(m.gpus_needed for m in model_plans),
        gpus_lower_bound=sum(m.gpus_lower_bound for m in model_plans),
        models=tuple(model_plans),
        gpus=tuple(gpus),
        utilisation_before=before,
        utilisation_after=after,
        unplaced=tuple(unplaced),
        gpus_busy_max=busy.total if busy else None,
    )
