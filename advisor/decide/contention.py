"""Contention measured from the history: when a tenant is busy, how often is another tenant of its pool busy too?

A time-sliced GPU makes busy tenants take turns, so what a burst costs is the chance that a co-tenant is busy at
the same moment. Duty cycles alone give that chance only if tenants are independent, and they are not: a team's
notebooks are busy in the same office hours, a pipeline's stages one after the other. So the chance is measured:
the history is cut into steps of its sampling interval, each tenant is busy in a step where its compute was above
the idle threshold, and for each busy step of a tenant the plan's ``replicas - 1`` co-tenants are drawn from its
pool as the scheduler would (any of them may land together):

    P(another busy | this one busy, step) = 1 - C(n - 1 - k, r - 1) / C(n - 1, r - 1)

with ``n`` the pool's members, ``k`` the others busy in that step and ``r`` the replicas. The pool's figure is its
worst tenant's mean over its busy steps. Where no history frame is at hand (Prometheus), the decision falls back to
the independent estimate ``1 - (1 - d)^(r - 1)`` and says so.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from math import comb

import numpy as np
import pandas as pd

from advisor.model import WorkloadKey

IDLE_GPU_FRACTION = 0.01  # as features.py: busy above 1 % of a GPU


@dataclass(frozen=True)
class CoBusy:
    """Per workload (and GPU model), the sampling steps in which it was busy."""

    busy_steps: dict[WorkloadKey, np.ndarray]  # sorted, unique step indices
    step_s: int
    _pools: dict[frozenset[WorkloadKey], _PoolBusy] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_history(cls, rows: pd.DataFrame) -> CoBusy:
        from advisor.row_scans import combined_key, epoch_seconds, label_codes, run_starts, runs_of

        seconds = epoch_seconds(rows)
        distinct = np.unique(seconds[:: max(1, len(seconds) // 100_000)]) if len(seconds) else seconds
        step = max(1, int(np.median(np.diff(distinct)))) if len(distinct) > 1 else 60
        measured = rows["sm_active_gpu_fraction"].to_numpy(dtype="float64")
        busy = ~np.isnan(measured) & (measured > IDLE_GPU_FRACTION)
        if not busy.any():
            return cls({}, step)
        workload, names = label_codes(rows["workload"], rows=busy)
        model, models = label_codes(rows["gpu_model"], rows=busy)
        key = combined_key([workload, model], [len(names), len(models)])
        del workload, model
        steps = _busy_steps(seconds, busy, step)
        del seconds, busy, measured
        key, steps, _ = runs_of(key, steps)  # one entry per (key, step), by key, then step
        edges = np.append(run_starts(key), len(key))
        out: dict[WorkloadKey, np.ndarray] = {}
        for a, b in itertools.pairwise(edges.tolist()):
            k = int(key[a])
            out[WorkloadKey(names[k // len(models)], models[k % len(models)])] = steps[a:b]
        return cls(out, step)

    def contention(self, pool: Sequence[WorkloadKey], replicas: int) -> float | None:
        """The worst tenant's chance, over its busy steps, that one of its ``replicas - 1`` co-tenants drawn from
        ``pool`` is busy at the same step. None where no member of the pool was ever busy in the history."""
        return self._pool(frozenset(pool)).contention(replicas)

    def _pool(self, pool: frozenset[WorkloadKey]) -> _PoolBusy:
        """Per member, how many others of the pool were busy at each of its busy steps (computed once per pool)."""
        cached = self._pools.get(pool)
        if cached is None:
            members = [k for k in pool if k in self.busy_steps and len(self.busy_steps[k])]
            others: list[np.ndarray] = []
            if members:
                all_steps = np.concatenate([self.busy_steps[k] for k in members])
                counts = np.bincount(all_steps)  # steps are small non-negative integers
                others = [counts[self.busy_steps[k]] - 1 for k in members]
            cached = _PoolBusy.of(len(pool), others)
            self._pools[pool] = cached
        return cached


def _busy_steps(seconds: np.ndarray, busy: np.ndarray, step: int) -> np.ndarray:
    """The sampling step of each busy row, the nearest one counted from the first sample: int32 where the steps
    fit, half the memory of int64 over every busy row."""
    steps = seconds[busy]
    steps -= int(seconds.min()) - step // 2
    steps //= step
    return steps.astype(np.int32) if len(steps) and int(steps.max()) < 1 << 31 else steps


@dataclass(frozen=True)
class _PoolBusy:
    """Per busy member of a pool, how many others were busy at each of its busy steps, flat with its offsets."""

    size: int  # members of the pool, busy or not
    others: np.ndarray  # concatenated over busy members
    starts: np.ndarray  # each busy member's first entry in ``others``

    @classmethod
    def of(cls, size: int, per_member: list[np.ndarray]) -> _PoolBusy:
        if not per_member:
            return cls(size, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        lengths = np.array([len(a) for a in per_member])
        return cls(size, np.concatenate(per_member), np.r_[0, np.cumsum(lengths)[:-1]])

    def contention(self, replicas: int) -> float | None:
        n = self.size
        if not len(self.starts):
            return None
        if replicas < 2 or n < 2:
            return 0.0
        draws = min(replicas - 1, n - 1)
        total = comb(n - 1, draws)
        # chance that none of the draws is busy, for k other busy members; the worst member's mean over its steps
        none_busy = np.array([comb(n - 1 - k, draws) / total for k in range(n)], dtype=np.float64)
        met = np.add.reduceat(1.0 - none_busy[self.others], self.starts)
        lengths = np.diff(np.r_[self.starts, len(self.others)])
        return float((met / lengths).max())
