"""Replay measured samples against a recommendation: what each decision would have met, counted per workload.

Every sample after the origin is put under its workload's decision and the plan's placement, not where it ran:
- **OOM** (MIG, MPS): the sample's memory is above the decision's memory limit (the slice's or the pinned limit);
- **time-slicing OOM** (time-slicing and MPS GPUs, time-sliced MIG slices): at one sampling step the memory of the
  tenants the plan puts on one GPU (or slice) adds up to more than it has; every tenant sample there counts (they
  all fail). A tenant of a time-sliced MIG slice is judged this way only: its limit is a share, not enforced alone;
- **slowed** (MIG, MPS): the sample's compute (``sm_active_gpu_fraction``, measured samples only) is above the
  decision's compute grant by more than ``COMPUTE_SLACK``;
- **contended** (time-slicing, time-sliced MIG slices): a busy sample (compute above the advisor's idle threshold)
  at a step when another tenant of its GPU or slice was busy too: measured, not modelled;
- **queued**: a sample at a step when its pool (plan/fleet.py's interchangeable slots) had more devices present
  than the plan gives it slots, i.e. some workload of the pool would have waited.
Sample times are aligned on the sampling step (the nearest step counted from the history's first sample), so
scrapes a few seconds apart on different nodes meet. Everything is numpy over whole columns: no Python loop over
samples or workloads' rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from advisor.backtest.groups import MODE_CODES, NO_POOL, Groups, groups
from advisor.backtest.model import NewWorkload, WorkloadReplay
from advisor.features import IDLE_GPU_FRACTION
from advisor.model import Mode, Recommendation

COMPUTE_SLACK = 5e-4  # grants are rounded to 4 decimals; a sample this close to its grant is not slowed
_LIMITED = (MODE_CODES[Mode.MIG], MODE_CODES[Mode.MPS])


@dataclass(frozen=True)
class Replayed:
    workloads: tuple[WorkloadReplay, ...]
    new: tuple[NewWorkload, ...]
    timeslice_oom_gpu_steps: int
    gpus_in_use: int
    gpus_busy_at_once_max: int


def step_seconds(history: pd.DataFrame) -> int:
    """The sampling step: the median gap between consecutive distinct sample times (at least 1 s)."""
    times = np.sort(pd.unique(_seconds(history["timestamp"])))
    return max(1, int(np.median(np.diff(times)))) if len(times) > 1 else 60


def replay(rows: pd.DataFrame, rec: Recommendation, anchor: datetime, step_s: int) -> Replayed:
    """Count what the samples in ``rows`` (the history after an origin) meet under ``rec``'s decisions and plan;
    steps are counted from ``anchor``, a sample time (the history's first), so that the grid sits on the samples.

    Memory is kept to a few arrays of the rows' length (int32 keys and steps, the columns' own buffers, one sort's
    worth of int64): the replay of 20 M rows must fit beside the history it comes from."""
    g = groups(rec)
    n_keys = len(g.keys)
    key = _key_of(rows, g.keys)
    seconds = _seconds(rows["timestamp"])
    seconds -= int(anchor.timestamp()) - step_s // 2
    seconds //= step_s
    first = int(seconds.min()) if len(seconds) else 0
    bins = (seconds - first).astype(np.int32)
    del seconds
    n_bins = int(bins.max()) + 1 if len(bins) else 1
    memory = rows["memory_used_bytes"].to_numpy(np.int64)
    compute = rows["sm_active_gpu_fraction"].to_numpy(np.float64)

    known = key >= 0
    everything = bool(known.all())
    k, b, mem, sm = (
        (key, bins, memory, compute) if everything else (key[known], bins[known], memory[known], compute[known])
    )
    limited = np.isin(g.mode, _LIMITED)[k]
    measured = ~np.isnan(sm)
    per = {
        "samples": np.bincount(k, minlength=n_keys),
        "oom": np.bincount(k[g.isolated[k] & (mem > g.memory_limit[k])], minlength=n_keys),
        "measured": np.bincount(k[measured], minlength=n_keys),
        "slowed": np.bincount(k[limited & measured & (sm > g.compute_limit[k] + COMPUTE_SLACK)], minlength=n_keys),
    }
    del limited, measured
    peak = np.zeros(n_keys, dtype=np.int64)
    np.maximum.at(peak, k, mem)

    # one entry per (workload, step) present, with the devices (rows) there: the pools' occupancy
    pair, devices = _counted(k.astype(np.int64) * n_bins + b)
    pair_key, pair_bin = pair // n_bins, pair % n_bins
    del pair
    per["queued"] = _queued(g, pair_key, pair_bin, devices, n_bins, n_keys)
    del pair_key, pair_bin, devices
    # workloads on time-slicing and MPS GPUs: their rows only
    on_shared = np.zeros(n_keys, dtype=bool)
    on_shared[g.shared.key] = True
    mine = on_shared[k]
    ts_oom, busy, contended, oom_steps = _shared(g, k[mine], b[mine], mem[mine], sm[mine], n_bins, n_keys)
    del k, b, mem, sm, mine

    workloads = []
    for i, (name, model) in enumerate(g.keys):
        d = rec.workloads[i].decision
        workloads.append(
            WorkloadReplay(
                workload=name,
                gpu_model=model,
                mode=d.mode.value,
                profile=d.profile,
                memory_limit_bytes=d.memory_limit_bytes,
                compute_limit_gpu_fraction=d.compute_limit_gpu_fraction,
                samples=int(per["samples"][i]),
                memory_peak_bytes=int(peak[i]),
                oom_samples=int(per["oom"][i]),
                timeslice_oom_samples=int(ts_oom[i]),
                measured_samples=int(per["measured"][i]),
                slowed_samples=int(per["slowed"][i]),
                timeslice_busy_samples=int(busy[i]),
                contended_samples=int(contended[i]),
                queued_samples=int(per["queued"][i]),
            )
        )
    in_use, at_once = _gpus(rows, bins, n_bins)
    return Replayed(tuple(workloads), () if everything else _new(rows[~known]), oom_steps, in_use, at_once)


def _seconds(timestamps: pd.Series) -> np.ndarray:
    return timestamps.to_numpy("datetime64[ms]").astype(np.int64) // 1000


def _counted(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct codes and how many times each occurs (a sort: ``np.unique`` hashes, slower at this size)."""
    codes.sort()
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.zeros(0, dtype=np.int64)
    return codes[starts], np.diff(np.r_[starts, len(codes)])


def _key_of(rows: pd.DataFrame, keys: list[tuple[str, str]]) -> np.ndarray:
    """Per row, the index of its (workload, GPU model) among the recommendation's workloads, or -1."""
    workload = rows["workload"].astype("category")
    model = rows["gpu_model"].astype("category")
    w_index = {str(name): i for i, name in enumerate(workload.cat.categories)}
    m_index = {str(name): i for i, name in enumerate(model.cat.categories)}
    n_models = max(1, len(m_index))
    lookup = np.full(max(1, len(w_index)) * n_models, -1, dtype=np.int32)
    for i, (name, gpu_model) in enumerate(keys):
        if name in w_index and gpu_model in m_index:
            lookup[w_index[name] * n_models + m_index[gpu_model]] = i
    codes = workload.cat.codes.to_numpy(np.int64) * n_models
    codes += model.cat.codes.to_numpy(np.int64)
    return lookup[codes]


def _queued(
    g: Groups, pair_key: np.ndarray, pair_bin: np.ndarray, devices: np.ndarray, n_bins: int, n_keys: int
) -> np.ndarray:
    """Per workload, its samples at steps when its pool had more devices present than slots."""
    pool = g.pool[pair_key]
    placed = pool != NO_POOL
    cell = pool[placed] * n_bins + pair_bin[placed]
    del pool
    weight = devices[placed]
    present = np.bincount(cell, weights=weight, minlength=len(g.slots) * n_bins)
    # over its slots, per (pool, step) cell, then per pair: no per-pair arrays of presence and slots
    over = (present > np.repeat(g.slots, n_bins))[cell]
    del cell
    return np.bincount(pair_key[placed][over], weights=weight[over], minlength=n_keys).astype(np.int64)


def _shared(
    g: Groups,
    key: np.ndarray,
    step: np.ndarray,
    memory: np.ndarray,
    compute: np.ndarray,
    n_bins: int,
    n_keys: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Time-slicing and MPS GPUs as the plan fills them, from the rows of their workloads: per workload its samples
    on a GPU over memory, its busy time-sliced samples and those that met another busy tenant; and the (GPU, step)
    pairs over memory."""
    zeros = np.zeros(n_keys, dtype=np.int64)
    s = g.shared
    if len(s.key) == 0 or len(key) == 0:
        return zeros, zeros.copy(), zeros.copy(), 0
    # per (workload, step): devices, the largest device's memory, the sum, busy devices (NaN compute: not busy)
    pair, inverse, devices = np.unique(key.astype(np.int64) * n_bins + step, return_inverse=True, return_counts=True)
    pair_key, pair_bin = pair // n_bins, pair % n_bins
    largest = np.zeros(len(pair), dtype=np.int64)
    np.maximum.at(largest, inverse, memory)
    total = np.bincount(inverse, weights=memory, minlength=len(pair))
    busy = np.bincount(inverse[compute > IDLE_GPU_FRACTION], minlength=len(pair))

    # expand to (shared GPU, workload, step): each membership takes its workload's run of pairs (sorted by key)
    starts = np.searchsorted(pair_key, np.arange(n_keys + 1))
    lo, hi = starts[s.key], starts[s.key + 1]
    length = hi - lo
    member = np.repeat(np.arange(len(s.key)), length)
    offset = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
    at = np.repeat(lo, length) + offset
    count = s.count[member]
    here = np.minimum(count, devices[at])  # its devices on this GPU at that step
    share = np.where(count >= devices[at], total[at], count * largest[at])
    gpu = s.gpu[member]
    cell, cell_of = np.unique(gpu * n_bins + pair_bin[at], return_inverse=True)
    over_cell = np.bincount(cell_of, weights=share) > s.gpu_memory[cell // n_bins]
    over = over_cell[cell_of]
    owner = s.key[member]
    ts_oom = np.bincount(owner[over], weights=here[over], minlength=n_keys)

    sliced = s.timesliced[gpu]
    busy_here = np.where(sliced, np.minimum(count, busy[at]), 0)
    busy_on_gpu = np.bincount(cell_of, weights=busy_here)[cell_of]
    met = busy_on_gpu >= 2  # another busy tenant, or another busy replica of its own
    busy_n = np.bincount(owner, weights=busy_here, minlength=n_keys)
    contended = np.bincount(owner[met], weights=busy_here[met], minlength=n_keys)
    as_int = (ts_oom.astype(np.int64), busy_n.astype(np.int64), contended.astype(np.int64))
    return (*as_int, int(over_cell.sum()))


def _gpus(rows: pd.DataFrame, bins: np.ndarray, n_bins: int) -> tuple[int, int]:
    """GPUs the replayed samples ran on (today's placement): how many in all, and the most at one step."""
    if len(rows) == 0:
        return 0, 0
    uuid = rows["gpu_uuid"].astype("category")
    codes = uuid.cat.codes.to_numpy().astype(np.int64)  # a copy: it is scaled in place below
    used = np.bincount(codes, minlength=len(uuid.cat.categories)) > 0
    codes *= n_bins
    codes += bins
    cells, _ = _counted(codes)
    return int(used.sum()), int(np.bincount(cells % n_bins).max())


def _new(rows: pd.DataFrame) -> tuple[NewWorkload, ...]:
    if rows.empty:
        return ()
    frame = pd.DataFrame(
        {
            "workload": rows["workload"].astype(str).to_numpy(),
            "gpu_model": rows["gpu_model"].astype(str).to_numpy(),
            "timestamp": rows["timestamp"].to_numpy("datetime64[ms]"),
            "memory": rows["memory_used_bytes"].to_numpy(np.int64),
        }
    )
    stats = frame.groupby(["workload", "gpu_model"], sort=True).agg(
        samples=("memory", "size"), first=("timestamp", "min"), peak=("memory", "max")
    )
    first = pd.to_datetime(stats["first"]).dt.tz_localize("UTC")
    return tuple(
        NewWorkload(str(w), str(m), int(n), t.to_pydatetime(), int(p))
        for w, m, n, t, p in zip(
            stats.index.get_level_values(0),
            stats.index.get_level_values(1),
            stats["samples"],
            first,
            stats["peak"],
            strict=True,
        )
    )
