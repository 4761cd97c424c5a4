"""A small hand-made fleet with every way of sharing a GPU, as a history frame (what read_history returns)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from advisor.model import Window

GIB = 1024**3
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, a multiple of every step used
STEP = 60
STEPS = 360  # six hours
H100, A100 = "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"


def _rows(
    rng,
    workload,
    gpu,
    model,
    *,
    profile="",
    sharing="exclusive",
    memory_gib,
    compute,
    node="node-a",
    namespace=None,
    processes=1,
    present=None,
):
    t = T0 + STEP * np.arange(STEPS)
    keep = np.ones(STEPS, bool) if present is None else present
    n = int(keep.sum())
    memory = (memory_gib * GIB * (1 + 0.05 * rng.random(n))).astype(np.int64)
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(t[keep], unit="s", utc=True),
            "workload": workload,
            "node": node,
            "gpu_uuid": gpu,
            "gpu_model": model,
            "mig_profile": profile,
            "sharing": sharing,
            "memory_used_bytes": memory,
            "sm_active_gpu_fraction": compute(rng, n) if callable(compute) else np.full(n, compute),
            "namespace": namespace or workload.split("/")[0],
            "process_count": processes,
        }
    )


def small_fleet(seed: int = 0, a100_mig_compute: bool = False) -> pd.DataFrame:
    """Twelve workloads: H100 MIG (GPM), A100 MIG (no GPM), exclusive replicas, time-slicing, MPS, gaps, a move."""
    rng = np.random.default_rng(seed)
    steady = lambda lo, hi: lambda r, n: r.uniform(lo, hi, n)  # noqa: E731
    bursty = lambda p, hi: lambda r, n: np.where(r.random(n) < p, r.uniform(0.02, hi, n), 0.0)  # noqa: E731
    gaps = np.ones(STEPS, bool)
    gaps[100:160] = False
    gaps[300:] = False
    first_half = np.arange(STEPS) < STEPS // 2
    a100_mig = steady(0.05, 0.25) if a100_mig_compute else (lambda r, n: np.full(n, np.nan))
    parts = [
        _rows(
            rng,
            "ml/train",
            "GPU-h100-0",
            H100,
            profile="3g.40gb",
            sharing="mig",
            memory_gib=30,
            compute=steady(0.3, 0.43),
            processes=2,
        ),
        _rows(
            rng,
            "nb/alice",
            "GPU-h100-0",
            H100,
            profile="1g.10gb",
            sharing="mig",
            memory_gib=4,
            compute=bursty(0.1, 0.12),
        ),
        _rows(
            rng,
            "nb/bob",
            "GPU-h100-0",
            H100,
            profile="1g.10gb",
            sharing="mig",
            memory_gib=6,
            compute=bursty(0.3, 0.1),
            present=gaps,
        ),
        _rows(
            rng,
            "hpc/sim",
            "GPU-a100-0",
            A100,
            profile="2g.20gb",
            sharing="mig",
            memory_gib=15,
            compute=a100_mig,
            node="node-b",
        ),
        _rows(rng, "web/api", "GPU-a100-1", A100, memory_gib=20, compute=steady(0.2, 0.6), node="node-b"),
        _rows(rng, "web/api", "GPU-a100-2", A100, memory_gib=21, compute=steady(0.25, 0.55), node="node-b"),
        _rows(
            rng, "ts/a", "GPU-a100-3", A100, sharing="timeslice", memory_gib=10, compute=steady(0.1, 0.3), node="node-c"
        ),
        _rows(
            rng, "ts/b", "GPU-a100-3", A100, sharing="timeslice", memory_gib=12, compute=bursty(0.5, 0.4), node="node-c"
        ),
        _rows(rng, "mps/x", "GPU-h100-1", H100, sharing="mps", memory_gib=8, compute=steady(0.1, 0.2), processes=3),
        _rows(rng, "mps/y", "GPU-h100-1", H100, sharing="mps", memory_gib=9, compute=steady(0.05, 0.3)),
        _rows(rng, "solo/big", "GPU-h100-2", H100, memory_gib=70, compute=steady(0.8, 0.95)),
        # moved from an H100 to an A100 half-way: two feature rows, one per model
        _rows(rng, "roam/job", "GPU-h100-3", H100, memory_gib=12, compute=steady(0.1, 0.2), present=first_half),
        _rows(rng, "roam/job", "GPU-a100-4", A100, memory_gib=14, compute=steady(0.1, 0.3), present=~first_half),
    ]
    frame = pd.concat(parts, ignore_index=True)
    for column in ("workload", "node", "gpu_uuid", "gpu_model", "mig_profile", "sharing", "namespace"):
        frame[column] = frame[column].astype("category")
    return frame


def whole_window() -> Window:
    """(one step before the first sample, the last sample]: every sample, STEPS steps."""
    start = datetime.fromtimestamp(T0 - STEP, tz=UTC)
    return Window(start=start, end=start + timedelta(seconds=STEP * STEPS))
