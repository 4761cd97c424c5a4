"""MPS for a team's small workloads, where their own MPS GPUs take fewer GPUs than their MIG slices.

Classes group workloads by shape, across teams, so a class is rarely one trust domain and its decision is rarely
MPS. But an MPS server may be shared by the workloads of one namespace (one team: the ranks of its HPC jobs, its
small inference servers), and MPS splits a GPU finer than MIG's sevenths: twelve clients at 8 % of the SMs and
6 GiB each fit one H100 under MPS, where MIG needs twelve 1g.10gb slices, nearly two GPUs. So after the classes
are decided, each namespace's MIG workloads on one GPU model are tried as one MPS pool:

- each member's own MPS replicas: the most ``r`` (at most ``Rules.mps_max_replicas``) whose even split (the
  device plugin's MPS mode gives every client ``1/r`` of the memory and ``100 // r`` % of the SMs) covers its
  memory need and its p95 compute;
- members in order of their replicas, most first; the pool of the first ``k`` takes the smallest of their
  replicas, so the split covers each of them, and needs ``ceil(devices / r)`` GPUs of its own;
- the ``k`` that frees the most GPU share against the MIG slices they hold is taken, if it frees at least
  ``Rules.mps_min_gpus_saved`` of a GPU. Otherwise MIG stays: with equal packing its isolation wins.
Workloads whose compute was not measured cannot be given an active-thread percentage and stay as they are.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from advisor.decide.decision import make_decision
from advisor.decide.demand import Demand, gib
from advisor.decide.fits import mps_replicas, mps_split, slice_share
from advisor.decide.risk import assess
from advisor.decide.rules import Rules
from advisor.model import Decision, Mode, WorkloadFeatures
from slicewise.catalogue import GpuModel

_NOS = "nos measured, for 7 pods on an A100-80GB, 0.320 s mean latency with MPS against 0.344 s with MIG"


@dataclass(frozen=True)
class Candidate:
    """A member decided on MIG, with what it needs: its place in the decisions list, features and demand."""

    index: int
    features: WorkloadFeatures
    demand: Demand
    decision: Decision
    gpu: GpuModel


def pool_mps_by_namespace(candidates: Sequence[Candidate], rules: Rules) -> dict[int, Decision]:
    """New decisions (by candidate index) for the members moved to MPS pools; empty where MIG stays best."""
    by_domain: dict[tuple[str, str], list[tuple[int, Candidate]]] = defaultdict(list)
    for c in candidates:
        if c.features.namespace and c.decision.mode == Mode.MIG and c.decision.profile is not None:
            r = mps_replicas(c.demand, c.gpu, rules)
            if r is not None:
                by_domain[(c.features.gpu_model, c.features.namespace)].append((r, c))
    out: dict[int, Decision] = {}
    for (_, namespace), members in sorted(by_domain.items()):
        members.sort(key=lambda rc: (-rc[0], rc[1].features.workload))
        best: tuple[float, int, int, int, float] | None = None  # saved, k, replicas, gpus, share
        devices = share = 0.0
        for k, (r, c) in enumerate(members, start=1):
            devices += c.features.devices
            assert c.decision.profile is not None
            share += c.features.devices * slice_share(c.gpu, c.gpu.profile(c.decision.profile))
            gpus = math.ceil(devices / r)
            saved = share - gpus
            if k >= 2 and (best is None or saved > best[0]):
                best = (saved, k, r, gpus, share)
        if best is None or best[0] < rules.mps_min_gpus_saved:
            continue
        saved, k, replicas, gpus, share = best
        pool = [c for _, c in members[:k]]
        for c in pool:
            out[c.index] = _mps_decision(c, pool, namespace, replicas, gpus, share, rules)
    return out


def _mps_decision(
    c: Candidate, pool: Sequence[Candidate], namespace: str, replicas: int, gpus: int, share: float, rules: Rules
) -> Decision:
    gpu, d = c.gpu, c.demand
    fit = mps_split(gpu, replicas)
    threads, memory = fit.mps_active_thread_percentage, fit.memory_limit_bytes
    assert d.compute_need is not None
    reasons = (
        d.size_sentence,
        f"Its team's {len(pool)} workloads in namespace {namespace!r} may share an MPS server, and MPS splits the "
        f"GPU finer than MIG: as {replicas} clients per GPU each gets {threads} % of the SMs "
        f"(CUDA_MPS_ACTIVE_THREAD_PERCENTAGE) and {gib(memory)} of pinned memory (CUDA_MPS_PINNED_DEVICE_MEM_LIMIT), "
        f"which covers its {gib(d.memory_need_bytes)} and its p95 compute {d.compute_need:.2f}.",
        f"That takes {gpus} GPU(s) for the {len(pool)} of them, against the {share:.1f} GPUs their MIG slices "
        f"(this one on {c.decision.profile}) take: {share - gpus:.1f} GPU(s) freed; {_NOS}.",
        f"MPS has no fault isolation: a fatal error in one client ends all {replicas} on the GPU, which is why only "
        "one team's workloads share a server.",
    )
    decision = make_decision(
        fit, gpu, c.features.gpu_model, reasons, assess(fit, [c.features], rules), rules, namespace
    )
    return replace(decision, headroom=d.headroom)
