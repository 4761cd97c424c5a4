"""Decisions for every class (per GPU model its members ran on) and for every workload within its class.

A class decision is sized for its largest member. Each member then gets its own decision in its class's mode: its
own MIG profile (often smaller than the class's), or its class's time-slicing / MPS replicas (a per-node setting,
so one per class and model). A member its class's mode cannot hold, a member of a class that needs whole GPUs
(only its largest members may), and every outlier go through the rule chain on their own. Bursty members of a MIG
class whose own slice is large may move to time-slicing together (``_pool_bursty_members``). MPS servers are shared
only within a trust domain (``Decision.sharing_group``: the members' one namespace, else the class).
No decision's memory limit is ever below the workload's own observed peak; a workload larger than its GPU, or on a
GPU the catalogue does not know, is reported as unplaced, never dropped.

Sizing follows the evidence (evidence.py: thin histories, what the class reaches, calibrated headroom). After every
class is decided, passes that need the whole fleet run in order: MPS pools per namespace (mps_pool.py), pools
checked as the plan makes them (pools.py: measured contention, no pools of one), shared MIG slices
(shared_slices.py), and the near-the-line check (margin.py).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from advisor.decide.choose import _COMPUTE_UNKNOWN, Choice, choose, measured_timeslice, mode_name
from advisor.decide.contention import CoBusy
from advisor.decide.decision import MIG_ISOLATED, make_decision
from advisor.decide.demand import Demand, demand_of, gib, pct
from advisor.decide.evidence import (
    ClassEvidence,
    class_evidence,
    evidence_sentence,
    expected_peak,
    fleet_growth,
    memory_need,
    thin_reason,
)
from advisor.decide.fits import Fit, exclusive_fit, instances_per_gpu, mig_fit, slice_share, timeslice_fit
from advisor.decide.margin import with_margin
from advisor.decide.mps_pool import Candidate, pool_mps_by_namespace
from advisor.decide.pools import measured_pools, no_pools_of_one
from advisor.decide.risk import assess
from advisor.decide.rules import DEFAULT_RULES, Rules
from advisor.decide.shared_slices import SharedToday, share_slices
from advisor.model import (
    Classification,
    ClassRecommendation,
    Decision,
    Mode,
    Risk,
    Unplaced,
    WorkloadFeatures,
    WorkloadKey,
    WorkloadRecommendation,
)
from slicewise.catalogue import GpuModel, find_model
from slicewise.errors import JobFailed
from slicewise.history_schema import Sharing


@dataclass(frozen=True)
class Decisions:
    classes: tuple[ClassRecommendation, ...]
    workloads: tuple[WorkloadRecommendation, ...]
    unplaced: tuple[Unplaced, ...]
    notes: tuple[str, ...]


def _from_choice(
    choice: Choice,
    gpu: GpuModel,
    gpu_model: str,
    members: Sequence[WorkloadFeatures],
    rules: Rules,
    group: str | None = None,
    cobusy: CoBusy | None = None,
    pool: Sequence[WorkloadFeatures] | None = None,
) -> Decision:
    risk = assess(choice.fit, members, rules, pool, _measured(choice.fit, pool or members, cobusy))
    return make_decision(choice.fit, gpu, gpu_model, choice.reasons, risk, rules, group)


def _measured(fit: Fit, pool: Sequence[WorkloadFeatures], cobusy: CoBusy | None) -> float | None:
    """The contention measured in the history for a time-sliced ``fit`` shared by ``pool`` (None elsewhere)."""
    if cobusy is None or fit.mode != Mode.TIMESLICE or fit.replicas is None:
        return None
    return cobusy.contention([f.key for f in pool], fit.replicas)


def _kept_as_is(f: WorkloadFeatures, reason: str) -> Decision:
    """For a workload the advisor cannot plan: it keeps what it has; its limit is its own peak, never less."""
    return Decision(
        mode=Mode.EXCLUSIVE,
        gpu_model=f.gpu_model,
        profile=None,
        memory_limit_bytes=f.memory_peak_bytes,
        compute_limit_gpu_fraction=1.0,
        replicas=None,
        mps_active_thread_percentage=None,
        headroom=0.0,
        reasons=(reason, "It is left as it runs today and reported under the plan's unplaced workloads."),
        risk=Risk(
            level="medium",
            memory_exceed_share=0.0,
            compute_exceed_share=None,
            summary="Not planned: nothing changes for it, and nothing was checked.",
        ),
    )


def _unplaceable(f: WorkloadFeatures, gpu: GpuModel | None) -> str | None:
    if gpu is None:
        return (
            f"The GPU model {f.gpu_model!r} is not in slicewise's catalogue, so no MIG or sharing setting can be "
            "sized for it."
        )
    if f.memory_peak_bytes > gpu.memory_total_bytes:
        return (
            f"Its peak memory {gib(f.memory_peak_bytes)} is more than a whole {gpu.name} holds "
            f"({gib(gpu.memory_total_bytes)}): it spans GPUs or the history is wrong, and no single GPU fits it."
        )
    return None


def _member_decision(
    f: WorkloadFeatures,
    own: Demand,
    class_choice: Choice,
    classmates: Sequence[WorkloadFeatures],
    group: str,
    gpu: GpuModel,
    rules: Rules,
    cobusy: CoBusy | None = None,
) -> Decision:
    fit = class_choice.fit
    mode = mode_name(fit.mode)
    keys = [m.key for m in classmates]
    alone = choose(own, gpu, rules, cobusy, keys)
    if fit.mode == Mode.MIG:
        mine = mig_fit(own, gpu)
        if isinstance(mine, Fit) and mine.profile is not None:
            # why MIG and not the others, always in its own numbers
            why = alone.reasons[2:] if alone.fit.mode == Mode.MIG else _why_not_alone(alone, own, mine)
            reasons = (
                own.size_sentence,
                f"Its class runs on MIG; on its own it needs {mine.profile.name} ({gib(mine.memory_limit_bytes)}, "
                f"{mine.compute_limit:.2f} of the GPU's SMs).",
                *why,
            )
            return make_decision(mine, gpu, f.gpu_model, reasons, assess(mine, [f], rules), rules)
    elif fit.mode in (Mode.TIMESLICE, Mode.MPS):
        need_c = own.compute_need
        if fit.memory_limit_bytes >= own.memory_need_bytes and (
            fit.mode == Mode.TIMESLICE or (need_c is not None and fit.compute_limit >= need_c)
        ):
            reasons = (
                own.size_sentence,
                f"It takes its class's {mode} setting: {fit.replicas} replicas per GPU, "
                f"{gib(fit.memory_limit_bytes)} each.",
                *class_choice.reasons[1:],
            )
            return make_decision(
                fit,
                gpu,
                f.gpu_model,
                reasons,
                assess(fit, [f], rules, classmates, _measured(fit, classmates, cobusy)),
                rules,
                group,
            )
    if fit.mode == Mode.EXCLUSIVE:
        # a class needs whole GPUs for its largest member; a smaller member that fits a shared mode on its own
        # should not hold a whole GPU for that
        lead = (
            "Its class needs whole GPUs for its largest member; on its own it needs one too."
            if alone.fit.mode == Mode.EXCLUSIVE
            else "Its class needs whole GPUs for its largest member, but on its own it fits "
            f"{mode_name(alone.fit.mode)}."
        )
    else:
        lead = f"Its class's {mode} setting cannot hold it, so it is decided on its own."
    return _from_choice(
        Choice(alone.fit, (lead, *alone.reasons)), gpu, f.gpu_model, [f], rules, _own_group(f), cobusy, classmates
    )


def _why_not_alone(alone: Choice, own: Demand, mine: Fit) -> tuple[str, ...]:
    """Why a member whose own numbers would pick another mode takes its MIG slice, in its own numbers."""
    assert mine.profile is not None
    other = mode_name(alone.fit.mode)
    if alone.fit.mode in (Mode.TIMESLICE, Mode.MPS):
        text = (
            f"On its own {other} would suit it ({alone.fit.per_gpu} like it per GPU), but a pool of it alone would "
            f"hold a whole GPU, where {mine.profile.name} takes {mine.per_gpu and 1 / mine.per_gpu:.2f} of one "
            "beside other workloads; pools are formed only where they need no more GPUs than the slices."
        )
    else:
        text = f"On its own it would take {other}; its class's MIG setting holds it in {mine.profile.name}."
    out = [MIG_ISOLATED, text]
    if not own.compute_known:
        out.append(_COMPUTE_UNKNOWN)
    return tuple(out)


@dataclass(frozen=True)
class _Bursty:
    index: int  # in the class's members on this GPU model
    features: WorkloadFeatures
    demand: Demand
    replicas: int  # what time-slicing gives it on its own
    slice_share: float  # of a GPU, what its MIG slice takes (per instance)


def _pool_bursty_members(
    members: Sequence[WorkloadFeatures],
    demands: Sequence[Demand],
    decisions: Sequence[Decision],
    gpu: GpuModel,
    rules: Rules,
    cobusy: CoBusy | None = None,
) -> list[Decision]:
    """Members of a MIG class whose bursts make their own slice large (a notebook alone on a whole GPU bursting to
    0.4 of it) while time-slicing would pack at least ``Rules.member_own_mode_min_gain`` times as many per GPU.

    They move together or not at all: one time-slicing pool at the smallest of their replica counts (safe for each:
    more memory, fewer co-tenants than its own count), and only where that pool fills no more GPUs than their MIG
    slices take. A lone bursty member stays on its slice: a pool of one would hold a whole GPU."""
    bursty: list[_Bursty] = []
    for i, (f, own, d) in enumerate(zip(members, demands, decisions, strict=True)):
        if d.mode != Mode.MIG or d.profile is None:
            continue
        alone = timeslice_fit(own, gpu, rules)
        profile = gpu.profile(d.profile)
        if (
            isinstance(alone, Fit)
            and alone.replicas is not None
            and alone.per_gpu >= rules.member_own_mode_min_gain * instances_per_gpu(gpu.key, profile.name)
        ):
            bursty.append(_Bursty(i, f, own, alone.replicas, slice_share(gpu, profile)))
    if not bursty:
        return list(decisions)
    replicas = min(b.replicas for b in bursty)
    instances = sum(b.demand.instances for b in bursty)
    pool_gpus = math.ceil(instances / replicas)
    slices_gpus = sum(b.demand.instances * b.slice_share for b in bursty)
    if pool_gpus > slices_gpus:
        return list(decisions)
    together = [b.features for b in bursty]
    if cobusy is not None:  # fewer replicas where the pool's tenants were busy together too often
        first = timeslice_fit(bursty[0].demand, gpu, replace(rules, timeslice_max_replicas=replicas))
        cut, _ = measured_timeslice(first, [f.key for f in together], gpu, rules, cobusy)
        if not isinstance(cut, Fit) or cut.replicas is None:
            return list(decisions)
        replicas = cut.replicas
        pool_gpus = math.ceil(instances / replicas)
        if pool_gpus > slices_gpus:
            return list(decisions)
    pooled = replace(rules, timeslice_max_replicas=replicas)
    out = list(decisions)
    for b in bursty:
        fit = timeslice_fit(b.demand, gpu, pooled)
        assert isinstance(fit, Fit) and b.demand.duty_cycle is not None and b.demand.compute_mean is not None
        reasons = (
            f"Its class runs on MIG, but its bursts would need MIG {decisions[b.index].profile}, while time-slicing "
            f"packs {b.replicas} like it per GPU; with the class's {len(bursty)} bursty member(s) it takes one "
            f"time-slicing pool of {replicas} replicas per GPU: {pool_gpus} GPU(s) against the "
            f"{slices_gpus:.1f} GPU(s) their MIG slices take.",
            b.demand.size_sentence,
            f"Mostly idle: busy in {pct(b.demand.duty_cycle)} of samples with mean compute "
            f"{b.demand.compute_mean:.2f} of a GPU, so each burst may use the whole GPU instead of a slice.",
            f"{replicas} replicas: {gib(fit.memory_limit_bytes)} each covers its {gib(b.demand.memory_need_bytes)} "
            f"need, and a burst meets on average {(replicas - 1) * b.demand.duty_cycle:.2f} other busy tenants.",
            "Time-slicing has no memory isolation: a tenant growing past its past peak can OOM the others.",
        )
        out[b.index] = make_decision(
            fit,
            gpu,
            b.features.gpu_model,
            reasons,
            assess(fit, [b.features], rules, together, _measured(fit, together, cobusy)),
            rules,
        )
    return out


def _setting(d: Decision) -> str:
    if d.mode == Mode.MIG:
        return f"MIG {d.profile}"
    if d.mode in (Mode.TIMESLICE, Mode.MPS):
        return f"{mode_name(d.mode)} with {d.replicas} replicas"
    return "a whole GPU"


def _with_member_summary(class_decision: Decision, members: Sequence[Decision]) -> Decision:
    """Say how the members' own decisions differ from the class's (smaller MIG slices, or members of a whole-GPU
    class that fit a shared mode on their own), so a reader of the class sees what will actually be applied."""
    own = Counter(_setting(d) for d in members)
    if set(own) == {_setting(class_decision)}:
        return class_decision
    parts = ", ".join(f"{n} on {setting}" for setting, n in own.most_common())
    sentence = f"Sized on their own, its {len(members)} members take: {parts}."
    return replace(class_decision, reasons=(*class_decision.reasons, sentence))


def _member_demand(f: WorkloadFeatures, ev: ClassEvidence, rules: Rules) -> Demand:
    """A member sized on its own numbers, with the headroom and the expected peak its class's evidence gives."""
    expected = expected_peak(f, ev)
    need = memory_need(f.memory_peak_bytes, expected, ev, rules)
    return demand_of(
        [f],
        ev.headroom,
        rules.compute_headroom,
        memory_need=need,
        evidence=evidence_sentence(f.memory_peak_bytes, expected, ev, rules),
    )


def _class_demand(
    members: Sequence[WorkloadFeatures], own: Sequence[Demand], ev: ClassEvidence, rules: Rules
) -> Demand:
    """The class's setting covers its neediest member."""
    neediest = max(own, key=lambda d: d.memory_need_bytes)
    return demand_of(
        members,
        ev.headroom,
        rules.compute_headroom,
        memory_need=neediest.memory_need_bytes,
        evidence=f"Its neediest member: {neediest.evidence}" if neediest.evidence else None,
    )


def _thin_decision(
    f: WorkloadFeatures,
    why: str,
    ev: ClassEvidence,
    gpu: GpuModel,
    rules: Rules,
    lead: str | None = None,
    cobusy: CoBusy | None = None,
) -> Decision:
    """A workload whose own history is too short to size it: it keeps the whole GPU it has today, or else is sized
    for the largest peak its class's well-observed members reached (and at least the MIG slice it has today)."""
    reach = max(ev.peak_max_bytes, f.memory_peak_bytes)
    first = f"Too little history to size it from its own past: {why}."
    if f.sharing == Sharing.EXCLUSIVE:
        fit = exclusive_fit(gpu)
        reasons = [
            *([lead] if lead else []),
            first,
            f"It keeps a whole {gpu.name} (as it runs today) until it has shown its size"
            + (f": its class's well-observed members reach up to {gib(reach)}." if ev.mature else "."),
        ]
        return make_decision(fit, gpu, f.gpu_model, reasons, assess(fit, [f], rules), rules)
    if ev.mature:
        need = math.ceil(reach * (1 + rules.headroom))
        sized = (
            f"the largest peak its class's {ev.mature} well-observed members reached, {gib(reach)}, "
            f"plus {pct(rules.headroom)}"
        )
    else:  # no classmate to borrow from: its own peak with the widest margin the evidence rules allow
        need = math.ceil(f.memory_peak_bytes * (1 + rules.evidence_max_headroom))
        sized = (
            f"its own peak with {pct(rules.evidence_max_headroom)} headroom, since no classmate was seen long enough"
        )
    today = next((p for p in gpu.profiles if p.name == f.mig_profile), None)
    if today is not None:  # at least the MIG slice it has today
        need = max(need, today.memory_bytes)
        sized += f", and at least the {today.name} slice it has today"
    sentence = f"{first} It is sized for {sized}: {gib(need)}."
    demand = demand_of([f], rules.headroom, rules.compute_headroom, memory_need=need, evidence=sentence)
    choice = choose(demand, gpu, rules, cobusy)
    return _from_choice(
        Choice(choice.fit, (*([lead] if lead else []), *choice.reasons)), gpu, f.gpu_model, [f], rules, _own_group(f)
    )


def _own_group(f: WorkloadFeatures) -> str:
    """A workload decided on its own shares an MPS server only among its own replicas."""
    return f.workload


def decide(
    classification: Classification,
    features: Sequence[WorkloadFeatures],
    rules: Rules = DEFAULT_RULES,
    window_s: float | None = None,
    cobusy: CoBusy | None = None,
    shared_today: SharedToday | None = None,
) -> Decisions:
    """Decide per class and GPU model, then per workload. ``window_s``: the window's length, against which a
    workload's own span is judged (decide/evidence.py; default: the longest span seen). Returns :class:`Decisions`."""
    if window_s is None:
        window_s = max((f.span_seconds or 0.0 for f in features), default=0.0) or rules.evidence_min_span_s
    fleet = fleet_growth(features, window_s, rules)
    by_key: dict[WorkloadKey, WorkloadFeatures] = {f.key: f for f in features}
    classified: set[WorkloadKey] = set()
    class_recs: list[ClassRecommendation] = []
    workload_recs: list[WorkloadRecommendation] = []
    unplaced: list[Unplaced] = []
    mig_members: list[Candidate] = []  # for the MPS pools per namespace, after every class is decided
    needs: dict[int, tuple[Demand, GpuModel]] = {}  # what each planned workload needs, for the pools-of-one pass

    def unplace(f: WorkloadFeatures, reason: str, class_id: str | None) -> None:
        unplaced.append(Unplaced(workload=f.workload, gpu_model=f.gpu_model, reason=reason))
        workload_recs.append(
            WorkloadRecommendation(f.workload, class_id, f.gpu_model, f, class_id is None, _kept_as_is(f, reason))
        )

    for cls in classification.classes:
        members = [by_key[k] for k in cls.members if k in by_key]
        classified.update(f.key for f in members)
        per_model: dict[str, list[WorkloadFeatures]] = defaultdict(list)
        for f in members:
            per_model[f.gpu_model].append(f)
        decisions: list[Decision] = []
        for gpu_model in sorted(per_model):
            gpu = find_model(gpu_model)
            placeable = []
            for f in sorted(per_model[gpu_model], key=lambda f: f.workload):
                reason = _unplaceable(f, gpu)
                if reason is None:
                    placeable.append(f)
                else:
                    unplace(f, reason, cls.id)
            if gpu is None or not placeable:
                continue
            ev = class_evidence(placeable, window_s, rules, fleet)
            own = [_member_demand(f, ev, rules) for f in placeable]
            demand = _class_demand(placeable, own, ev, rules)
            class_choice = choose(demand, gpu, rules, cobusy)
            group = demand.trust_domain or cls.id  # who may share its MPS servers: one namespace, else the class
            class_decision = _from_choice(class_choice, gpu, gpu_model, placeable, rules, group, cobusy)
            member_decisions = [
                _thin_decision(f, why, ev, gpu, rules, cobusy=cobusy)
                if (why := thin_reason(f, window_s, rules)) is not None
                else _member_decision(f, d, class_choice, placeable, group, gpu, rules, cobusy)
                for f, d in zip(placeable, own, strict=True)
            ]
            if class_choice.fit.mode == Mode.MIG:
                member_decisions = _pool_bursty_members(placeable, own, member_decisions, gpu, rules, cobusy)
            decisions.append(_with_member_summary(class_decision, member_decisions))
            for f, d, need in zip(placeable, member_decisions, own, strict=True):
                needs[len(workload_recs)] = (need, gpu)
                if d.mode == Mode.MIG:
                    mig_members.append(Candidate(len(workload_recs), f, need, d, gpu))
                workload_recs.append(WorkloadRecommendation(f.workload, cls.id, gpu_model, f, False, d))
        class_recs.append(
            ClassRecommendation(
                id=cls.id,
                label=cls.label,
                members=tuple(sorted({f.workload for f in members})),
                envelope=cls.envelope,
                decisions=tuple(decisions),
                gpu_models=tuple(sorted(per_model)),
            )
        )

    # outliers, and anything the classification left out, are decided on their own
    for f in sorted((f for f in features if f.key not in classified), key=lambda f: f.key):
        gpu = find_model(f.gpu_model)
        reason = _unplaceable(f, gpu)
        if reason is not None or gpu is None:
            unplace(f, reason or "", None)
            continue
        lead = "An outlier, unlike any class, so it is decided on its own."
        ev = class_evidence([f], window_s, rules, fleet)
        why = thin_reason(f, window_s, rules)
        if why is not None:
            decision = _thin_decision(f, why, ev, gpu, rules, lead, cobusy)
        else:
            need = _member_demand(f, ev, rules)
            choice = choose(need, gpu, rules, cobusy)
            decision = _from_choice(
                Choice(choice.fit, (lead, *choice.reasons)), gpu, f.gpu_model, [f], rules, _own_group(f)
            )
        if why is None:
            needs[len(workload_recs)] = (need, gpu)
            if decision.mode == Mode.MIG:
                mig_members.append(Candidate(len(workload_recs), f, need, decision, gpu))
        workload_recs.append(WorkloadRecommendation(f.workload, None, f.gpu_model, f, True, decision))

    for index, mps in pool_mps_by_namespace(mig_members, rules).items():
        workload_recs[index] = replace(workload_recs[index], decision=mps)
    for index, alone in no_pools_of_one(workload_recs, needs, rules).items():
        workload_recs[index] = replace(workload_recs[index], decision=alone)
    if cobusy is not None:
        for index, measured in measured_pools(workload_recs, needs, rules, cobusy).items():
            workload_recs[index] = replace(workload_recs[index], decision=measured)
    for index, shared in share_slices(workload_recs, needs, rules, cobusy, shared_today).items():
        workload_recs[index] = replace(workload_recs[index], decision=shared)
    for index, (need, gpu) in needs.items():
        w = workload_recs[index]
        workload_recs[index] = replace(w, decision=with_margin(w.decision, need, gpu, rules))

    workload_recs.sort(key=lambda w: (w.workload, w.gpu_model))
    _check_never_below_peak(workload_recs)
    return Decisions(tuple(class_recs), tuple(workload_recs), tuple(unplaced), _notes(workload_recs, unplaced))


def _check_never_below_peak(recs: Sequence[WorkloadRecommendation]) -> None:
    for w in recs:
        if w.decision.memory_limit_bytes < w.features.memory_peak_bytes:
            raise JobFailed(
                f"internal error: {w.workload} would get {w.decision.memory_limit_bytes} bytes, below its peak "
                f"{w.features.memory_peak_bytes}; refusing to recommend it"
            )


def _notes(recs: Sequence[WorkloadRecommendation], unplaced: Sequence[Unplaced]) -> tuple[str, ...]:
    notes = []
    unknown = [w for w in recs if not w.features.compute_known and w.decision.mode == Mode.MIG]
    if unknown:
        notes.append(
            f"Compute was not measured for {len(unknown)} workload(s) on A100/A30 MIG (no per-instance SM activity "
            "without dcgm-exporter): their MIG profiles are sized by memory alone."
        )
    if unplaced:
        notes.append(f"{len(unplaced)} workload(s) could not be planned; see the plan's unplaced list for why.")
    return tuple(notes)
