"""Time-slicing inside MIG slices, for workloads that take turns: notebooks that share MIG slices today.

The device plugin time-slices MIG devices as it does whole GPUs (``sharing.timeSlicing.resources`` naming
``nvidia.com/mig-1g.5gb`` with its replicas; GPU Operator docs, "Time-Slicing GPUs in Kubernetes"). A slice shared
by ``k`` tenants keeps MIG's isolation from the rest of the GPU, and its tenants share its memory and SMs as
time-sliced tenants of a GPU do. Giving each mostly-idle notebook a slice of its own can need more GPUs than today,
where eleven notebooks take turns on seven slices; sharing the slice they would each get avoids that.

Who may share: members decided on MIG whose compute is measured mostly idle (``Rules.idle_duty_cycle``), or whose
compute is not measured but who shared a MIG slice with others at the same time in the history (more workloads on
one GPU's slices of a profile than it has slices: ``SharedToday``). Per GPU model and profile they form one pool;
its replicas are the most ``k`` (at most ``Rules.timeslice_max_replicas``) for which each member's memory need fits
``1/k`` of the slice and, where compute is measured, their measured contention stays within
``Rules.timeslice_max_contention``. Pools of one stay as they are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from advisor.decide.contention import CoBusy
from advisor.decide.demand import Demand, gib, pct
from advisor.decide.rules import Rules
from advisor.model import Decision, Mode, WorkloadKey, WorkloadRecommendation
from slicewise.catalogue import GpuModel, find_model


@dataclass(frozen=True)
class SharedToday:
    """Workloads that shared a MIG slice with another at the same sample time, in the history."""

    keys: frozenset[WorkloadKey]

    @classmethod
    def from_history(cls, rows: pd.DataFrame) -> SharedToday:
        from advisor.decide.fits import instances_per_gpu
        from advisor.row_scans import combined_key, epoch_seconds, label_codes, most_at_once, split_key

        mig = np.asarray(rows["sharing"] == "mig")
        if not mig.any():
            return cls(frozenset())
        gpu, uuids = label_codes(rows["gpu_uuid"], rows=mig)
        model, models = label_codes(rows["gpu_model"], rows=mig)
        profile, profiles = label_codes(rows["mig_profile"], rows=mig)
        workload, names = label_codes(rows["workload"], rows=mig)
        sizes = [len(uuids), len(models), len(profiles)]
        devices, most = most_at_once(combined_key([gpu, model, profile], sizes), epoch_seconds(rows)[mig], workload)
        over: list[tuple[int, int, int]] = []  # (GPU, model, profile) with more workloads at once than slices
        for g, m, p, n in zip(*(c.tolist() for c in split_key(devices, sizes)), most.tolist(), strict=True):
            known = find_model(models[m])
            name = profiles[p]
            if known is None or not any(x.name == name for x in known.profiles):
                continue
            if n > instances_per_gpu(known.key, name):
                over.append((g, m, p))
        if not over:
            return cls(frozenset())
        slot = combined_key([gpu, profile], [len(uuids), len(profiles)])  # a GPU's instances of one profile
        on = _workloads_on(slot, workload, {g * len(profiles) + p for g, _, p in over})
        return cls(frozenset(WorkloadKey(names[w], models[m]) for g, m, p in over for w in on[g * len(profiles) + p]))


def _workloads_on(slot: np.ndarray, workload: np.ndarray, wanted: set[int]) -> dict[int, list[int]]:
    """The distinct workloads on each wanted slot (code of a GPU's instances of one profile), from the rows' codes."""
    from advisor.row_scans import distinct_values

    rows = np.isin(slot, np.fromiter(wanted, dtype=np.int64))
    n_workloads = int(workload.max()) + 1
    pairs = distinct_values(slot[rows] * n_workloads + workload[rows])
    out: dict[int, list[int]] = {s: [] for s in wanted}
    for pair in pairs.tolist():
        out[pair // n_workloads].append(pair % n_workloads)
    return out


def share_slices(
    recs: Sequence[WorkloadRecommendation],
    needs: dict[int, tuple[Demand, GpuModel]],
    rules: Rules,
    cobusy: CoBusy | None,
    shared_today: SharedToday | None,
) -> dict[int, Decision]:
    """New decisions (by index) for the members that share their MIG slices."""
    today = shared_today.keys if shared_today else frozenset()
    pools: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, w in enumerate(recs):
        d, f = w.decision, w.features
        if d.mode != Mode.MIG or d.profile is None or d.replicas or i not in needs:
            continue
        idle = f.duty_cycle is not None and f.duty_cycle <= rules.idle_duty_cycle
        if idle or (not f.compute_known and f.key in today):
            pools[(w.gpu_model, d.profile)].append(i)
    out: dict[int, Decision] = {}
    for (_, profile_name), members in sorted(pools.items()):
        if sum(recs[i].features.devices for i in members) < 2:
            continue
        gpu = needs[members[0]][1]
        profile = gpu.profile(profile_name)
        measured_ok = all(recs[i].features.compute_known for i in members)
        # the k that frees the most slices: the members whose need fits 1/k of the slice share it k ways
        best: tuple[int, int, list[int], float | None] | None = None  # freed, k, members, contention
        for k in range(rules.timeslice_max_replicas, 1, -1):
            fit = [i for i in members if needs[i][0].memory_need_bytes <= profile.memory_bytes // k]
            if len(fit) < 2:
                continue
            c = cobusy.contention([recs[i].features.key for i in fit], k) if cobusy and measured_ok else None
            if c is not None and c > rules.timeslice_max_contention:
                continue
            freed = len(fit) - -(-len(fit) // k)
            if best is None or freed > best[0]:
                best = (freed, k, fit, c)
        if best is None or best[0] < 1:
            continue
        _, chosen, sharing, measured = best
        limit = profile.memory_bytes // chosen
        why_today = (
            f"busy in at most {pct(max(recs[i].features.duty_cycle or 0 for i in sharing))} of samples"
            if measured_ok
            else "sharing MIG slices with others at the same time today (its compute is not measured)"
        )
        contention = (
            f"; in the history a burst would have met another busy tenant of the slice {pct(measured)} of the time"
            if measured is not None
            else ""
        )
        for i in sharing:
            w = recs[i]
            reason = (
                f"It and {len(sharing) - 1} other workload(s) on {profile_name} on this GPU model are {why_today}, "
                f"so each {profile_name} slice is time-sliced {chosen} ways: {gib(limit)} each covers its "
                f"{gib(needs[i][0].memory_need_bytes)} need{contention}. The slice keeps MIG's isolation from the "
                "rest of the GPU; inside it, tenants share memory with no isolation."
            )
            out[i] = replace(
                w.decision, replicas=chosen, memory_limit_bytes=limit, reasons=(*w.decision.reasons, reason)
            )
    return out
