"""A small mixed fleet as a history file (DESIGN.md's columns), for running the real advisor inside the schedule.

Two days at five-minute steps on 3 H100 and 4 A100: model servers on H100 MIG, a two-GPU training job, notebooks
time-sliced on an A100, speech clients under MPS, and a batch job alone on an A100 it barely uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

GIB = 1024**3
H100, A100 = "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"
T0 = 1_772_323_200  # 2026-03-01T00:00:00Z
STEP = 300
STEPS = 576  # two days


def _rows(
    rng: np.random.Generator,
    workload: str,
    gpu: str,
    model: str,
    memory_gib: float,
    compute: np.ndarray,
    sharing: str = "exclusive",
    profile: str = "",
    node: str = "gpu-node-1",
    t0: int = T0,
) -> pd.DataFrame:
    n = STEPS
    memory = (memory_gib * GIB * (0.9 + 0.1 * rng.random(n))).astype(np.int64)
    return pd.DataFrame(
        {
            "timestamp": t0 + STEP * np.arange(n),
            "workload": workload,
            "node": node,
            "gpu_uuid": gpu,
            "gpu_model": model,
            "mig_profile": profile,
            "sharing": sharing,
            "memory_used_bytes": memory,
            "sm_active_gpu_fraction": np.clip(compute, 0, 1),
        }
    )


def write_fleet(path: Path, seed: int = 0, extra_notebook: bool = False, t0: int = T0) -> Path:
    """Write the fleet as CSV from ``t0`` (epoch seconds); ``extra_notebook`` adds one more notebook (a second week
    that differs)."""
    rng = np.random.default_rng(seed)
    day = np.sin(np.arange(STEPS) / (STEPS / 2) * 2 * np.pi) * 0.5 + 0.5  # diurnal load

    def bursty(p: float, hi: float) -> np.ndarray:
        return np.where(rng.random(STEPS) < p, rng.uniform(0.05, hi, STEPS), 0.0)

    frames = [
        _rows(rng, "serving/chat-api", "GPU-h100-0", H100, 6.5, 0.03 + 0.06 * day, "mig", "2g.20gb", t0=t0),
        _rows(rng, "serving/embeddings", "GPU-h100-0", H100, 4.2, 0.02 + 0.04 * day, "mig", "2g.20gb", t0=t0),
        _rows(rng, "serving/rerank", "GPU-h100-0", H100, 3.8, 0.02 + 0.03 * day, "mig", "1g.20gb", t0=t0),
        _rows(rng, "train/llm-ft", "GPU-h100-1", H100, 71.0, rng.uniform(0.85, 0.97, STEPS), t0=t0),
        _rows(rng, "train/llm-ft", "GPU-h100-2", H100, 70.5, rng.uniform(0.85, 0.97, STEPS), t0=t0),
        _rows(
            rng, "research/nb-alice", "GPU-a100-0", A100, 9.0, bursty(0.06, 0.5), "timeslice", node="gpu-node-2", t0=t0
        ),
        _rows(
            rng, "research/nb-bob", "GPU-a100-0", A100, 7.5, bursty(0.05, 0.4), "timeslice", node="gpu-node-2", t0=t0
        ),
        _rows(rng, "speech/asr", "GPU-a100-1", A100, 11.0, 0.12 + 0.06 * day, "mps", node="gpu-node-2", t0=t0),
        _rows(rng, "speech/tts", "GPU-a100-1", A100, 9.5, 0.10 + 0.05 * day, "mps", node="gpu-node-2", t0=t0),
        _rows(
            rng, "batch/sd-render", "GPU-a100-2", A100, 22.0, 0.2 + 0.1 * rng.random(STEPS), node="gpu-node-2", t0=t0
        ),
        _rows(rng, "batch/ocr", "GPU-a100-3", A100, 12.0, 0.1 + 0.1 * rng.random(STEPS), node="gpu-node-2", t0=t0),
    ]
    if extra_notebook:
        frames.append(
            _rows(
                rng,
                "research/nb-chen",
                "GPU-a100-0",
                A100,
                8.0,
                bursty(0.05, 0.4),
                "timeslice",
                node="gpu-node-2",
                t0=t0,
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)
    return path
