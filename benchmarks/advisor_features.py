"""Benchmark: read a large history file, compute per-workload features, classify — time and peak memory.

The issue's target: 2,000 workloads x 14 days at 60 s (40.3 M samples) from Parquet in under 60 s and 4 GiB.

    .venv/bin/python benchmarks/advisor_features.py                # generate (once, cached) and measure
    .venv/bin/python benchmarks/advisor_features.py --workloads 200 --days 2   # a quick run
    .venv/bin/python benchmarks/advisor_features.py --simulator 300           # the simulator's fleet

The input is generated here, vectorised, in the history file format (one row group per batch of workloads), from
six archetypes with spread between members — exactly 2,000 x 20,160 samples. ``--simulator 300`` uses the
simulator's mixed fleet scaled to 300 GPUs instead (865 workloads, about 12 M samples: its jobs and notebooks are
absent part of the time, and the scenario cannot be scaled past about 370 GPUs). Generation is not timed. The
measured part runs in a fresh process (so its peak RSS is its own) and reports wall time per stage and the
process's peak resident memory (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

GIB = 1024**3
ARCHETYPES = ("online-inference", "batch-inference", "training", "fine-tuning", "notebook", "hpc")
MODELS = ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB")


def _archetype_samples(kind: str, rng: np.random.Generator, n: int, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Memory (bytes) and compute (GPU fraction) for ``n`` workloads of one archetype over times ``t`` (seconds)."""
    shape = (n, len(t))
    day = 2 * np.pi * t / 86400
    noise = rng.normal(0, 1, shape)
    if kind == "online-inference":
        mem = rng.uniform(10, 30, (n, 1)) * GIB * (1 + 0.01 * noise)
        sm = rng.uniform(0.15, 0.35, (n, 1)) * (1 + 0.6 * np.sin(day + rng.uniform(0, 6, (n, 1)))) + 0.02 * noise
    elif kind == "batch-inference":
        on = rng.random(shape) < rng.uniform(0.2, 0.4, (n, 1))
        mem = np.where(on, rng.uniform(14, 22, (n, 1)), 3) * GIB * (1 + 0.02 * noise)
        sm = np.where(on, rng.uniform(0.5, 0.8, (n, 1)) + 0.05 * noise, 0)
    elif kind == "training":
        mem = rng.uniform(60, 75, (n, 1)) * GIB * (1 + 0.005 * noise)
        sm = rng.uniform(0.85, 0.95, (n, 1)) + 0.03 * noise
    elif kind == "fine-tuning":
        mem = rng.uniform(30, 45, (n, 1)) * GIB * (1 + 0.01 * noise)
        sm = rng.uniform(0.45, 0.65, (n, 1)) + 0.08 * noise
    elif kind == "notebook":
        active = rng.random(shape) < rng.uniform(0.03, 0.1, (n, 1))
        mem = rng.uniform(2, 8, (n, 1)) * GIB * (1 + 0.05 * np.abs(noise))
        sm = np.where(active, rng.uniform(0.2, 0.5, (n, 1)) + 0.1 * noise, 0.0)
    else:  # hpc
        mem = rng.uniform(8, 16, (n, 1)) * GIB * (1 + 0.01 * noise)
        sm = rng.uniform(0.9, 1.0, (n, 1)) - 0.02 * np.abs(noise)
    return np.clip(mem, 0, 79 * GIB).astype(np.int64), np.clip(sm, 0, 1)


def cached_history(directory: Path, workloads: int, days: float, simulator: int | None) -> Path:
    """The benchmark's history (generated here, or the simulator's mixed fleet of ``simulator`` GPUs), made once
    and cached in ``directory``; the benchmarks that read it share the cache. Generation is not timed."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"sim-{simulator}gpus-{days:g}d" if simulator else f"{workloads}w-{days:g}d"
    path = directory / f"history-{name}.parquet"
    if not path.exists():
        started = time.perf_counter()
        if simulator:
            from exporter.simulate.history import write_history

            write_history(path, scenario="mixed", days=days, gpus=simulator, seed=0)
        else:
            generate(path, workloads, days)
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s")
    return path


def generate(path: Path, workloads: int, days: float, step: int = 60, seed: int = 0, batch: int = 100) -> Path:
    """Write a history file of ``workloads`` x ``days`` at ``step`` seconds, and its truth file beside it."""
    rng = np.random.default_rng(seed)
    t0 = 1_767_225_600  # 2026-01-01T00:00:00Z
    t = np.arange(t0, t0 + int(days * 86400), step, dtype=np.int64)
    kinds = [ARCHETYPES[i % len(ARCHETYPES)] for i in range(workloads)]
    names = [f"team-{i % 17}/{kind}-{i:04d}" for i, kind in enumerate(kinds)]
    schema = pa.schema(
        [
            ("timestamp", pa.timestamp("s", tz="UTC")),
            ("workload", pa.string()),
            ("node", pa.string()),
            ("gpu_uuid", pa.string()),
            ("gpu_model", pa.string()),
            ("mig_profile", pa.string()),
            ("sharing", pa.string()),
            ("memory_used_bytes", pa.int64()),
            ("sm_active_gpu_fraction", pa.float64()),
        ]
    )
    tmp = path.with_name(path.name + ".part")
    with pq.ParquetWriter(tmp, schema) as writer:
        for first in range(0, workloads, batch):
            ids = list(range(first, min(first + batch, workloads)))
            mem = np.empty((len(ids), len(t)), dtype=np.int64)
            sm = np.empty((len(ids), len(t)))
            for kind in ARCHETYPES:
                rows = [j for j, i in enumerate(ids) if kinds[i] == kind]
                if rows:
                    mem[rows], sm[rows] = _archetype_samples(kind, rng, len(rows), t - t0)
            repeat = len(t)
            columns = {
                "timestamp": pa.array(np.tile(t, len(ids)), pa.timestamp("s", tz="UTC")),
                "workload": pa.array(np.repeat([names[i] for i in ids], repeat)),
                "node": pa.array(np.repeat([f"node-{i // 8:03d}" for i in ids], repeat)),
                "gpu_uuid": pa.array(np.repeat([f"GPU-{i:08x}-0000-0000-0000-000000000000" for i in ids], repeat)),
                "gpu_model": pa.array(np.repeat([MODELS[i % 2] for i in ids], repeat)),
                "mig_profile": pa.array(np.repeat([""] * len(ids), repeat)),
                "sharing": pa.array(np.repeat(["exclusive"] * len(ids), repeat)),
                "memory_used_bytes": pa.array(mem.ravel()),
                "sm_active_gpu_fraction": pa.array(sm.ravel()),
            }
            writer.write_table(pa.table(columns, schema=schema))
    tmp.replace(path)
    truth = path.with_name(path.name + ".truth.csv")
    truth.write_text("workload,archetype\n" + "".join(f"{n},{k}\n" for n, k in zip(names, kinds, strict=True)))
    return path


def measure(path: Path) -> dict[str, float]:
    """Read + features + classes, timed per stage; peak RSS of this process."""
    from advisor.classes import classify
    from advisor.features import compute_features
    from advisor.history import read_history

    start = time.perf_counter()
    history = read_history(path)
    read_s = time.perf_counter() - start
    rows = len(history)
    features = compute_features(history)
    features_s = time.perf_counter() - start - read_s
    del history
    classification = classify(features)
    classes_s = time.perf_counter() - start - read_s - features_s
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "rows": rows,
        "workloads": len(features),
        "classes": len(classification.classes),
        "outliers": len(classification.outliers),
        "read_s": round(read_s, 2),
        "features_s": round(features_s, 2),
        "classes_s": round(classes_s, 2),
        "total_s": round(read_s + features_s + classes_s, 2),
        "peak_rss_gib": round(peak_kib / 1024**2, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", type=int, default=2000)
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "slicewise-bench")
    parser.add_argument(
        "--simulator",
        type=int,
        metavar="GPUS",
        help="use the simulator's mixed fleet scaled to GPUS GPUs instead (300: 865 workloads, ~12 M samples)",
    )
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the measured child process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    path = cached_history(args.dir, args.workloads, args.days, args.simulator)
    result = subprocess.run(
        [sys.executable, __file__, "--measure", str(path)], check=True, capture_output=True, text=True
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps(figures, indent=2))
    ok = figures["total_s"] < 60 and figures["peak_rss_gib"] < 4
    print(f"target (< 60 s, < 4 GiB): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
