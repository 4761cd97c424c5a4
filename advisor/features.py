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

Quantiles are computed for every group at once from one sort of a composite key (group << bits | value), not a
Python loop per workload: 40 M rows take about a second per sorted column. Compute fractions are sorted as integers
of 2⁻ᵇ with b = 62 − (bits of the group count), at most 52 and at least 40: for 2,000 groups b = 51, exact to
4·10⁻¹⁶; at worst (4 M groups) exact to 5·10⁻¹³ — far below any measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from advisor.model import QUANTILE_LEVELS, Window, WorkloadFeatures
from slicewise.history_schema import Sharing
from slicewise.progress import progress

IDLE_GPU_FRACTION = 0.01  # compute demand at or below this share of a whole GPU counts as idle (duty cycle)
_FRACTION_BITS = 40  # compute fractions are sorted as integers of 2**-40 at least (more when there are few groups)
_STAGES = 5
_SLICE_ROWS = 4_000_000  # rows per group-aligned slice in the timing pass


@dataclass(frozen=True)
class _Groups:
    """Rows grouped by (workload, GPU model): ``ids`` per row, the names per group, rows per group."""

    ids: np.ndarray  # int32 per row, 0..count-1
    workloads: list[str]
    models: list[str]
    rows: np.ndarray  # rows per group

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
        compute = _compute_stats(column("sm_active_gpu_fraction").to_numpy(dtype="float64"), groups)
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
                g, groups, memory, compute, timing, evidence, sharing[g], profile[g], namespace[g], int(processes[g])
            )
            for g in range(groups.count)
        ]
        bar.advance()
    return sorted(features, key=lambda f: (f.workload, f.gpu_model))


# ---------------------------------------------------------------------------------------------------- grouping


def _codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy(), [str(c) for c in values.cat.categories]
    codes, uniques = pd.factorize(values)
    return codes, [str(u) for u in uniques]


def _group(workloads: pd.Series, models: pd.Series) -> _Groups:
    w_codes, w_names = _codes(workloads)
    m_codes, m_names = _codes(models)
    combined = w_codes.astype(np.int64)
    combined *= len(m_names)
    combined += m_codes
    counts = np.bincount(combined, minlength=len(w_names) * len(m_names))
    present = np.flatnonzero(counts)
    dense = np.full(len(counts), -1, dtype=np.int32)
    dense[present] = np.arange(len(present))
    return _Groups(
        ids=dense[combined],
        workloads=[w_names[i // len(m_names)] for i in present],
        models=[m_names[i % len(m_names)] for i in present],
        rows=counts[present],
    )


def _mode(values: pd.Series, groups: _Groups, ignore: str | None = None) -> list[str]:
    """The most frequent value per group (ties: alphabetical first); ``ignore`` is never chosen if another exists."""
    codes, names = _codes(values)
    cells = groups.ids.astype(np.int64)
    cells *= len(names)
    cells += codes
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


def _level(q: float) -> int:
    return int(np.flatnonzero(np.isclose(_LEVELS, q))[0])


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


def _group_sorted_keys(ids: np.ndarray, values: np.ndarray, n_groups: int) -> tuple[np.ndarray, int]:
    """Composite keys ``group << bits | value`` sorted (in place, one array): groups in id order, values ascending.

    ``values`` are non-negative integers; ``keys & ((1 << bits) - 1)`` gives them back.
    """
    value_bits = max(int(values.max()).bit_length(), 1) if len(values) else 1
    group_bits = max(int(n_groups - 1).bit_length(), 1)
    if value_bits + group_bits > 63:
        raise ValueError(f"values of {value_bits} bits do not fit beside {n_groups} groups in 64 bits")
    keys = ids.astype(np.int64)
    keys <<= value_bits
    keys |= values
    keys.sort()
    return keys, value_bits


def _sorted_by_group(ids: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Non-negative integer ``values`` sorted within groups, groups in id order, via one composite-key sort."""
    keys, bits = _group_sorted_keys(ids, values, n_groups)
    keys &= (1 << bits) - 1
    return keys


def _memory_stats(memory: np.ndarray, groups: _Groups) -> _Stats:
    counts = np.bincount(groups.ids, minlength=groups.count)
    ordered = _sorted_by_group(groups.ids, memory, groups.count)
    as_float = memory.astype(np.float64)
    return _Stats(
        count=counts,
        total=np.bincount(groups.ids, weights=as_float, minlength=groups.count),
        squares=np.zeros(groups.count),
        active=np.zeros(groups.count),
        quantiles=group_quantiles(ordered, counts, _LEVELS),
    )


def _compute_stats(fraction: np.ndarray, groups: _Groups) -> _Stats:
    measured = ~np.isnan(fraction)
    ids, x = (groups.ids, fraction) if measured.all() else (groups.ids[measured], fraction[measured])
    del measured
    counts = np.bincount(ids, minlength=groups.count)
    # as many bits as the group ids leave free in an int64 key: 51 for 2,000 groups (exact to 4e-16), 40 at worst
    bits = max(_FRACTION_BITS, min(52, 62 - max(int(groups.count - 1).bit_length(), 1)))
    scale = float(1 << bits)
    scaled = x * scale
    np.rint(scaled, out=scaled)
    as_int = scaled.astype(np.int64)
    del scaled
    ordered = _sorted_by_group(ids, as_int, groups.count)
    del as_int
    quantiles = group_quantiles(ordered, counts, _LEVELS) / scale
    del ordered
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
    keys, bits = _group_sorted_keys(groups.ids, millis - first, groups.count)  # (group, time) sorted
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
        values, counts = np.unique(gaps[gaps > 0], return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
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
    early = millis <= first[groups.ids] + span[groups.ids] // 2
    early_peak = np.zeros(groups.count, dtype=np.int64)
    np.maximum.at(early_peak, groups.ids[early], memory[early])
    return _Evidence(span_ms=span, early_peak=early_peak)


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
    sharing: str,
    profile: str,
    namespace: str,
    processes: int,
) -> WorkloadFeatures:
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
