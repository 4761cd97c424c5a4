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

from slicewise.history_schema import Sharing

MAX_ROWS = 20_000_000


@dataclass
class Timeline:
    """Rows collected chunk by chunk; ``frame()`` returns them as ``read_history`` would, or None past the cap."""

    max_rows: int = MAX_ROWS
    rows: int = 0
    overflow: bool = False
    _parts: list[dict[str, np.ndarray]] = field(default_factory=list)

    def add(
        self,
        millis: np.ndarray,
        memory: np.ndarray,
        compute: np.ndarray,
        labels: dict[str, str],
        model: str,
        profile: str,
        sharing: np.ndarray,
    ) -> None:
        """One workload's samples on one device: times (epoch ms), memory, compute (NaN: not measured), and the
        sharing code per sample."""
        if self.overflow or not len(millis):
            return
        if self.rows + len(millis) > self.max_rows:
            self.overflow, self._parts = True, []
            return
        self.rows += len(millis)
        n = len(millis)
        self._parts.append(
            {
                "timestamp": millis.astype(np.int64),
                "memory_used_bytes": np.maximum(memory, 0).astype(np.int64),
                "sm_active_gpu_fraction": np.clip(compute.astype(np.float64), 0.0, 1.0),
                "sharing": sharing,
                "workload": np.full(n, labels.get("workload", ""), dtype=object),
                "namespace": np.full(n, labels.get("namespace", ""), dtype=object),
                "node": np.full(n, labels.get("node") or labels.get("instance", ""), dtype=object),
                "gpu_uuid": np.full(n, labels.get("gpu_uuid", ""), dtype=object),
                "gpu_model": np.full(n, model, dtype=object),
                "mig_profile": np.full(n, profile, dtype=object),
            }
        )

    def frame(self) -> pd.DataFrame | None:
        if self.overflow or not self._parts:
            return None
        columns = {name: np.concatenate([p[name] for p in self._parts]) for name in self._parts[0]}
        self._parts = []
        frame = pd.DataFrame(columns)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True).astype("datetime64[ms, UTC]")
        codes = {i: s.value for i, s in enumerate(SHARING_CODES)}
        frame["sharing"] = frame["sharing"].map(codes)
        for name in ("workload", "namespace", "node", "gpu_uuid", "gpu_model", "mig_profile", "sharing"):
            frame[name] = frame[name].astype("category")
        frame["process_count"] = 1
        return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


# the sharing of each sample as a small integer while collecting (reduce.py decides it per step)
SHARING_CODES: tuple[Sharing, ...] = (Sharing.EXCLUSIVE, Sharing.MIG, Sharing.MPS, Sharing.TIMESLICE)
EXCLUSIVE, MIG, MPS, TIMESLICE = range(4)
