"""Per-workload features from a history frame: an honest picture of each workload on each GPU model.

One row of the history is one sample of one workload on one device (DESIGN.md), so every figure below is over the
rows of a (workload, GPU model) pair in the window — a workload with four replicas contributes four rows per
sampling step, and its memory p99 is the p99 over all of them (what one replica must be sized for).

Formulas (n rows, m of them with compute measured; x = ``sm_active_gpu_fraction``, y = ``memory_used_bytes``):

- ``memory_peak_bytes`` = max y; ``memory_mean_bytes`` = round(Σy / n);
  ``memory_p{95,99}_bytes`` and ``memory_quantiles[q]`` = round(Q(y, q)), where Q is the empirical quantile with
  linear interpolation between closest ranks, rank = q·(n−1) — the definition of numpy's default and of
  Prometheus's ``quantile_over_time``, so both sources agree.
- ``compute_*_gpu_fraction`` (demand in whole-GPU fractions): the same statistics of x over the m measured rows;
  ``None`` when m = 0 (A100/A30 MIG without dcgm-exporter: DESIGN.md says so, and the advisor sizes by memory).
- Rows that stand for a bin of samples (Prometheus read at a step longer than its scrape interval) carry the
  bin's mean in x, its largest value in ``sm_active_peak_gpu_fraction`` and its samples in ``bin_samples``: every
  compute figure is then over the bins spread back into samples, each as its largest once and the rest at the
  level that keeps its mean (``bin_values``): the mean and peak are exact, a burst is neither averaged away nor
  counted ``bin_samples`` times.
- ``duty_cycle`` = share of measured rows with x > ``IDLE_GPU_FRACTION`` (0.01 of a GPU): time it computes at all.
- ``burstiness`` = (σ − μ) / (σ + μ) of x (population σ; Goh & Barabási, EPL 81, 48002, 2008): −1 for constant
  demand, about 0 for memoryless on/off demand, towards +1 for rare spikes over idle; −1 when never active.
- ``process_count`` = max ``process_count`` over rows (1 when the column is absent).
- ``devices`` = most rows of the pair at one timestamp: replicas (devices) running at once.
- ``sharing`` = the most frequent ``sharing`` value; ``mig_profile`` = the most frequent MIG profile among its MIG
  rows when it ran mostly on MIG, else ""; ``namespace`` = the most frequent value (ties: alphabetical first).
- ``samples`` = n; ``coverage`` = distinct sample times / sampling steps in the window, at most 1, where the step is
  the median gap between a workload's consecutive sample times across the whole history (57 s in the Alibaba data).

The window is (start, end]: a sample exactly at ``start`` belongs to the previous window, as in a Prometheus range.

Quantiles are computed for every group at once from sorted composite keys (group << bits | value), not a Python
loop per workload: the rows are put in group order once (a radix sort of the group ids), and each column's keys,
taken in that order, are sorted by timsort (``kind="stable"``), which finds the groups already in order (and the
times within them): the same array as one quicksort of all the keys, in a third to half the time. Compute fractions
are sorted as integers of 2⁻ᵇ with b = 62 − (bits of the group count), at most 52 and at least 40: for 2,000 groups
b = 51, exact to 4·10⁻¹⁶; at worst (4 M groups) exact to 5·10⁻¹³ — far below any measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from advisor.model import QUANTILE_LEVELS, Window, WorkloadFeatures
from advisor.row_scans import combined_key, label_codes
from slicewise.history_schema import BIN_SAMPLES_COLUMN, PEAK_COLUMN, Sharing
from slicewise.progress import progress

IDLE_GPU_FRACTION = 0.01  # compute demand at or below this share of a whole GPU counts as idle (duty cycle)
_FRACTION_BITS = 40  # compute fractions are sorted as integers of 2**-40 at least (more when there are few groups)
_STAGES = 5
_SLICE_ROWS = 4_000_000  # rows per slice in passes over all rows (the timing pass, the sort keys)


@dataclass(frozen=True)
class _Groups:
    """Rows grouped by (workload, GPU model): ``ids`` per row, the names per group, rows per group."""

    ids: np.ndarray  # int32 per row, 0..count-1
    workloads: list[str]
    models: list[str]
    rows: np.ndarray  # rows per group
    order: np.ndarray  # row indices in group order (rows of group 0 first), in row order within a group

    @property
    def count(self) -> int:
        return len(self.workloads)


def trailing_window(history: pd.DataFrame, length: timedelta) -> Window:
    """The last ``length`` of a history: (last sample − length, last sample]."""
    end = pd.Timestamp(history["timestamp"].max()).to_pydatetime()
    return Window(start=end - length, end=end)


def compute_features(
    history: pd.DataFrame, window: Window | None = None, *, step: timedelta | None = None
) -> list[WorkloadFeatures]:
    """Features per (workload, GPU model) over ``window`` (default: the whole history), sorted by workload.

    ``history`` is what ``advisor.history.read_history`` returns (or any frame with DESIGN.md's columns).
    ``step`` is the sampling interval used for coverage; by default it is inferred from the samples.
    """
    millis = _epoch_millis(history["timestamp"])
    keep = None
    if window is not None:
        start, end = _millis(window.start), _millis(window.end)
        keep = (millis > start) & (millis <= end)
        if keep.all():
            keep = None
        millis = millis if keep is None else millis[keep]
    if len(millis) == 0:
        return []

    def column(name: str) -> pd.Series:
        values = history[name]
        return values if keep is None else values[keep]

    with progress("Computing workload features", total=_STAGES) as bar:
        groups = _group(column("workload"), column("gpu_model"))
        memory = _memory_stats(column("memory_used_bytes").to_numpy(dtype="int64"), groups)
        bar.advance()
        fraction = column("sm_active_gpu_fraction").to_numpy(dtype="float64")
        if PEAK_COLUMN in history:  # rows that stand for bins of samples (Prometheus at a coarse step)
            samples = column(BIN_SAMPLES_COLUMN).to_numpy(dtype="int64") if BIN_SAMPLES_COLUMN in history else None
            compute = _bin_stats(fraction, column(PEAK_COLUMN).to_numpy(dtype="float64"), samples, groups)
        else:
            compute = _compute_stats(fraction, groups)
        bar.advance()
        timing = _timing_stats(millis, groups, window, step)
        evidence = _evidence_stats(millis, column("memory_used_bytes").to_numpy(dtype="int64"), groups)
        bar.advance()
        sharing = _mode(column("sharing"), groups)
        mig_rows = column("mig_profile")
        profile = _mode(mig_rows, groups, ignore="")
        namespace = _mode(column("namespace"), groups) if "namespace" in history else [""] * groups.count
        processes = np.ones(groups.count, dtype=np.int64)
        if "process_count" in history:
            np.maximum.at(processes, groups.ids, column("process_count").to_numpy(dtype="int64"))
        bar.advance()
        features = [
            _features_of(
                g,
                groups,
                memory,
                compute,
                timing,
                evidence,
                (sharing[g], profile[g], namespace[g]),
                int(processes[g]),
            )
            for g in range(groups.count)
        ]
        bar.advance()
    return sorted(features, key=lambda f: (f.workload, f.gpu_model))


# ---------------------------------------------------------------------------------------------------- grouping


def _group(workloads: pd.Series, models: pd.Series) -> _Groups:
    w_codes, w_names = label_codes(workloads)
    m_codes, m_names = label_codes(models)
    combined = combined_key([w_codes, m_codes], [len(w_names), len(m_names)])
    counts = np.bincount(combined, minlength=len(w_names) * len(m_names))
    present = np.flatnonzero(counts)
    dense = np.full(len(counts), -1, dtype=np.int32)
    dense[present] = np.arange(len(present))
    ids = dense[combined]
    return _Groups(
        ids=ids,
        workloads=[w_names[i // len(m_names)] for i in present],
        models=[m_names[i % len(m_names)] for i in present],
        rows=counts[present],
        order=_stable_order(ids, len(present)),
    )


def _stable_order(ids: np.ndarray, count: int) -> np.ndarray:
    """Row indices grouped by id, stable: numpy radix-sorts ids of 16 bits or fewer."""
    return np.argsort(ids.astype(np.uint16) if count <= 1 << 16 else ids, kind="stable")


def _mode(values: pd.Series, groups: _Groups, ignore: str | None = None) -> list[str]:
    """The most frequent value per group (ties: alphabetical first); ``ignore`` is never chosen if another exists."""
    codes, names = label_codes(values)
    cells = combined_key([groups.ids, codes], [groups.count, len(names)])
    table = np.bincount(cells, minlength=groups.count * len(names))
    table = table.reshape(groups.count, len(names))
    order = np.argsort(np.array(names, dtype=object))  # alphabetical columns: argmax takes the first maximum
    table = table[:, order]
    if ignore is not None and ignore in names:
        position = int(np.flatnonzero(np.array(names, dtype=object)[order] == ignore)[0])
        counted = table.copy()
        counted[:, position] = -1
        has_other = counted.max(axis=1) > 0
        best = np.where(has_other, counted.argmax(axis=1), position)
    else:
        best = table.argmax(axis=1)
    return [names[order[b]] for b in best]


# ---------------------------------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class _Stats:
    """Per group: count, sum, sum of squares, active count and quantiles (columns: QUANTILE_LEVELS + 0.95, 0.99, 1)."""

    count: np.ndarray
    total: np.ndarray
    squares: np.ndarray
    active: np.ndarray
    quantiles: np.ndarray  # (groups, len(_LEVELS))


_LEVELS = np.array(sorted({*QUANTILE_LEVELS, 0.95, 0.99, 1.0}))


def _level_of(q: float) -> int:
    return int(np.flatnonzero(np.isclose(_LEVELS, q))[0])


_LEVEL_OF = {q: _level_of(q) for q in (*QUANTILE_LEVELS, 0.95, 0.99, 1.0)}  # looked up per workload and level


def _level(q: float) -> int:
    return _LEVEL_OF[q]


def group_quantiles(sorted_values: np.ndarray, counts: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles per group of values sorted by (group, value), groups contiguous with ``counts`` rows each.

    Linear interpolation between closest ranks, rank = q·(n−1), in Prometheus's arithmetic (lower·(1−w) + upper·w)
    so that a file and ``quantile_over_time`` give the same figure. Groups with no rows give NaN.
    """
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = levels[None, :] * np.maximum(counts[:, None] - 1, 0)
    lower = np.floor(rank)
    weight = rank - lower
    last = starts[:, None] + np.maximum(counts[:, None] - 1, 0)
    lo = np.minimum(starts[:, None] + lower.astype(np.int64), last)
    hi = np.minimum(lo + 1, last)
    if len(sorted_values) == 0:
        return np.full(rank.shape, np.nan)
    lo_v = sorted_values[np.minimum(lo, len(sorted_values) - 1)].astype(np.float64)
    hi_v = sorted_values[np.minimum(hi, len(sorted_values) - 1)].astype(np.float64)
    out = lo_v * (1 - weight) + hi_v * weight
    out[counts == 0] = np.nan
    return out


def _group_sorted_keys(grouped: np.ndarray, counts: np.ndarray, n_groups: int) -> tuple[np.ndarray, int]:
    """Composite keys ``group << bits | value`` sorted: groups in id order, values ascending.

    ``grouped`` are non-negative int64 already in group order (``values[_Groups.order]``, a scratch copy: the keys
    are built in its buffer, so that a history's column is not held twice), ``counts`` their rows per group;
    ``keys & ((1 << bits) - 1)`` gives the values back.
    """
    value_bits = max(int(grouped.max()).bit_length(), 1) if len(grouped) else 1
    group_bits = max(int(n_groups - 1).bit_length(), 1)
    if value_bits + group_bits > 63:
        raise ValueError(f"values of {value_bits} bits do not fit beside {n_groups} groups in 64 bits")
    keys = grouped if grouped.dtype == np.int64 else grouped.astype(np.int64)
    _or_group_ids(keys, counts, value_bits)
    keys.sort(kind="stable")  # timsort: in group order already, only each group's values need merging
    return keys, value_bits


def _or_group_ids(keys: np.ndarray, counts: np.ndarray, shift: int) -> None:
    """``keys |= group << shift`` in place for rows in group order, a slice of rows at a time: no array of a group
    id per row (as ``np.repeat`` over all rows would make)."""
    ends = np.cumsum(counts)
    starts = ends - counts
    for lo in range(0, len(keys), _SLICE_ROWS):
        hi = min(lo + _SLICE_ROWS, len(keys))
        first, last = np.searchsorted(ends, [lo, hi - 1], side="right")
        span = np.arange(first, last + 1, dtype=np.int64)
        rows = np.minimum(ends[span], hi) - np.maximum(starts[span], lo)
        ids = np.repeat(span, rows)
        ids <<= shift
        keys[lo:hi] |= ids


def _sorted_by_group(grouped: np.ndarray, counts: np.ndarray, n_groups: int) -> np.ndarray:
    """Non-negative integers in group order (a scratch copy, reused), sorted within their groups
    (``_group_sorted_keys``)."""
    keys, bits = _group_sorted_keys(grouped, counts, n_groups)
    keys &= (1 << bits) - 1
    return keys


def _memory_stats(memory: np.ndarray, groups: _Groups) -> _Stats:
    counts = np.bincount(groups.ids, minlength=groups.count)
    total = np.bincount(groups.ids, weights=memory.astype(np.float64), minlength=groups.count)
    ordered = _sorted_by_group(memory[groups.order], counts, groups.count)
    return _Stats(
        count=counts,
        total=total,
        squares=np.zeros(groups.count),
        active=np.zeros(groups.count),
        quantiles=group_quantiles(ordered, counts, _LEVELS),
    )


def _fraction_quantiles(grouped: np.ndarray, counts: np.ndarray, n_groups: int) -> np.ndarray:
    """Quantiles per group of fractions in group order (a scratch copy: scaled in place), sorted as integers."""
    # as many bits as the group ids leave free in an int64 key: 51 for 2,000 groups (exact to 4e-16), 40 at worst
    bits = max(_FRACTION_BITS, min(52, 62 - max(int(n_groups - 1).bit_length(), 1)))
    scale = float(1 << bits)
    grouped *= scale
    np.rint(grouped, out=grouped)
    ordered = _sorted_by_group(_as_int64_in_place(grouped), counts, n_groups)
    return group_quantiles(ordered, counts, _LEVELS) / scale


def _as_int64_in_place(values: np.ndarray) -> np.ndarray:
    """Whole-number float64 as int64 in their own buffer (``values`` is spent), a slice at a time: no second array
    of every row."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    out = values.view(np.int64)
    for lo in range(0, len(values), _SLICE_ROWS):
        out[lo : lo + _SLICE_ROWS] = values[lo : lo + _SLICE_ROWS].astype(np.int64)
    return out


def _bin_stats(mean: np.ndarray, peak: np.ndarray, samples: np.ndarray | None, groups: _Groups) -> _Stats:
    """Compute statistics of rows that each stand for a bin of ``samples`` samples (None: one) of which only the
    mean and the largest are known: each bin as its largest once and the rest at the level that keeps its mean —
    the least spread the two allow (``bin_values``). A one-minute burst in an idle bin is then itself and a busy
    bin all busy, so quantiles, duty cycle and burstiness stay near the per-sample ones and the mean is exact,
    where the bins' means alone average bursts away and their maxima alone count each burst five times."""
    measured = ~(np.isnan(mean) | np.isnan(peak))
    order = groups.order[measured[groups.order]]  # the measured rows, in group order
    k = np.ones(len(order), dtype=np.int64) if samples is None else np.maximum(samples[order], 1)
    values = bin_values(mean[order], peak[order], k)
    ids = np.repeat(groups.ids[order], k)
    counts = np.bincount(ids, minlength=groups.count)
    total = np.bincount(ids, weights=values, minlength=groups.count)
    squares = np.bincount(ids, weights=np.square(values), minlength=groups.count)
    active = np.bincount(ids[values > IDLE_GPU_FRACTION], minlength=groups.count)
    quantiles = _fraction_quantiles(values, counts, groups.count)  # last: it spends ``values`` (scaled in place)
    return _Stats(count=counts, total=total, squares=squares, active=active, quantiles=quantiles)


def bin_values(mean: np.ndarray, peak: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Each bin as ``samples`` values: its largest once, then the rest at the level that keeps the bin's mean."""
    k = np.maximum(samples.astype(np.int64), 1)
    top = np.maximum(peak, mean)
    rest = np.clip((k * mean - top) / np.maximum(k - 1, 1), 0.0, top)
    values = np.repeat(rest, k)
    values[np.cumsum(k) - k] = top
    return values


def _compute_stats(fraction: np.ndarray, groups: _Groups) -> _Stats:
    measured = ~np.isnan(fraction)
    everywhere = bool(measured.all())
    ids, x = (groups.ids, fraction) if everywhere else (groups.ids[measured], fraction[measured])
    order = groups.order if everywhere else groups.order[measured[groups.order]]
    counts = np.bincount(ids, minlength=groups.count)
    quantiles = _fraction_quantiles(fraction[order], counts, groups.count)
    return _Stats(
        count=counts,
        total=np.bincount(ids, weights=x, minlength=groups.count),
        squares=np.bincount(ids, weights=np.square(x), minlength=groups.count),
        active=np.bincount(ids[x > IDLE_GPU_FRACTION], minlength=groups.count),
        quantiles=quantiles,
    )


@dataclass(frozen=True)
class _Timing:
    distinct: np.ndarray  # distinct sample times per group
    devices: np.ndarray  # most rows at one time per group
    expected_steps: float  # sampling steps in the window


def _timing_stats(millis: np.ndarray, groups: _Groups, window: Window | None, step: timedelta | None) -> _Timing:
    first = int(millis.min())
    grouped = millis[groups.order]
    grouped -= first
    keys, bits = _group_sorted_keys(grouped, groups.rows, groups.count)  # (group, time) sorted
    del grouped
    mask = (1 << bits) - 1
    offsets = np.concatenate(([0], np.cumsum(groups.rows)))
    distinct = np.empty(groups.count, dtype=np.int64)
    devices = np.empty(groups.count, dtype=np.int64)
    gap_counts: dict[int, int] = {}
    # group-aligned slices of a few million rows: the temporaries stay small whatever the history's size
    lo = 0
    while lo < groups.count:
        hi = int(np.searchsorted(offsets, offsets[lo] + _SLICE_ROWS, side="right")) - 1
        hi = min(max(hi, lo + 1), groups.count)
        part = keys[offsets[lo] : offsets[hi]]
        local = offsets[lo:hi] - offsets[lo]
        new = np.empty(len(part), dtype=bool)
        new[0] = True
        np.not_equal(part[1:], part[:-1], out=new[1:])
        distinct[lo:hi] = np.add.reduceat(new, local, dtype=np.int64)
        starts = np.flatnonzero(new)
        del new
        run_offsets = np.searchsorted(starts, local)
        devices[lo:hi] = np.maximum.reduceat(np.diff(np.append(starts, len(part))), run_offsets)
        gaps = np.diff(part[starts] & mask)
        gaps[run_offsets[1:] - 1] = 0  # the step from one group's last time to the next group's first
        for value, count in _value_counts(gaps[gaps > 0]):
            gap_counts[value] = gap_counts.get(value, 0) + count
        lo = hi
    del keys
    step_ms = step.total_seconds() * 1000 if step is not None else _median_of_counts(gap_counts)
    if window is not None:
        span = _millis(window.end) - _millis(window.start)
        expected = span / step_ms if step_ms > 0 else float(distinct.max())
    else:
        span = int(millis.max()) - first
        expected = span / step_ms + 1 if step_ms > 0 else float(distinct.max())
    return _Timing(distinct=distinct, devices=devices, expected_steps=max(np.floor(expected + 1e-9), 1.0))


@dataclass(frozen=True)
class _Evidence:
    span_ms: np.ndarray  # last minus first sample time per group
    early_peak: np.ndarray  # peak memory over the first half of each group's own span


def _evidence_stats(millis: np.ndarray, memory: np.ndarray, groups: _Groups) -> _Evidence:
    """How long each workload was seen, and its peak over the first half of that time: a peak still growing when
    the history doubles is one the advisor must not take as the workload's size (decide/evidence.py)."""
    first = np.full(groups.count, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(groups.count, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first, groups.ids, millis)
    np.maximum.at(last, groups.ids, millis)
    span = last - first
    early = millis <= (first + span // 2)[groups.ids]
    early_peak = np.zeros(groups.count, dtype=np.int64)
    np.maximum.at(early_peak, groups.ids, np.where(early, memory, 0))  # 0 never raises a peak that starts at 0
    return _Evidence(span_ms=span, early_peak=early_peak)


def _value_counts(values: np.ndarray) -> list[tuple[int, int]]:
    """``np.unique(values, return_counts=True)`` as pairs, sorted by timsort: gaps are mostly the sampling step,
    long runs of one value that it passes over."""
    values = np.sort(values, kind="stable")
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if len(values) else np.zeros(0, dtype=np.int64)
    return list(zip(values[starts].tolist(), np.diff(starts, append=len(values)).tolist(), strict=True))


def _median_of_counts(counts: dict[int, int]) -> float:
    """The (lower) median of values given as value -> how often; 0 when there are none."""
    total = sum(counts.values())
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if 2 * seen >= total:
            return float(value)
    return 0.0


# ---------------------------------------------------------------------------------------------------- assembly


def burstiness(mean: float, std: float) -> float:
    """(σ − μ) / (σ + μ): −1 constant, ~0 memoryless on/off, → +1 rare spikes; −1 when always zero."""
    return -1.0 if std + mean <= 0 else (std - mean) / (std + mean)


def _features_of(
    g: int,
    groups: _Groups,
    memory: _Stats,
    compute: _Stats,
    timing: _Timing,
    evidence: _Evidence,
    labels: tuple[str, str, str],
    processes: int,
) -> WorkloadFeatures:
    sharing, profile, namespace = labels
    n = int(memory.count[g])
    mq = memory.quantiles[g]
    m = int(compute.count[g])
    compute_quantiles: dict[float, float] | None = None
    c_peak = c_p99 = c_p95 = c_mean = duty = bursts = None  # compute not measured: unknown, never zero
    if m:
        cq = compute.quantiles[g]
        mean = float(compute.total[g] / m)
        std = float(np.sqrt(max(compute.squares[g] / m - mean * mean, 0.0)))
        compute_quantiles = {q: float(cq[_level(q)]) for q in QUANTILE_LEVELS}
        c_peak, c_p99, c_p95 = float(cq[_level(1.0)]), float(cq[_level(0.99)]), float(cq[_level(0.95)])
        c_mean, duty, bursts = mean, float(compute.active[g] / m), burstiness(mean, std)
    return WorkloadFeatures(
        workload=groups.workloads[g],
        gpu_model=groups.models[g],
        namespace=namespace,
        samples=n,
        coverage=float(min(1.0, timing.distinct[g] / timing.expected_steps)),
        memory_peak_bytes=round(mq[_level(1.0)]),
        memory_p99_bytes=round(mq[_level(0.99)]),
        memory_p95_bytes=round(mq[_level(0.95)]),
        memory_mean_bytes=round(memory.total[g] / n),
        compute_peak_gpu_fraction=c_peak,
        compute_p99_gpu_fraction=c_p99,
        compute_p95_gpu_fraction=c_p95,
        compute_mean_gpu_fraction=c_mean,
        duty_cycle=duty,
        burstiness=bursts,
        process_count=processes,
        sharing=Sharing(sharing),
        mig_profile=profile if sharing == Sharing.MIG else "",
        memory_quantiles={q: round(mq[_level(q)]) for q in QUANTILE_LEVELS},
        compute_quantiles=compute_quantiles,
        devices=int(timing.devices[g]),
        span_seconds=float(evidence.span_ms[g]) / 1000,
        memory_peak_first_half_bytes=int(evidence.early_peak[g]),
    )


def _epoch_millis(timestamps: pd.Series) -> np.ndarray:
    if isinstance(timestamps.dtype, pd.DatetimeTZDtype):
        stamps = timestamps.array
        return np.asarray(stamps.asi8 if timestamps.dt.unit == "ms" else stamps.as_unit("ms").asi8)
    if pd.api.types.is_datetime64_dtype(timestamps.dtype):  # naive: DESIGN.md times are UTC
        return np.asarray(timestamps.dt.as_unit("ms").array.asi8)
    return np.rint(timestamps.to_numpy(dtype="float64") * 1000).astype(np.int64)  # epoch seconds


def _millis(moment: datetime) -> int:
    return round(pd.Timestamp(moment).timestamp() * 1000)
