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

import numpy as np
import pandas as pd

from advisor.decide.demand import pct
from advisor.decide.fits import instances_per_gpu
from advisor.row_scans import (
    combined_key,
    is_sorted,
    label_codes,
    most_at_once,
    order_by,
    run_lengths,
    run_starts,
    split_key,
)
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
    on_mig = _is_mig(rows["mig_profile"])
    instants = _instants(rows["timestamp"])
    oversubscribed, worst = _mig_turns(rows, instants, on_mig)
    share = _saturated_share(rows, instants, ~on_mig)
    saturated = int((share >= MIN_SHARE).sum())
    worst_share = float(share.max()) if saturated else 0.0
    return Today(gpus, oversubscribed, worst, saturated, worst_share)


def _is_mig(profile: pd.Series) -> np.ndarray:
    """Rows on a MIG instance (a profile is named), read from the categories, not from a string per row."""
    if isinstance(profile.dtype, pd.CategoricalDtype):
        named = np.append(np.asarray(profile.cat.categories.astype(str) != ""), True)  # code -1 (missing): "nan"
        return named[profile.cat.codes.to_numpy()]
    return np.asarray(profile.astype(str) != "")


def _instants(timestamps: pd.Series) -> np.ndarray:
    """Sample times as integers in the column's own unit (times within a second stay apart), or their ranks."""
    if isinstance(timestamps.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(timestamps.dtype):
        return np.asarray(timestamps.array.asi8)
    return pd.factorize(timestamps, sort=True)[0].astype(np.int64)


def _mig_turns(rows: pd.DataFrame, instants: np.ndarray, on_mig: np.ndarray) -> tuple[int, tuple[int, int, str] | None]:
    """GPUs where more distinct workloads were on a profile's instances at once than the GPU holds, and the worst
    case as (workloads, instances, profile): the first in (GPU, model, profile) order where several tie."""
    if not on_mig.any():
        return 0, None
    gpu, uuids = label_codes(rows["gpu_uuid"], sort=True, rows=on_mig)
    model, models = label_codes(rows["gpu_model"], sort=True, rows=on_mig)
    profile, profiles = label_codes(rows["mig_profile"], sort=True, rows=on_mig)
    workload, _ = label_codes(rows["workload"], rows=on_mig)
    sizes = [len(uuids), len(models), len(profiles)]
    devices, most = most_at_once(combined_key([gpu, model, profile], sizes), instants[on_mig], workload)
    capacity: dict[tuple[int, int], int | None] = {}
    oversubscribed: set[str] = set()
    worst: tuple[int, int, str] | None = None
    for g, m, p, n in zip(*(c.tolist() for c in split_key(devices, sizes)), most.tolist(), strict=True):
        if (m, p) not in capacity:
            capacity[(m, p)] = _instances(models[m], profiles[p])
        cap = capacity[(m, p)]
        if cap is not None and n > cap:
            oversubscribed.add(uuids[g])
            if worst is None or n - cap > worst[0] - worst[1]:
                worst = (n, cap, profiles[p])
    return len(oversubscribed), worst


def _instances(model_name: str, profile: str) -> int | None:
    """Instances of ``profile`` one GPU of the model holds; None where the catalogue does not know them."""
    gpu = find_model(model_name)
    if gpu is None or not any(p.name == profile for p in gpu.profiles):
        return None
    return instances_per_gpu(gpu.key, profile)


def _saturated_share(rows: pd.DataFrame, instants: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """Per whole GPU with shared samples (two or more tenants at one time), the share of them in which the
    tenants' summed activity reached ``SATURATED``."""
    if not whole.any():
        return np.zeros(0)
    gpu, _ = label_codes(rows["gpu_uuid"], sort=True, rows=whole)
    instants = instants[whole]
    activity = rows["sm_active_gpu_fraction"].to_numpy(dtype="float64")[whole]
    order = order_by(gpu, instants)
    in_order = is_sorted(order)
    gpu, instants, activity = gpu[order], instants[order], activity[order]
    starts = run_starts(gpu, instants)
    tenants = run_lengths(starts, len(gpu))
    shared = tenants >= 2
    if not shared.any():
        return np.zeros(0)
    # summed as pandas's groupby().sum() adds, so that a sum right at the threshold compares the same
    if in_order and not np.isnan(activity).any():
        sums = np.add.reduceat(activity, starts)[shared]  # pandas's path for rows already in group order
    else:
        sums = _kahan_sums(activity, starts[shared], tenants[shared])
    full = sums >= SATURATED
    per_gpu = gpu[starts[shared]]
    first = run_starts(per_gpu)
    return np.add.reduceat(full, first, dtype=np.int64) / run_lengths(first, len(per_gpu))


def _kahan_sums(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Sums of the runs ``values[start : start + length]`` as pandas's Cython ``group_sum`` adds them: in row
    order, Kahan-compensated, NaN skipped, vectorised over the runs one position at a time."""
    total = np.zeros(len(starts))
    compensation = np.zeros(len(starts))
    for j in range(int(lengths.max()) if len(lengths) else 0):
        runs = np.flatnonzero(lengths > j)
        value = values[starts[runs] + j]
        known = ~np.isnan(value)
        runs, value = runs[known], value[known]
        y = value - compensation[runs]
        t = total[runs] + y
        c = (t - total[runs]) - y
        compensation[runs] = np.where(np.isnan(c), 0.0, c)  # an infinite value: no compensation (pandas GH#53606)
        total[runs] = t
    return total
