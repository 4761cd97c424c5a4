"""Histories the backtest tests replay: a small simulated fleet (with its truth), and a hand-built one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

GIB = 1024**3
A100 = "NVIDIA A100-SXM4-80GB"
STEP_S = 300
END = 1_767_312_000  # epoch seconds, a sample time


def simulated(path: Path) -> Path:
    """Two days of the mixed fleet on 8 GPUs at 5-minute steps (about 13,000 rows), with its .truth.csv."""
    from exporter.simulate.history import write_history

    write_history(path, scenario="mixed", days=2, gpus=8, seed=3, step_s=STEP_S)
    return path


def hand_built(days: float = 2.0, seed: int = 5) -> pd.DataFrame:
    """Each workload alone on an A100 80GB today, sampled every 5 minutes: 3 model servers (steady ~14 GiB, ~0.18
    of a GPU), 4 notebooks (5 GiB, mostly idle with bursts), 1 trainer (60 GiB, ~0.95). Columns as read_history
    returns them."""
    rng = np.random.default_rng(seed)
    steps = int(days * 86400 // STEP_S)
    times = END - STEP_S * (steps - 1 - np.arange(steps))
    frames = []

    def workload(name: str, memory_gib: float, sm: np.ndarray, i: int) -> None:
        memory = (memory_gib + rng.normal(0, 0.2, steps)).clip(0.5) * GIB
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": pd.to_datetime(times, unit="s", utc=True),
                    "workload": name,
                    "node": "node-0",
                    "gpu_uuid": f"GPU-{i:08d}-0000-0000-0000-000000000000",
                    "gpu_model": A100,
                    "mig_profile": "",
                    "sharing": "exclusive",
                    "memory_used_bytes": memory.astype(np.int64),
                    "sm_active_gpu_fraction": sm.clip(0, 1).round(4),
                }
            )
        )

    for k in range(3):
        workload(f"serving/ranker-{k}", 14 + k, 0.16 + rng.normal(0, 0.015, steps), k)
    for k in range(4):
        bursts = rng.random(steps) < 0.1
        workload(f"research/notebook-{k}", 5 + 0.3 * k, np.where(bursts, rng.uniform(0.3, 0.6, steps), 0.0), 3 + k)
    workload("train/llm-0", 60, 0.95 + rng.normal(0, 0.02, steps), 7)
    history = pd.concat(frames).sort_values(["timestamp", "workload"], kind="stable").reset_index(drop=True)
    for column in ("workload", "node", "gpu_uuid", "gpu_model", "mig_profile", "sharing"):
        history[column] = history[column].astype("category")
    return history
