"""Time-slicing and MPS pools as the plan will make them, checked after every workload is decided.

A pool is the workloads that share time-sliced or MPS GPUs on one GPU model at one replica count (and, for MPS,
one trust domain): plan/fleet.py gives each pool its own GPUs. Two checks need the whole pool, so they run after
the per-class decisions (engine.py):

- ``measured_pools``: the contention measured among exactly the pool's members (decide/contention.py) bounds its
  replicas; where even two contend too much, the members take MIG slices. Every member's risk states the measured
  figure.
- ``no_pools_of_one``: a pool that fills its GPUs with fewer tenants than they hold gives way to its members' MIG
  slices where those take at least ``Rules.pool_min_gpus_saved`` of a GPU less; a lone member joins a time-slicing
  pool of fewer replicas if there is one (safe for it: more memory, fewer co-tenants), or takes the whole GPU it
  would hold anyway.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from advisor.decide.choose import measured_timeslice, mode_name
from advisor.decide.contention import CoBusy
from advisor.decide.decision import MIG_ISOLATED, make_decision
from advisor.decide.demand import Demand, gib, pct
from advisor.decide.fits import Fit, NoFit, exclusive_fit, mig_fit, slice_share, timeslice_fit
from advisor.decide.risk import assess
from advisor.decide.rules import Rules
from advisor.model import Decision, Mode, WorkloadRecommendation
from slicewise.catalogue import GpuModel


def pool_key(w: WorkloadRecommendation) -> tuple[str, Mode, int | None, str | None]:
    """Workloads with the same key share time-sliced or MPS GPUs (as plan/fleet.py groups them)."""
    d = w.decision
    return (w.gpu_model, d.mode, d.replicas, d.sharing_group if d.mode == Mode.MPS else None)


def no_pools_of_one(
    recs: Sequence[WorkloadRecommendation], needs: dict[int, tuple[Demand, GpuModel]], rules: Rules
) -> dict[int, Decision]:
    """A time-slicing or MPS pool that fills its GPUs with fewer tenants than they hold saves nothing when the
    same workloads' MIG slices would take at least ``Rules.pool_min_gpus_saved`` of a GPU less (a pool of one
    notebook fills a GPU; its 1g slice takes a seventh). A lone workload joins a time-slicing pool of fewer
    replicas on its model if there is one (more memory each, fewer co-tenants: safe for it); otherwise the
    members take the MIG slices that fit them."""
    pools: dict[tuple[str, Mode, int | None, str | None], list[int]] = defaultdict(list)
    for i, w in enumerate(recs):
        if w.decision.mode in (Mode.TIMESLICE, Mode.MPS) and i in needs:
            pools[pool_key(w)].append(i)
    out: dict[int, Decision] = {}
    for key, members in sorted(pools.items(), key=lambda kv: str(kv[0])):
        devices = sum(recs[i].features.devices for i in members)
        gpu = needs[members[0]][1]
        pool_gpus = math.ceil(devices / (key[2] or 1))
        migs = [mig_fit(needs[i][0], gpu) for i in members]
        if not all(isinstance(m, Fit) and m.profile is not None for m in migs):
            if devices == 1:  # alone and no slice holds it: a whole GPU, said as such
                (i,) = members
                w, fit = recs[i], exclusive_fit(gpu)
                reasons = (
                    *w.decision.reasons,
                    f"Alone in its {mode_name(w.decision.mode)} pool it would hold the GPU by itself, so it takes the "
                    "whole GPU as such (nothing else is advertised on it).",
                )
                out[i] = make_decision(fit, gpu, w.gpu_model, reasons, assess(fit, [w.features], rules), rules)
            continue
        share = sum(
            recs[i].features.devices * slice_share(gpu, m.profile)
            for i, m in zip(members, migs, strict=True)
            if isinstance(m, Fit) and m.profile is not None
        )
        if pool_gpus - share < rules.pool_min_gpus_saved:
            continue
        mode = mode_name(recs[members[0]].decision.mode)
        lead = (
            f"On its own it would fill a {mode} GPU alone, which saves nothing"
            if devices == 1
            else f"Its {mode} pool of {devices} would fill {pool_gpus} GPU(s), where their MIG slices take {share:.1f}"
        )
        if devices == 1:
            joined = _join_pool(recs, pools, key, members[0], needs, rules, lead)
            if joined is not None:
                out[members[0]] = joined
                continue
        for i, mig in zip(members, migs, strict=True):
            assert isinstance(mig, Fit) and mig.profile is not None
            w, need = recs[i], needs[i][0]
            reasons = (
                need.size_sentence,
                f"{lead}: MIG {mig.profile.name} ({gib(mig.memory_limit_bytes)}, {mig.compute_limit:.2f} of the "
                f"GPU's SMs) holds it in {slice_share(gpu, mig.profile):.2f} of a GPU, beside other workloads.",
                MIG_ISOLATED,
            )
            out[i] = make_decision(mig, gpu, w.gpu_model, reasons, assess(mig, [w.features], rules), rules)
    return out


def _join_pool(
    recs: Sequence[WorkloadRecommendation],
    pools: dict[tuple[str, Mode, int | None, str | None], list[int]],
    key: tuple[str, Mode, int | None, str | None],
    i: int,
    needs: dict[int, tuple[Demand, GpuModel]],
    rules: Rules,
    lead: str,
) -> Decision | None:
    """A lone time-sliced workload's place in another time-slicing pool of fewer replicas on its model, if any."""
    w, (need, gpu) = recs[i], needs[i]
    if w.decision.mode != Mode.TIMESLICE or key[2] is None:
        return None
    joinable = [
        k[2] for k, m in pools.items()
        if k != key and k[0] == key[0] and k[1] == Mode.TIMESLICE and k[2] is not None and k[2] <= key[2]
        and sum(recs[j].features.devices for j in m) > 1
    ]  # fmt: skip
    if not joinable:
        return None
    replicas = max(joinable)
    fit = timeslice_fit(need, gpu, replace(rules, timeslice_max_replicas=replicas))
    if not isinstance(fit, Fit) or fit.replicas != replicas:
        return None
    reasons = (
        f"{lead}: it joins the time-slicing pool of {replicas} replicas per GPU on its model, which gives it "
        f"{gib(fit.memory_limit_bytes)} and fewer co-tenants than its own setting.",
        *w.decision.reasons,
    )
    return replace(w.decision, replicas=replicas, memory_limit_bytes=fit.memory_limit_bytes, reasons=reasons)


def measured_pools(
    recs: Sequence[WorkloadRecommendation],
    needs: dict[int, tuple[Demand, GpuModel]],
    rules: Rules,
    cobusy: CoBusy,
) -> dict[int, Decision]:
    """Each time-slicing pool as the plan will make it (its model and replicas), checked against the contention
    measured among exactly its members: fewer replicas where they were busy together too often, MIG slices where
    even two contend too much, and every member's risk stated with the measured figure."""
    pools: dict[tuple[str, Mode, int | None, str | None], list[int]] = defaultdict(list)
    for i, w in enumerate(recs):
        if w.decision.mode == Mode.TIMESLICE and w.decision.replicas and i in needs:
            pools[pool_key(w)].append(i)
    out: dict[int, Decision] = {}
    for key, members in pools.items():
        replicas = key[2] or 1
        gpu = needs[members[0]][1]
        first = Fit(Mode.TIMESLICE, gpu.memory_total_bytes // replicas, 1.0, replicas, replicas=replicas)
        pool = [recs[i].features for i in members]
        cut, measured = measured_timeslice(first, [f.key for f in pool], gpu, rules, cobusy)
        for i in members:
            w = recs[i]
            if isinstance(cut, Fit) and cut.replicas is not None:
                changed = cut.replicas != replicas
                reasons = w.decision.reasons + (
                    (
                        f"Its pool's members were busy together too often at {replicas} replicas: it is cut to "
                        f"{cut.replicas}, where a burst met another busy tenant {pct(measured or 0)} of the time "
                        "(measured).",
                    )
                    if changed
                    else ()
                )
                risk = assess(cut, [w.features], rules, pool, measured)
                out[i] = replace(
                    w.decision,
                    replicas=cut.replicas,
                    memory_limit_bytes=cut.memory_limit_bytes,
                    reasons=reasons,
                    risk=risk,
                )
                continue
            need, gpu = needs[i]
            mig = mig_fit(need, gpu)
            fit = mig if isinstance(mig, Fit) else exclusive_fit(gpu)
            assert isinstance(cut, NoFit)
            reasons = (
                need.size_sentence,
                f"Time-slicing was not kept: {cut.reason}.",
                f"MIG {fit.profile.name} holds it in isolation instead." if fit.profile else "It keeps a whole GPU.",
            )
            out[i] = make_decision(fit, gpu, w.gpu_model, reasons, assess(fit, [w.features], rules), rules)
    return out
