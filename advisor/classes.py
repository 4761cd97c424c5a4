"""Workload classes: group workloads that can share one sharing decision, with scikit-learn.

The pipeline (``classify``), per (workload, GPU model):

1. Features that describe the workload, not where it happens to run (its current MIG slice or GPU is what the
   advisor is about to change): ``coverage`` (always up, a job, a working-day session, a nightly run),
   ``log2(1 + memory p99 in GiB)`` (10 vs 20 GiB matters as much as 40 vs 80), ``duty cycle``, ``burstiness``
   (−1 steady … +1 spiky), ``compute mean / p99`` (flat or peaky demand) and ``√compute p95`` (the square root
   spreads the small fractions where MIG slices are cut: a 1g slice is 1/7 of a GPU).
2. ``StandardScaler``: every feature weighs the same.
3. ``KMeans`` (k-means++, 10 starts, ``random_state=seed``) for k = 2 … ``min(MAX_CLASSES, n // MIN_CLASS_SIZE)``;
   the number of classes is the k with the highest mean silhouette (how much closer each workload is to its own
   class than to the next one; Rousseeuw 1987), scored on a seeded sample of at most 3,000 workloads. When no k
   reaches 0.25 ("no substantial structure", Kaufman & Rousseeuw) the workloads stay one class. Silhouette was
   chosen over a Gaussian mixture's BIC because BIC splits any class whose members spread evenly rather than as a
   bell curve — measured on a 6-archetype fleet, BIC chose 12 classes for 2,000 workloads, silhouette 7.
4. Outliers are flagged, not forced into a class: a workload whose squared distance to its class's centre, in
   units of the class's own spread per feature (variance floored at 0.01), exceeds the χ² quantile 0.999 (it lies
   outside the ellipsoid that holds 99.9 % of a class of that shape), or that is alone in its class. Each outlier
   is decided on its own.
5. Workloads whose compute was not measured (A100/A30 MIG without dcgm-exporter) join the measured class whose
   ellipsoid, on what they do have — coverage, memory p99 and memory mean / peak — holds them at 0.999 (the
   nearest if several); the others go through steps 2–4 on those features alone, as classes labelled "compute not
   measured". Joining a class is grouping, not a measurement: their own ``compute_*`` stay ``None``, so decisions
   can still size them by memory and say so. An unknown never looks like idle.

Deterministic for a seed: k-means's initialisation is the only random step, and the input's order does not matter.
Class ids ``c1``, ``c2`` … are ordered by the class's median memory p99, then median compute p95. Labels are plain
words from the class medians (thresholds below). The envelope (what a class is sized for) is the worst of its
members: the maximum of each member's memory peak, memory p99, compute p95, compute mean, duty cycle and
burstiness (compute figures over the members that have them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from advisor.model import ClassEnvelope, Classification, WorkloadClass, WorkloadFeatures, WorkloadKey

GIB = 1024**3
MAX_CLASSES = 12
MIN_CLASS_SIZE = 3  # k is at most n // 3: a class of fewer workloads says little
OUTLIER_PROBABILITY = 0.999  # outside the ellipsoid holding this share of its class: an outlier
MIN_SILHOUETTE = 0.25  # below this no split is real structure ("weak" in Kaufman & Rousseeuw): one class
SILHOUETTE_SAMPLE = 3000  # silhouette is O(n²): scored on a seeded sample beyond this many workloads
VARIANCE_FLOOR = 1e-2  # on standardised features, for the outlier test

# Plain-word thresholds for labels, on the class medians.
COMPUTE_WORDS = ((0.05, "little compute"), (0.25, "light compute"), (0.6, "moderate compute"), (2.0, "heavy compute"))
MEMORY_WORDS = ((8, "small memory"), (24, "medium memory"), (48, "large memory"), (1e9, "very large memory"))
MOSTLY_IDLE_DUTY = 0.3
STEADY_DUTY, STEADY_BURSTINESS = 0.8, -0.3
BURSTY_BURSTINESS = 0.2
SPIKY_MEMORY = 0.6  # memory mean / peak below this: memory spikes
PART_TIME_COVERAGE = 0.5  # present in fewer than half the window's steps: jobs, sessions, scheduled runs


@dataclass(frozen=True)
class _Fit:
    labels: np.ndarray  # class index per workload (-1: outlier)
    outlier: np.ndarray  # bool per workload
    k: int
    silhouette: float | None  # of the chosen k; None when one class was kept


FEATURE_NAMES = ("coverage", "log2(1 + memory p99 GiB)")
COMPUTE_FEATURE_NAMES = ("duty cycle", "burstiness", "compute mean / p99", "sqrt(compute p95)")
MEMORY_ONLY_FEATURE_NAMES = ("memory mean / peak",)


def feature_matrix(features: Sequence[WorkloadFeatures], with_compute: bool) -> np.ndarray:
    """The unscaled pipeline features (step 1), one row per workload: ``FEATURE_NAMES`` then, with compute,
    ``COMPUTE_FEATURE_NAMES``, else ``MEMORY_ONLY_FEATURE_NAMES``."""
    rows = []
    for f in features:
        row = [f.coverage, np.log2(1 + f.memory_p99_bytes / GIB)]
        if with_compute:
            p99 = f.compute_p99_gpu_fraction or 0.0
            row += [
                f.duty_cycle or 0.0,
                f.burstiness if f.burstiness is not None else -1.0,
                min(1.0, (f.compute_mean_gpu_fraction or 0.0) / p99) if p99 > 0 else 0.0,
                np.sqrt(f.compute_p95_gpu_fraction or 0.0),
            ]
        else:  # without compute, how memory moves is the only sign of behaviour left
            row.append(f.memory_mean_bytes / f.memory_peak_bytes if f.memory_peak_bytes else 1.0)
        rows.append(row)
    columns = len(FEATURE_NAMES) + len(COMPUTE_FEATURE_NAMES if with_compute else MEMORY_ONLY_FEATURE_NAMES)
    return np.array(rows, dtype=np.float64).reshape(len(rows), columns)


def classify(features: list[WorkloadFeatures], seed: int = 0) -> Classification:
    """Classes of workloads that can share one decision, outliers flagged (pipeline in the module docstring)."""
    ordered = sorted(features, key=lambda f: f.key)  # the same classes whatever order the features came in
    measured = [f for f in ordered if f.compute_known]
    unmeasured = [f for f in ordered if not f.compute_known]
    groups: list[list[WorkloadFeatures]] = []
    outliers: list[WorkloadKey] = []
    chosen = []
    joined = 0
    # one thread: at thousands of rows OpenMP's start-up and spinning cost more than they save (10x on 2 cores)
    _load_kmeans()
    with threadpool_limits(limits=1):
        if measured:
            fit = _fit(feature_matrix(measured, with_compute=True), seed)
            chosen.append(_chosen(fit, len(measured), "with measured compute"))
            outliers += [f.key for f, bad in zip(measured, fit.outlier, strict=True) if bad]
            groups += [[f for f, c in zip(measured, fit.labels, strict=True) if c == k] for k in range(fit.k)]
            if unmeasured and fit.k:
                home = _nearest_class(
                    feature_matrix(measured, with_compute=False),
                    fit.labels,
                    fit.k,
                    feature_matrix(unmeasured, with_compute=False),
                )
                for f, k in zip(unmeasured, home, strict=True):
                    if k >= 0:
                        groups[k].append(f)
                joined = int((home >= 0).sum())
                unmeasured = [f for f, k in zip(unmeasured, home, strict=True) if k < 0]
        if unmeasured:
            fit = _fit(feature_matrix(unmeasured, with_compute=False), seed)
            chosen.append(_chosen(fit, len(unmeasured), "left without measured compute"))
            outliers += [f.key for f, bad in zip(unmeasured, fit.outlier, strict=True) if bad]
            groups += [[f for f, c in zip(unmeasured, fit.labels, strict=True) if c == k] for k in range(fit.k)]
    groups = sorted((g for g in groups if g), key=_order)
    method = (
        "k-means (k-means++, 10 starts, seed "
        f"{seed}) on standardised coverage, log2 memory p99, duty cycle, burstiness, compute mean / p99 and "
        "√compute p95, the number of classes by the highest silhouette over "
        f"k=2..{MAX_CLASSES} (one class when none reaches {MIN_SILHOUETTE}); workloads without measured compute "
        f"join the class they match on coverage and memory (size, mean / peak), else are classed apart on those "
        f"({'; '.join(chosen) or 'no workloads'}; {joined} joined by memory and coverage); "
        f"{len(outliers)} outlier(s) outside their class's {OUTLIER_PROBABILITY:.1%} ellipsoid or alone,"
        " decided on their own."
    )
    return Classification(classes=tuple(_named(groups)), outliers=tuple(sorted(outliers)), method=method)


def _load_kmeans() -> None:
    """Import k-means before limiting threads: ``threadpool_limits`` reaches only the libraries loaded when it is
    entered, and scikit-learn brings its own OpenMP runtime, so a process's first classification ran on every core."""
    import sklearn.cluster  # noqa: F401


def _chosen(fit: _Fit, n: int, what: str) -> str:
    score = "" if fit.silhouette is None else f", silhouette {fit.silhouette:.2f}"
    return f"k={fit.k} for {n} workloads {what}{score}"


def _nearest_class(known: np.ndarray, labels: np.ndarray, k: int, unknown: np.ndarray) -> np.ndarray:
    """For workloads without measured compute: the measured class whose ellipsoid on the features they do have
    (coverage and memory: ``feature_matrix(..., with_compute=False)``) holds them at ``OUTLIER_PROBABILITY``, the
    nearest if several; -1 where none does. ``known`` are the measured workloads' same features, ``labels`` their
    classes."""
    from scipy.stats import chi2

    mean, scale = known.mean(axis=0), known.std(axis=0)
    scale[scale == 0] = 1.0
    scaled_known, scaled = (known - mean) / scale, (unknown - mean) / scale
    centres = np.array([scaled_known[labels == c].mean(axis=0) for c in range(k)])
    spreads = np.array([scaled_known[labels == c].var(axis=0) + VARIANCE_FLOOR for c in range(k)])
    distances = (((scaled[:, None, :] - centres[None]) ** 2) / spreads[None]).sum(axis=2)
    best = distances.argmin(axis=1)
    inside = distances[np.arange(len(unknown)), best] <= chi2.ppf(OUTLIER_PROBABILITY, unknown.shape[1])
    return np.where(inside, best, -1)


def _fit(x: np.ndarray, seed: int) -> _Fit:
    from scipy.stats import chi2
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    n, d = x.shape
    scaled = StandardScaler().fit_transform(x)
    labels = np.zeros(n, dtype=int)
    best_score = MIN_SILHOUETTE
    distinct = len(np.unique(scaled, axis=0))
    for k in range(2, min(MAX_CLASSES, n // MIN_CLASS_SIZE, distinct) + 1):
        candidate = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(scaled)
        score = float(silhouette_score(scaled, candidate, sample_size=min(n, SILHOUETTE_SAMPLE), random_state=seed))
        if score > best_score + 1e-9:
            best_score, labels = score, candidate
    # per class, per feature spread (floored: a class whose members agree exactly stays a region, not a point)
    centres = np.array([scaled[labels == c].mean(axis=0) for c in range(labels.max() + 1)])
    spreads = np.array([scaled[labels == c].var(axis=0) + VARIANCE_FLOOR for c in range(labels.max() + 1)])
    distances = (((scaled - centres[labels]) ** 2) / spreads[labels]).sum(axis=1)
    outlier = distances > chi2.ppf(OUTLIER_PROBABILITY, d)
    sizes = np.bincount(labels[~outlier], minlength=labels.max() + 1)
    outlier |= (sizes[labels] <= 1) & (n > 1)  # alone in its class: unlike any other workload
    used = sorted(set(labels[~outlier].tolist()))
    relabel = {old: new for new, old in enumerate(used)}
    return _Fit(
        labels=np.array([-1 if bad else relabel[int(c)] for c, bad in zip(labels, outlier, strict=True)]),
        outlier=outlier,
        k=len(used),
        silhouette=None if best_score == MIN_SILHOUETTE else best_score,
    )


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.median(known)) if known else None


def _order(members: list[WorkloadFeatures]) -> tuple[float, float, str]:
    memory = _median([float(f.memory_p99_bytes) for f in members]) or 0.0
    compute = _median([f.compute_p95_gpu_fraction for f in members])
    return (memory, -1.0 if compute is None else compute, min(f.workload for f in members))


def envelope(members: Sequence[WorkloadFeatures]) -> ClassEnvelope:
    """The worst of the members: what a decision for the whole class must hold."""

    def worst(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return max(known) if known else None

    return ClassEnvelope(
        memory_peak_bytes=max(f.memory_peak_bytes for f in members),
        memory_p99_bytes=max(f.memory_p99_bytes for f in members),
        compute_p95_gpu_fraction=worst([f.compute_p95_gpu_fraction for f in members]),
        compute_mean_gpu_fraction=worst([f.compute_mean_gpu_fraction for f in members]),
        duty_cycle=worst([f.duty_cycle for f in members]),
        burstiness=worst([f.burstiness for f in members]),
    )


def label(members: Sequence[WorkloadFeatures]) -> str:
    """Plain words from the class medians, e.g. "steady heavy compute, very large memory"."""
    memory_gib = (_median([float(f.memory_p99_bytes) for f in members]) or 0.0) / GIB
    memory = next(words for limit, words in MEMORY_WORDS if memory_gib < limit)
    steadiness = _median([f.memory_mean_bytes / f.memory_peak_bytes for f in members if f.memory_peak_bytes])
    if steadiness is not None and steadiness < SPIKY_MEMORY:
        memory += " with spikes"
    if (_median([f.coverage for f in members]) or 0.0) < PART_TIME_COVERAGE:
        memory += ", part-time"
    compute_p95 = _median([f.compute_p95_gpu_fraction for f in members])
    if compute_p95 is None:
        return f"compute not measured, {memory}"
    duty = _median([f.duty_cycle for f in members]) or 0.0
    bursts = _median([f.burstiness for f in members])
    bursts = -1.0 if bursts is None else bursts
    compute = next(words for limit, words in COMPUTE_WORDS if compute_p95 < limit)
    if duty < MOSTLY_IDLE_DUTY:
        busy = "" if compute_p95 < COMPUTE_WORDS[0][0] else " when busy"
        return f"mostly idle, {compute}{busy}, {memory}"
    elif duty >= STEADY_DUTY and bursts <= STEADY_BURSTINESS:
        pattern = "steady"
    elif bursts >= BURSTY_BURSTINESS:
        pattern = "bursty"
    else:
        pattern = "variable"
    return f"{pattern} {compute}, {memory}"


def _named(groups: list[list[WorkloadFeatures]]) -> list[WorkloadClass]:
    out: list[WorkloadClass] = []
    seen: dict[str, int] = {}
    for i, members in enumerate(groups, start=1):
        words = label(members)
        seen[words] = seen.get(words, 0) + 1
        if seen[words] > 1:
            words = f"{words} ({seen[words]})"
        out.append(
            WorkloadClass(
                id=f"c{i}",
                label=words,
                members=tuple(sorted(f.key for f in members)),
                envelope=envelope(members),
            )
        )
    return out
