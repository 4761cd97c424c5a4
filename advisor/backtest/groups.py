"""What the replay needs from a recommendation: per workload its decision, the pool of slots it takes turns in,
and which planned GPUs it shares (time-slicing, MPS) with whom.

The plan (``FleetPlan.gpus``) lists, for every planned GPU, the workloads that may run on it: a MIG instance's
holders, a time-slicing or MPS GPU's tenants, a whole GPU's owner. Slots of one kind are interchangeable to the
scheduler (plan/fleet.py), so a pool is: per GPU model, the instances of one MIG profile; the GPUs of one
time-slicing or MPS setup (mode, replicas, MPS thread share, trust domain), ``replicas`` slots each; the whole GPUs.
A MIG slice time-sliced between workloads that take turns (``MigInstance.replicas``, decide/shared_slices.py) gives
its pool ``replicas`` slots, and its tenants share the slice's memory as time-sliced tenants share a GPU's: their
decision's memory limit is a share, not an isolated limit, so the replay checks the slice's summed memory instead.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from advisor.model import Mode, Recommendation
from slicewise.catalogue import find_model

MODE_CODES = {Mode.MIG: 0, Mode.MPS: 1, Mode.TIMESLICE: 2, Mode.EXCLUSIVE: 3}
NO_POOL = -1


@dataclass(frozen=True)
class Membership:
    """Who shares which time-slicing or MPS GPU: parallel arrays, one entry per (GPU, workload)."""

    gpu: np.ndarray  # index of the shared unit: a time-slicing or MPS GPU, or a time-sliced MIG slice
    key: np.ndarray  # index into the recommendation's workloads
    count: np.ndarray  # how many of the workload's devices the plan puts on that unit
    gpu_memory: np.ndarray  # per shared unit: its memory in bytes
    timesliced: np.ndarray  # per shared unit: True for time-slicing (contention applies), False for MPS


@dataclass(frozen=True)
class Groups:
    keys: list[tuple[str, str]]  # (workload, GPU model) per recommendation workload, in its order
    mode: np.ndarray  # per key: MODE_CODES
    isolated: np.ndarray  # per key: True where its memory limit is enforced alone (MIG, MPS; not a shared slice)
    memory_limit: np.ndarray  # per key: bytes
    compute_limit: np.ndarray  # per key: GPU fraction
    pool: np.ndarray  # per key: pool index, NO_POOL for a workload the plan did not place
    slots: np.ndarray  # per pool: slots the plan has
    shared: Membership


def groups(rec: Recommendation) -> Groups:
    keys = [(w.workload, w.gpu_model) for w in rec.workloads]
    index = {k: i for i, k in enumerate(keys)}
    d = [w.decision for w in rec.workloads]
    pools: dict[tuple[object, ...], int] = {}
    slots: Counter[int] = Counter()
    pool = np.full(len(keys), NO_POOL, dtype=np.int64)
    gpu_ix: list[int] = []
    key_ix: list[int] = []
    counts: list[int] = []
    memory: list[int] = []
    timesliced: list[bool] = []

    def share(memory_bytes: int, sliced: bool, model: str, names: tuple[str, ...]) -> None:
        unit = len(memory)
        memory.append(memory_bytes)
        timesliced.append(sliced)
        for name, n in Counter(names).items():
            k = index.get((name, model))
            if k is not None:
                gpu_ix.append(unit)
                key_ix.append(k)
                counts.append(n)

    for g in rec.plan.gpus:
        gpu = find_model(g.gpu_model)
        if g.mode == Mode.MIG:
            for inst in g.mig_instances:
                p = pools.setdefault((g.gpu_model, Mode.MIG, inst.profile, inst.replicas or 1), len(pools))
                slots[p] += inst.replicas or 1
                _join(pool, index, g.gpu_model, inst.workloads, p)
                if (inst.replicas or 1) > 1 and gpu is not None:
                    share(gpu.profile(inst.profile).memory_bytes, True, g.gpu_model, inst.workloads)
            continue
        if g.mode == Mode.EXCLUSIVE:
            p = pools.setdefault((g.gpu_model, Mode.EXCLUSIVE), len(pools))
            slots[p] += 1
            _join(pool, index, g.gpu_model, g.workloads, p)
            continue
        setup = (g.gpu_model, g.mode, g.replicas, g.mps_active_thread_percentage, g.sharing_group)
        p = pools.setdefault(setup, len(pools))
        slots[p] += g.replicas or 1
        _join(pool, index, g.gpu_model, g.workloads, p)
        if gpu is not None:
            share(gpu.memory_total_bytes, g.mode == Mode.TIMESLICE, g.gpu_model, g.workloads)
    return Groups(
        keys=keys,
        mode=np.array([MODE_CODES[x.mode] for x in d], dtype=np.int8),
        isolated=np.array(
            [x.mode == Mode.MPS or (x.mode == Mode.MIG and (x.replicas or 1) == 1) for x in d], dtype=bool
        ),
        memory_limit=np.array([x.memory_limit_bytes for x in d], dtype=np.int64),
        compute_limit=np.array([x.compute_limit_gpu_fraction for x in d], dtype=np.float64),
        pool=pool,
        slots=np.array([slots[i] for i in range(len(pools))], dtype=np.int64),
        shared=Membership(
            gpu=np.array(gpu_ix, dtype=np.int64),
            key=np.array(key_ix, dtype=np.int64),
            count=np.array(counts, dtype=np.int64),
            gpu_memory=np.array(memory, dtype=np.float64),
            timesliced=np.array(timesliced, dtype=bool),
        ),
    )


def _join(pool: np.ndarray, index: dict[tuple[str, str], int], model: str, names: tuple[str, ...], p: int) -> None:
    for name in names:
        k = index.get((name, model))
        if k is not None:
            pool[k] = p
