"""Features from server-side summaries: one workload's series (devices) over the window's chunks, put together.

Prometheus answers one summary per series and time chunk (count, sum, sum of squares, min, max, quantiles at
``SUMMARY_LEVELS``, samples above the idle threshold). Counts, sums, minima and maxima combine exactly. Quantiles
do not: where a workload has one series in one chunk they are taken as they are (exactly
``quantile_over_time``, the history file's definition); otherwise the summaries are combined as a mixture — each
summary's distribution is the piecewise-linear CDF through (min, 0), (its quantiles), (max, 1), weighted by its
count — and the mixture's quantile is read back. That is exact at every summary level when the parts have the
same distribution, and otherwise off by at most the gap between two neighbouring summary quantiles of one part.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from advisor.features import burstiness
from advisor.model import QUANTILE_LEVELS, WorkloadFeatures
from slicewise.history_schema import Sharing

# What Prometheus is asked for: the reported levels plus a few more, so that a mixture has shape to work with.
SUMMARY_LEVELS: tuple[float, ...] = tuple(sorted({0.25, 0.5, 0.75, *QUANTILE_LEVELS, 0.95, 0.99}))


@dataclass(frozen=True)
class Summary:
    """One series over one time chunk."""

    count: int
    total: float
    low: float
    high: float
    quantiles: dict[float, float]  # SUMMARY_LEVELS -> value
    squares: float = 0.0
    active: int = 0
    # compute: the idle threshold ``active`` counts above; its CDF point (threshold, 1 − active/count) places the
    # jump from idle to busy exactly, where linear interpolation between quantiles would smear it
    threshold: float | None = None


@dataclass
class WorkloadParts:
    """Everything Prometheus said about one (workload, GPU model), gathered over series and chunks."""

    workload: str
    gpu_model: str
    memory: list[Summary] = field(default_factory=list)
    compute: list[Summary] = field(default_factory=list)
    sharing: Counter[str] = field(default_factory=Counter)  # samples per sharing mode
    profiles: Counter[str] = field(default_factory=Counter)  # MIG samples per profile
    namespaces: Counter[str] = field(default_factory=Counter)  # samples per namespace
    present_steps: int = 0  # steps at which it had any series
    processes: int = 1
    devices: int = 1


def mixture_quantiles(parts: Sequence[Summary], levels: Sequence[float]) -> dict[float, float]:
    """Quantiles of the union of the samples the parts summarise (exact for one part: module docstring)."""
    parts = [p for p in parts if p.count > 0]
    if not parts:
        return dict.fromkeys(levels, float("nan"))
    if len(parts) == 1:
        only = parts[0]
        return {q: (only.high if q >= 1 else only.low if q <= 0 else only.quantiles[q]) for q in levels}
    points = [_cdf_points(p) for p in parts]
    weights = np.array([p.count for p in parts], dtype=float)
    weights /= weights.sum()
    grid = np.unique(np.concatenate([x for x, _, _ in points]))
    right = np.zeros(len(grid))  # F(x): the mixture's CDF at each breakpoint
    left = np.zeros(len(grid))  # F(x−): its limit from the left (differs at a jump: many equal samples)
    for (xs, lo, hi), w in zip(points, weights, strict=True):
        right += w * _cdf(xs, lo, hi, grid, from_left=False)
        left += w * _cdf(xs, lo, hi, grid, from_left=True)
    return {q: _invert(grid, left, right, q) for q in levels}


def _cdf_points(part: Summary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct x of a part's CDF, with the CDF's lowest and highest value at each (a jump where they differ)."""
    levels = sorted(part.quantiles)
    xs = np.array([part.low, *(part.quantiles[q] for q in levels), part.high])
    ps = np.array([0.0, *levels, 1.0])
    xs = np.maximum.accumulate(xs)  # quantiles computed in floating point may dip by an ulp
    if part.threshold is not None and part.low <= part.threshold < part.high:
        order = np.argsort(np.append(xs, part.threshold), kind="stable")
        xs = np.append(xs, part.threshold)[order]
        ps = np.maximum.accumulate(np.append(ps, 1 - part.active / part.count)[order])
    unique, first = np.unique(xs, return_index=True)
    last = np.append(first[1:], len(xs)) - 1
    return unique, ps[first], ps[last]


def _cdf(xs: np.ndarray, lo: np.ndarray, hi: np.ndarray, at: np.ndarray, *, from_left: bool) -> np.ndarray:
    """A part's piecewise-linear CDF at ``at``: value ``hi`` at a breakpoint (``lo`` from the left), linear between."""
    out = np.empty(len(at))
    k = np.searchsorted(xs, at, side="right") - 1  # xs[k] <= at < xs[k+1]
    below, above = k < 0, k >= len(xs) - 1
    inside = ~below & ~above
    ki = k[inside]
    span = xs[ki + 1] - xs[ki]
    out[inside] = hi[ki] + (lo[ki + 1] - hi[ki]) * (at[inside] - xs[ki]) / span
    out[below] = 0.0
    out[above] = 1.0
    if from_left:
        at_point = np.isin(at, xs)
        idx = np.searchsorted(xs, at[at_point])
        out[at_point] = lo[idx]
    return out


def _invert(grid: np.ndarray, left: np.ndarray, right: np.ndarray, q: float) -> float:
    """The smallest x with F(x) ≥ q, linear between breakpoints."""
    if q <= 0:
        return float(grid[0])
    for j, x in enumerate(grid):
        if j > 0 and left[j] >= q - 1e-12:
            lo_x, lo_f = grid[j - 1], right[j - 1]
            rise = left[j] - lo_f
            return float(x if rise <= 0 else lo_x + (q - lo_f) / rise * (x - lo_x))
        if right[j] >= q - 1e-12:
            return float(x)
    return float(grid[-1])


def assemble(parts: WorkloadParts, expected_steps: float) -> WorkloadFeatures:
    """The WorkloadFeatures of one workload from its parts (formulas: ``advisor.features``)."""
    memory = parts.memory
    samples = sum(p.count for p in memory)
    mq = mixture_quantiles(memory, QUANTILE_LEVELS)
    m_extra = mixture_quantiles(memory, (0.95, 0.99))
    compute = [p for p in parts.compute if p.count > 0]
    measured = sum(p.count for p in compute)
    if measured:
        cq: dict[float, float] | None = mixture_quantiles(compute, QUANTILE_LEVELS)
        c_extra = mixture_quantiles(compute, (0.95, 0.99))
        mean = sum(p.total for p in compute) / measured
        std = float(np.sqrt(max(sum(p.squares for p in compute) / measured - mean * mean, 0.0)))
        c_peak: float | None = max(p.high for p in compute)
        c_p99: float | None = c_extra[0.99]
        c_p95: float | None = c_extra[0.95]
        c_mean: float | None = mean
        duty: float | None = sum(p.active for p in compute) / measured
        bursts: float | None = burstiness(mean, std)
    else:
        cq = c_peak = c_p99 = c_p95 = c_mean = duty = bursts = None
    sharing = _most(parts.sharing) or Sharing.EXCLUSIVE.value
    return WorkloadFeatures(
        workload=parts.workload,
        gpu_model=parts.gpu_model,
        namespace=_most(parts.namespaces) or "",
        samples=samples,
        coverage=float(min(1.0, parts.present_steps / max(expected_steps, 1.0))),
        memory_peak_bytes=round(max(p.high for p in memory)),
        memory_p99_bytes=round(m_extra[0.99]),
        memory_p95_bytes=round(m_extra[0.95]),
        memory_mean_bytes=round(sum(p.total for p in memory) / samples),
        compute_peak_gpu_fraction=c_peak,
        compute_p99_gpu_fraction=c_p99,
        compute_p95_gpu_fraction=c_p95,
        compute_mean_gpu_fraction=c_mean,
        duty_cycle=duty,
        burstiness=bursts,
        process_count=parts.processes,
        sharing=Sharing(sharing),
        mig_profile=(_most(parts.profiles) or "") if sharing == Sharing.MIG else "",
        memory_quantiles={q: round(v) for q, v in mq.items()},
        compute_quantiles=cq,
        devices=parts.devices,
    )


def _most(counts: Counter[str]) -> str | None:
    """The most frequent value (ties: alphabetical first), as ``advisor.features`` chooses."""
    if not counts:
        return None
    top = max(counts.values())
    return min(value for value, n in counts.items() if n == top)
