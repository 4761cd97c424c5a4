"""How the fleet shares its GPUs today, read from the history: where it is over-committed.

A plan can need more GPUs than the fleet has when today's sharing gives workloads less than they use: several
workloads taking turns on one MIG instance (more of them on a GPU at once than instances of that profile fit), or
tenants of a whole GPU (time-slicing, MPS) whose summed activity saturates it. The report says so, with numbers,
so that "more GPUs" reads as what it is: the price of giving every workload its own measured share.

- MIG: at one sample time, more distinct workloads on a (GPU, profile) than ``instances_per_gpu`` of the profile.
- Whole GPUs: at one sample time, two or more workloads whose summed SM activity is at least ``SATURATED`` of the
  GPU; a GPU counts when that happens in at least ``MIN_SHARE`` of its shared samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from advisor.decide.demand import pct
from advisor.decide.fits import instances_per_gpu
from slicewise.catalogue import find_model

SATURATED = 0.95
MIN_SHARE = 0.01


@dataclass(frozen=True)
class Today:
    gpus: int
    mig_gpus_oversubscribed: int  # GPUs where workloads took turns on MIG instances
    most_on_instances: tuple[int, int, str] | None  # (workloads at once, instances, profile) at the worst
    shared_gpus_saturated: int  # whole GPUs whose tenants saturated it in >= MIN_SHARE of shared samples
    worst_saturated_share: float

    @property
    def over_committed(self) -> int:
        return self.mig_gpus_oversubscribed + self.shared_gpus_saturated

    def sentence(self) -> str | None:
        if not self.over_committed:
            return None
        parts = []
        if self.mig_gpus_oversubscribed and self.most_on_instances is not None:
            n, cap, profile = self.most_on_instances
            parts.append(
                f"on {self.mig_gpus_oversubscribed} MIG GPU(s) workloads take turns on MIG instances (up to {n} at "
                f"once on a GPU's {cap} {profile} slices)"
            )
        if self.shared_gpus_saturated:
            parts.append(
                f"on {self.shared_gpus_saturated} shared GPU(s) the tenants together saturate the GPU (in up to "
                f"{pct(self.worst_saturated_share)} of the samples they share)"
            )
        return (
            f"Today {self.over_committed} of {self.gpus} GPUs are over-committed: " + "; ".join(parts) + ". The plan "
            "shares a slice only between workloads the history shows to be mostly idle (or already taking turns on "
            "it) and whose peaks fit it together, and gives the others their own measured share, which is why it can "
            "need more GPUs than today."
        )


def today_from_history(rows: pd.DataFrame) -> Today:
    gpus = int(rows["gpu_uuid"].nunique()) if not rows.empty else 0
    mig = rows[rows["mig_profile"].astype(str) != ""]
    oversubscribed: set[str] = set()
    worst: tuple[int, int, str] | None = None
    if not mig.empty:
        at_once = (
            mig.groupby(["gpu_uuid", "gpu_model", "mig_profile", "timestamp"], observed=True)["workload"]
            .nunique()
            .groupby(level=[0, 1, 2], observed=True)
            .max()
        )
        for (uuid, model_name, profile), n in zip(at_once.index.tolist(), at_once.tolist(), strict=True):
            gpu = find_model(str(model_name))
            if gpu is None or not any(p.name == str(profile) for p in gpu.profiles):
                continue
            cap = instances_per_gpu(gpu.key, str(profile))
            if int(n) > cap:
                oversubscribed.add(str(uuid))
                if worst is None or int(n) - cap > worst[0] - worst[1]:
                    worst = (int(n), cap, str(profile))
    whole = rows[rows["mig_profile"].astype(str) == ""]
    saturated = 0
    worst_share = 0.0
    if not whole.empty:
        per_time = whole.groupby(["gpu_uuid", "timestamp"], observed=True).agg(
            tenants=("workload", "size"), activity=("sm_active_gpu_fraction", "sum")
        )
        shared = per_time[per_time["tenants"] >= 2]
        if not shared.empty:
            share = (shared["activity"] >= SATURATED).groupby(level=0, observed=True).mean()
            saturated = int((share >= MIN_SHARE).sum())
            worst_share = float(share.max())
    return Today(gpus, len(oversubscribed), worst, saturated, worst_share if saturated else 0.0)
