"""One chunk's per-workload series, reduced client-side to what ``merge.assemble`` needs per (workload, GPU model).

The range queries give, per chunk, the per-sample series of ``promql.py`` at every step: memory and compute per
workload on each device, each MIG device's activity (scaled to the whole GPU by the catalogue's SMs and split
evenly among the workloads with a process on the device at that step: the recording rules' attribution), the
GPUs running an MPS server, and labels (GPU model, MIG profile). From them, with the history file's definitions
(``advisor.features``):

- samples, sums, squares, minima, maxima, samples above the idle threshold: added up exactly over chunks;
- sharing per sample: MIG (a ``gi``), else MPS (the GPU's MPS server was up at that step), else time-slicing (two
  or more workloads on the whole GPU at that step), else exclusive; namespaces and MIG profiles per sample;
- devices (most series of the workload at one step) and present steps (steps with any of its series);
- quantiles: the samples themselves are kept (``Pending``) until ``exact_samples`` are held; then, and at the end,
  each workload's samples become one ``Summary`` with quantiles every 1 %. A workload whose samples were never
  folded before the end gets exact quantiles (the file's); one folded more than once gets the mixture of
  ``merge.py``, off by at most the gap between two neighbouring percentiles of one part.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cache

import numpy as np

from advisor.features import IDLE_GPU_FRACTION, bin_values
from advisor.history import dcgm, timeline
from advisor.history.matrix import Series
from advisor.history.merge import SUMMARY_LEVELS, Summary, WorkloadParts
from advisor.history.timeline import Timeline
from advisor.model import QUANTILE_LEVELS
from slicewise.history_schema import Sharing

DEVICE_KEY = ("workload", "namespace", "gpu_uuid", "gi", "ci")
LEVELS: tuple[float, ...] = tuple(sorted({*SUMMARY_LEVELS, *QUANTILE_LEVELS, *(k / 100 for k in range(1, 100))}))

Key = tuple[str, ...]  # (workload, namespace, gpu_uuid, gi, ci): one workload on one device
Group = tuple[str, str]  # (workload, GPU model)


def device_key(labels: dict[str, str]) -> Key:
    return tuple(labels.get(name, "") for name in DEVICE_KEY)


@dataclass(frozen=True)
class Steps:
    """The evaluation times of one chunk's range queries: ``first_ms + k·step_ms`` for ``k < count``."""

    first_ms: int
    step_ms: int
    count: int

    def index(self, millis: np.ndarray) -> np.ndarray:
        return (millis - self.first_ms) // self.step_ms


@dataclass
class ChunkData:
    """What the queries of one chunk answered."""

    memory: list[Series]
    compute: list[Series]  # per workload and device, complete (whole GPUs, dcgm-only, recorded)
    mig_activity: list[Series] = field(default_factory=list)  # per MIG device (GPM) or GPU instance (dcgm)
    mps_gpus: list[Series] = field(default_factory=list)  # per GPU: present where its MPS server is up
    processes: dict[Key, int] = field(default_factory=dict)
    model_of: dict[str, str] = field(default_factory=dict)  # gpu_uuid -> model
    profile_of: dict[Key, str] = field(default_factory=dict)  # (gpu_uuid, gi, ci) -> profile
    # binned steps (a step longer than the scrape interval): each bin's largest compute, beside ``compute`` (its
    # mean), for the rows' compute quantiles; None where each step is one sample
    compute_peak: list[Series] | None = None
    mig_activity_peak: list[Series] = field(default_factory=list)


@dataclass
class Pending:
    """Samples per (workload, GPU model) not yet folded into summaries."""

    memory: dict[Group, list[np.ndarray]] = field(default_factory=dict)
    compute: dict[Group, list[np.ndarray]] = field(default_factory=dict)
    held: int = 0


@dataclass
class Reducer:
    """Feeds chunks into ``parts``; ``finish()`` folds what is left. Exact quantiles up to ``exact_samples``."""

    exact_samples: int = 20_000_000
    bin_samples: int = 1  # samples each step stands for, where steps read bins (compute_peak)
    timeline: Timeline | None = None  # where given, every sample is kept as a history row too (timeline.py)
    parts: dict[Group, WorkloadParts] = field(default_factory=dict)
    pending: Pending = field(default_factory=Pending)
    folds: int = 0  # times the samples were folded before the end (0: every quantile exact)

    def add(self, steps: Steps, data: ChunkData) -> None:
        def model(labels: dict[str, str]) -> str:
            return labels.get("model") or data.model_of.get(labels.get("gpu_uuid", ""), "")

        memory = [(device_key(s.labels), s.labels, steps.index(s.millis), s.values) for s in data.memory]
        crowd: dict[str, np.ndarray] = {}  # per GPU: workloads on the whole GPU at each step
        on_device: dict[Key, np.ndarray] = {}  # per MIG device: workloads at each step
        for key, _, idx, _ in memory:
            if key[3]:
                on_device.setdefault(key[2:], np.zeros(steps.count, np.int32))[idx] += 1
            else:
                crowd.setdefault(key[2], np.zeros(steps.count, np.int32))[idx] += 1
        mps: dict[str, np.ndarray] = {}
        for s in data.mps_gpus:
            mps.setdefault(s.labels.get("gpu_uuid", ""), np.zeros(steps.count, bool))[steps.index(s.millis)] = True

        seen: dict[Group, np.ndarray] = {}  # series of the group at each step
        for key, labels, idx, values in memory:
            group = (key[0], model(labels))
            if not key[0] or not group[1]:
                continue
            part = self.parts.setdefault(group, WorkloadParts(*group))
            seen.setdefault(group, np.zeros(steps.count, np.int32))[idx] += 1
            self._hold(self.pending.memory, group, values)
            part.namespaces[key[1]] += len(idx)
            if key[3]:
                part.sharing[Sharing.MIG.value] += len(idx)
                part.profiles[labels.get("profile") or data.profile_of.get(key[2:], "")] += len(idx)
            else:
                on_mps = mps[key[2]][idx] if key[2] in mps else np.zeros(len(idx), bool)
                sliced = (crowd[key[2]][idx] >= 2) & ~on_mps
                part.sharing[Sharing.MPS.value] += int(on_mps.sum())
                part.sharing[Sharing.TIMESLICE.value] += int(sliced.sum())
                part.sharing[Sharing.EXCLUSIVE.value] += len(idx) - int(on_mps.sum()) - int(sliced.sum())
            part.processes = max(part.processes, data.processes.get(key, 1))
        for group, count in seen.items():
            self.parts[group].present_steps += int(np.count_nonzero(count))
            self.parts[group].devices = max(self.parts[group].devices, int(count.max()))

        dense: dict[Key, np.ndarray] = {}  # per workload and device: compute at each step (for the timeline)
        for labels, idx, values in self._compute(steps, data, memory, on_device):
            group = (labels.get("workload", ""), model(labels))
            if group in self.parts and data.compute_peak is None:
                self._hold(self.pending.compute, group, values[np.isfinite(values)])
            if self.timeline is not None or data.compute_peak is not None:
                dense.setdefault(device_key(labels), np.full(steps.count, np.nan))[idx] = values
        peaks: dict[Key, np.ndarray] | None = None  # the same for each bin's largest compute (binned steps)
        if data.compute_peak is not None:
            peaks = {}
            binned = replace(data, compute=data.compute_peak, mig_activity=data.mig_activity_peak)
            for labels, idx, values in self._compute(steps, binned, memory, on_device):
                key = device_key(labels)
                peaks.setdefault(key, np.full(steps.count, np.nan))[idx] = values
                group = (labels.get("workload", ""), model(labels))
                if group in self.parts and key in dense:  # the compute samples: each bin spread as features does
                    mean = dense[key][idx]
                    both = np.isfinite(mean) & np.isfinite(values)
                    spread = bin_values(mean[both], values[both], np.full(int(both.sum()), self.bin_samples))
                    self._hold(self.pending.compute, group, spread)
        if self.timeline is not None:
            self._keep(steps, data, memory, dense, peaks, crowd, mps, model)
        if self.pending.held > self.exact_samples:
            self._fold()
            self.folds += 1

    @staticmethod
    def _compute(
        steps: Steps,
        data: ChunkData,
        memory: list[tuple[Key, dict[str, str], np.ndarray, np.ndarray]],
        on_device: dict[Key, np.ndarray],
    ) -> Iterable[tuple[dict[str, str], np.ndarray, np.ndarray]]:
        """Compute series per workload and device: as answered, plus MIG devices' activity split evenly."""
        measured: set[Key] = set()  # workload-devices the compute query answered (e.g. the rules' series)
        for s in data.compute:
            measured.add(device_key(s.labels))
            yield s.labels, steps.index(s.millis), s.values
        gpm: dict[Key, np.ndarray] = {}  # (uuid, gi, ci) -> activity at each step
        per_gi: dict[Key, np.ndarray] = {}  # (uuid, gi) -> dcgm-exporter's activity at each step
        for s in data.mig_activity:
            dense = np.full(steps.count, np.nan)
            dense[steps.index(s.millis)] = s.values
            labels = s.labels
            if "ci" in labels:
                gpm[(labels.get("gpu_uuid", ""), labels.get("gi", ""), labels["ci"])] = dense
            else:
                per_gi[(labels.get("gpu_uuid", ""), labels.get("gi", ""))] = dense
        if not (gpm or per_gi):
            return
        scale = sm_fractions()
        for key, labels, idx, _ in memory:
            device = key[2:]
            activity = gpm.get(device)
            dcgm_activity = per_gi.get(device[:2])
            if not key[3] or key in measured or (activity is None and dcgm_activity is None):
                continue
            if activity is None:
                activity = dcgm_activity
            elif dcgm_activity is not None:  # GPM where the device has it at that step, else dcgm-exporter's
                activity = np.where(np.isnan(activity), dcgm_activity, activity)
            assert activity is not None
            model = labels.get("model") or data.model_of.get(key[2], "")
            fraction = scale.get((model, labels.get("profile") or data.profile_of.get(device, "")))
            if fraction is None:
                continue  # a model or profile the catalogue does not know: compute unknown, never a guess
            share = activity[idx] * fraction / on_device[device][idx]
            known = ~np.isnan(share)
            yield labels, idx[known], share[known]

    def _keep(
        self,
        steps: Steps,
        data: ChunkData,
        memory: list[tuple[Key, dict[str, str], np.ndarray, np.ndarray]],
        dense: dict[Key, np.ndarray],
        peaks: dict[Key, np.ndarray] | None,
        crowd: dict[str, np.ndarray],
        mps: dict[str, np.ndarray],
        model: Callable[[dict[str, str]], str],
    ) -> None:
        """Every memory sample as a history row, with its compute at the same step and its sharing decided as in
        ``add`` (MIG, else MPS, else time-slicing with two or more on the GPU, else exclusive)."""
        assert self.timeline is not None
        for key, labels, idx, values in memory:
            if not key[0] or not model(labels):
                continue
            compute = dense[key][idx] if key in dense else np.full(len(idx), np.nan)
            peak = None if peaks is None else peaks[key][idx] if key in peaks else np.full(len(idx), np.nan)
            if key[3]:
                sharing = np.full(len(idx), timeline.MIG, dtype=np.int8)
                profile = labels.get("profile") or data.profile_of.get(key[2:], "")
            else:
                on_mps = mps[key[2]][idx] if key[2] in mps else np.zeros(len(idx), bool)
                sliced = crowd[key[2]][idx] >= 2
                sharing = np.where(on_mps, timeline.MPS, np.where(sliced, timeline.TIMESLICE, timeline.EXCLUSIVE))
                profile = ""
            millis = steps.first_ms + idx.astype(np.int64) * steps.step_ms
            self.timeline.add(
                millis, values, compute, labels, model(labels), profile, sharing.astype(np.int8), compute_peak=peak
            )

    def _hold(self, into: dict[Group, list[np.ndarray]], group: Group, values: np.ndarray) -> None:
        if len(values):
            into.setdefault(group, []).append(values)
            self.pending.held += len(values)

    def _fold(self) -> None:
        for group, arrays in self.pending.memory.items():
            self.parts[group].memory.append(summary(np.concatenate(arrays), threshold=None))
        for group, arrays in self.pending.compute.items():
            self.parts[group].compute.append(summary(np.concatenate(arrays), threshold=IDLE_GPU_FRACTION))
        self.pending = Pending()

    def finish(self) -> list[WorkloadParts]:
        self._fold()
        return [p for p in self.parts.values() if p.memory]


def sum_by_device(series: list[Series]) -> tuple[list[Series], dict[Key, int]]:
    """Process series added up per workload and device (``sum without(pid, process, pod, container)``), done here:
    Prometheus 2.42 spends about 3 µs a sample on that aggregation in a range query, 10x reading the raw series.
    Also the most process series present at one step per workload and device (its ``process_count``)."""
    groups: dict[Key, list[Series]] = {}
    for s in series:
        groups.setdefault(device_key(s.labels), []).append(s)
    out, processes = [], {}
    for key, members in groups.items():
        labels = {name: value for name, value in zip(DEVICE_KEY, key, strict=True) if value}
        if len(members) == 1:
            out.append(Series(labels, members[0].millis, members[0].values))
            processes[key] = 1
            continue
        millis = np.concatenate([m.millis for m in members])
        times, where = np.unique(millis, return_inverse=True)
        total = np.bincount(where, weights=np.concatenate([m.values for m in members]))
        out.append(Series(labels, times, total))
        processes[key] = int(np.bincount(where).max())
    return out, processes


def max_by(series: list[Series], names: tuple[str, ...]) -> list[Series]:
    """``max by (names)`` of series, here (one series per key in practice: a device's activity)."""
    groups: dict[tuple[str, ...], list[Series]] = {}
    for s in series:
        groups.setdefault(tuple(s.labels.get(n, "") for n in names), []).append(s)
    out = []
    for key, members in groups.items():
        labels = {n: v for n, v in zip(names, key, strict=True) if v}
        if len(members) == 1:
            out.append(Series(labels, members[0].millis, members[0].values))
            continue
        millis = np.concatenate([m.millis for m in members])
        times, where = np.unique(millis, return_inverse=True)
        most = np.full(len(times), -np.inf)
        np.maximum.at(most, where, np.concatenate([m.values for m in members]))
        out.append(Series(labels, times, most))
    return out


@cache
def sm_fractions() -> dict[tuple[str, str], float]:
    """(NVML model name, MIG profile) -> the profile's SMs over the GPU's, from the catalogue."""
    return {(model, profile): fraction for model, profile, fraction in dcgm.mig_fractions()}


def summary(values: np.ndarray, threshold: float | None) -> Summary:
    """count, sum, min, max, quantiles every 1 % (numpy's linear rule = quantile_over_time's), squares, active."""
    quantiles = np.quantile(values, LEVELS)
    return Summary(
        count=len(values),
        total=float(values.sum()),
        low=float(values.min()),
        high=float(values.max()),
        quantiles=dict(zip(LEVELS, (float(q) for q in quantiles), strict=True)),
        squares=float(np.square(values).sum()) if threshold is not None else 0.0,
        active=int(np.count_nonzero(values > threshold)) if threshold is not None else 0,
        threshold=threshold,
    )
