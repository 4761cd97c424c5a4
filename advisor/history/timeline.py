"""The per-sample rows behind Prometheus's answers, as a history frame: who ran where, when, using what.

The reducer (reduce.py) turns each chunk's range queries into per-workload features. The plan and the decisions
also need *when* things happened — who was present at once (plan/presence.py), who was busy at the same step
(decide/contention.py), who took turns on MIG slices (decide/shared_slices.py), the nodes as they run (the
rollout) — and the backtest needs the samples themselves. A history file has them; from Prometheus this module
keeps them, chunk by chunk, in the history file's columns (DESIGN.md), so ``pipeline.from_history`` gives a
Prometheus source the same evidence as a file, and the same answers.

It holds every sample, so it is kept only up to ``max_rows`` (20 M rows: about 300 GPUs x 14 days at 60 s, a few
GiB at most); past that it stops, and the advisor falls back to features alone (pools sized as if every workload
were always present, contention estimated from duty cycles) and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from slicewise.history_schema import BIN_SAMPLES_COLUMN, PEAK_COLUMN, Sharing

MAX_ROWS = 20_000_000


LABELS = ("workload", "namespace", "node", "gpu_uuid", "gpu_model", "mig_profile")


@dataclass
class Timeline:
    """Rows collected chunk by chunk; ``frame()`` returns them as ``read_history`` would, or None past the cap.

    Each ``add`` is one workload on one device, so its labels are one tuple for all its samples: only the numbers
    are held per sample, and the label columns are built as categoricals at the end (codes, no strings per row)."""

    max_rows: int = MAX_ROWS
    bin_samples: int = 1  # samples each row stands for, where rows are bins (a coarse step): DESIGN.md's bin_samples
    rows: int = 0
    overflow: bool = False
    _numbers: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    _labels: dict[tuple[str, ...], int] = field(default_factory=dict)  # label tuple -> its index
    _which: list[tuple[int, int]] = field(default_factory=list)  # per add: (label index, samples)
    _peaks: list[np.ndarray] = field(default_factory=list)  # per add, where rows are bins: the bin's largest compute

    def add(
        self,
        millis: np.ndarray,
        memory: np.ndarray,
        compute: np.ndarray,
        labels: dict[str, str],
        model: str,
        profile: str,
        sharing: np.ndarray,
        compute_peak: np.ndarray | None = None,
    ) -> None:
        """One workload's samples on one device: times (epoch ms), memory, compute (NaN: not measured), the
        sharing code per sample, and where each row stands for a bin of samples, the bin's largest compute."""
        if self.overflow or not len(millis):
            return
        if self.rows + len(millis) > self.max_rows:
            self.overflow = True
            self._numbers, self._which, self._labels, self._peaks = [], [], {}, []
            return
        self.rows += len(millis)
        key = (
            labels.get("workload", ""),
            labels.get("namespace", ""),
            labels.get("node") or labels.get("instance", ""),
            labels.get("gpu_uuid", ""),
            model,
            profile,
        )
        index = self._labels.setdefault(key, len(self._labels))
        self._which.append((index, len(millis)))
        self._numbers.append(
            (
                millis.astype(np.int64),
                np.maximum(memory, 0).astype(np.int64),
                np.clip(compute.astype(np.float64), 0.0, 1.0),
                sharing.astype(np.int8),
            )
        )
        if compute_peak is not None:
            self._peaks.append(np.clip(compute_peak.astype(np.float64), 0.0, 1.0))

    def frame(self) -> pd.DataFrame | None:
        if self.overflow or not self._numbers:
            return None
        millis, memory, compute, sharing = (np.concatenate(c) for c in zip(*self._numbers, strict=True))
        self._numbers = []
        which = np.repeat(
            np.array([i for i, _ in self._which], dtype=np.int64), [n for _, n in self._which]
        )  # per row: its label tuple
        tuples = list(self._labels)
        frame = pd.DataFrame(
            {
                "timestamp": pd.to_datetime(millis, unit="ms", utc=True).astype("datetime64[ms, UTC]"),
                "memory_used_bytes": memory,
                "sm_active_gpu_fraction": compute,
            }
        )
        if self._peaks:  # every add had one (a source reads all its chunks binned or none)
            frame[PEAK_COLUMN] = np.concatenate(self._peaks)
            frame[BIN_SAMPLES_COLUMN] = np.full(len(frame), self.bin_samples, dtype=np.int64)
            self._peaks = []
        for position, name in enumerate(LABELS):
            values = [t[position] for t in tuples]
            categories = sorted(set(values))
            code_of = {v: c for c, v in enumerate(categories)}
            codes = np.array([code_of[v] for v in values], dtype=np.int32)[which]
            frame[name] = pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories))
        kinds = pd.CategoricalDtype([s.value for s in SHARING_CODES])
        frame["sharing"] = pd.Categorical.from_codes(sharing.astype(np.int32), dtype=kinds)
        frame["process_count"] = 1
        return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


# the sharing of each sample as a small integer while collecting (reduce.py decides it per step)
SHARING_CODES: tuple[Sharing, ...] = (Sharing.EXCLUSIVE, Sharing.MIG, Sharing.MPS, Sharing.TIMESLICE)
EXCLUSIVE, MIG, MPS, TIMESLICE = range(4)
