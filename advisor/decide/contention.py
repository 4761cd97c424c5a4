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
from dataclasses import dataclass
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

    @classmethod
    def from_history(cls, rows: pd.DataFrame) -> CoBusy:
        from advisor.plan.presence import _codes

        seconds = rows["timestamp"].to_numpy("datetime64[s]").astype(np.int64)
        distinct = np.unique(seconds)
        step = max(1, int(np.median(np.diff(distinct)))) if len(distinct) > 1 else 60
        measured = rows["sm_active_gpu_fraction"].to_numpy(dtype="float64")
        busy = ~np.isnan(measured) & (measured > IDLE_GPU_FRACTION)
        if not busy.any():
            return cls({}, step)
        workload, names = _codes(rows["workload"])
        model, models = _codes(rows["gpu_model"])
        key = workload * len(models) + model
        steps = (seconds - seconds.min() + step // 2) // step
        pairs = np.unique(key[busy] * (int(steps.max()) + 1) + steps[busy])
        key_of, step_of = pairs // (int(steps.max()) + 1), pairs % (int(steps.max()) + 1)
        edges = np.flatnonzero(np.r_[True, key_of[1:] != key_of[:-1], True])
        out: dict[WorkloadKey, np.ndarray] = {}
        for a, b in itertools.pairwise(edges.tolist()):
            k = int(key_of[a])
            out[WorkloadKey(names[k // len(models)], models[k % len(models)])] = step_of[a:b]
        return cls(out, step)

    def contention(self, pool: Sequence[WorkloadKey], replicas: int) -> float | None:
        """The worst tenant's chance, over its busy steps, that one of its ``replicas - 1`` co-tenants drawn from
        ``pool`` is busy at the same step. None where no member of the pool was ever busy in the history."""
        members = [k for k in pool if k in self.busy_steps and len(self.busy_steps[k])]
        n = len(pool)
        if not members or replicas < 2 or n < 2:
            return None if not members else 0.0
        draws = min(replicas - 1, n - 1)
        all_steps = np.concatenate([self.busy_steps[k] for k in members])
        uniq, counts = np.unique(all_steps, return_counts=True)
        total = comb(n - 1, draws)
        # chance that none of the draws is busy, for k other busy members
        none_busy = np.array([comb(n - 1 - k, draws) / total for k in range(n)], dtype=np.float64)
        worst = 0.0
        for k in members:
            others = counts[np.searchsorted(uniq, self.busy_steps[k])] - 1
            worst = max(worst, float(np.mean(1.0 - none_busy[others])))
        return worst
