"""Who is present at the same time: the plan sizes each pool of interchangeable slots for its busiest moment.

A notebook closed at night, a batch job between runs, a training job between runs hold no GPU. Instances of one
MIG profile on one GPU model are interchangeable to the scheduler, as are the replicas of one time-slicing or MPS
setup and whole GPUs of one model; so a pool needs as many slots as the most of its workloads (counting each
replica, i.e. each device it ran on) present at once — not one per workload. With a fixed MIG geometry per GPU that
is both necessary and sufficient: at every moment of the window, the workloads present find a free slot.

Presence is read from the history file: the window is cut into bins of ``bin_s`` (5 minutes, or the sampling step
if that is longer), and a workload counts as present in a bin with the most devices it had at one sample time in
it. Bins slightly over-count at the edges of a run (a job ending and another starting in the same five minutes
count as overlapping), never under-count. Where no history frame is at hand (Prometheus), the plan counts every
workload as always present: the conservative answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from advisor.model import WorkloadKey
from advisor.row_scans import (
    combined_key,
    distinct_values,
    epoch_seconds,
    label_codes,
    narrow_run_lengths,
    run_starts,
    runs_of,
    seconds_since_first,
)

MIN_BIN_S = 300


@dataclass(frozen=True)
class Presence:
    keys: dict[WorkloadKey, int]  # key -> index into starts
    starts: np.ndarray  # per key, its first row in bins/devices (and starts[-1] = len)
    bins: np.ndarray  # bin index of each (key, bin) present
    devices: np.ndarray  # most devices of the key at one sample time in that bin
    bin_s: int

    @classmethod
    def from_history(cls, rows: pd.DataFrame) -> Presence:
        """From a history frame (``read_history``), usually the window's rows."""
        if rows.empty:
            empty = np.zeros(0, dtype=np.int64)
            return cls({}, np.zeros(1, dtype=np.int64), empty, empty, MIN_BIN_S)
        workload = rows["workload"].astype("category")
        model = rows["gpu_model"].astype("category")
        n_models = len(model.cat.categories)
        n_workloads = len(workload.cat.categories)
        key = combined_key([workload.cat.codes.to_numpy(), model.cat.codes.to_numpy()], [n_workloads, n_models])
        seconds = seconds_since_first(rows)
        distinct = distinct_values(seconds)
        step = int(np.median(np.diff(distinct))) if len(distinct) > 1 else MIN_BIN_S
        del distinct
        bin_s = max(MIN_BIN_S, step)
        # rows per (key, sample time): devices at that time; then the most of them per (key, bin)
        binned, time_of, starts = runs_of(key, seconds)
        n_rows = len(key)
        del key, seconds  # the rows' arrays: only the (key, time) pairs are needed from here
        per_time = narrow_run_lengths(starts, n_rows)
        del starts
        binned <<= 32
        time_of //= bin_s
        binned |= time_of  # (key, bin)
        del time_of
        edges = run_starts(binned)
        most = np.maximum.reduceat(per_time, edges)
        pair = binned[edges]
        pair_key, pair_bin = pair >> 32, pair & 0xFFFFFFFF
        key_edges = run_starts(pair_key)
        names = workload.cat.categories
        models = model.cat.categories
        keys = {
            WorkloadKey(str(names[k // n_models]), str(models[k % n_models])): i
            for i, k in enumerate(pair_key[key_edges])
        }
        return cls(keys, np.r_[key_edges, len(pair)], pair_bin, most.astype(np.int64), bin_s)

    def peak(self, keys: Iterable[WorkloadKey]) -> int | None:
        """The most devices of these workloads present at once; None if none of them is in the history."""
        parts = [self.keys[k] for k in keys if k in self.keys]
        if not parts:
            return None
        bins = np.concatenate([self.bins[self.starts[i] : self.starts[i + 1]] for i in parts])
        devices = np.concatenate([self.devices[self.starts[i] : self.starts[i + 1]] for i in parts])
        return int(np.bincount(bins, weights=devices).max().round())


@dataclass(frozen=True)
class BusyGpus:
    """The most GPUs that had a workload at once, per model and in all: what the fleet really used, as against
    every GPU seen in the window (a GPU replaced or idle for the whole window counts there, not here)."""

    per_model: dict[str, int]
    total: int

    @classmethod
    def from_history(cls, rows: pd.DataFrame, bin_s: int = MIN_BIN_S) -> BusyGpus:
        if rows.empty:
            return cls({}, 0)
        gpu, gpus = label_codes(rows["gpu_uuid"])
        model, models = label_codes(rows["gpu_model"])
        seconds = epoch_seconds(rows)
        bins = seconds - seconds.min()
        bins //= bin_s
        # a (bin x GPU) table of who held a workload: 14 days at 5 minutes x 2,000 GPUs is 8 M cells
        held = np.zeros((int(bins.max()) + 1, len(gpus)), dtype=bool)
        held[bins, gpu] = True
        model_of_gpu = np.zeros(len(gpus), dtype=np.int64)
        model_of_gpu[gpu] = model  # a GPU's model is one (the history's checks)
        total = int(held.sum(axis=1).max())
        seen = model_of_gpu[np.flatnonzero(np.bincount(gpu, minlength=len(gpus)))]
        per_model = {models[m]: int(held[:, model_of_gpu == m].sum(axis=1).max()) for m in np.unique(seen)}
        return cls(per_model, total)
