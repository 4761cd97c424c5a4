"""Benchmark the simulator: history generation, and the cost of the fake libnvidia-ml under a full NVML read.

    .venv/bin/python benchmarks/simulate_history.py                 # 64 GPUs x 14 days at 60 s, and bench-8xh100
    .venv/bin/python benchmarks/simulate_history.py --gpus 300 --days 7 --reads 100 --json

History: ``write_history`` for the ``mixed`` fleet scaled to ``--gpus``, to Parquet and to CSV (wall time, rows,
file size); the issue's target is 64 GPUs x 14 days at 60 s in well under a minute.

Fake NVML: on ``bench-8xh100`` (8 x H100, 56 MIG devices, 448 processes) one "full read" is every pynvml call the
exporter needs — per GPU: handle, UUID, name, memory v2, MIG mode, compute mode, MIG slots; per MIG device: handle,
UUID, GI/CI ids, attributes, memory v2, compute and MPS process lists (size-then-fill), a GPM sample of its GPU
instance and the metrics against the previous one; per new pid its process name. The simulated clock advances 15 s
between reads (one scrape interval), so every read also pays the node's re-evaluation of 448 processes over 15 s.
Reported: wall time per read, the part spent inside the fake library, and the NVML calls per read.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def history(gpus: int, days: float, seed: int) -> list[dict[str, Any]]:
    from exporter.simulate.history import write_history

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".parquet", ".csv"):
            path = Path(tmp) / f"fleet{suffix}"
            start = time.perf_counter()
            summary = write_history(path, days=days, gpus=gpus, seed=seed)
            elapsed = time.perf_counter() - start
            results.append(
                {
                    "format": suffix[1:],
                    "gpus": summary.gpus,
                    "workloads": summary.workloads,
                    "days": days,
                    "rows": summary.rows,
                    "seconds": round(elapsed, 2),
                    "rows_per_second": round(summary.rows / elapsed),
                    "bytes": path.stat().st_size,
                }
            )
    return results


def _full_read(pynvml: Any, samples: dict[tuple[int, int], Any], names: dict[int, str]) -> int:
    """Every call the exporter makes in one scrape of a MIG node; returns the number of MIG devices read."""
    read = 0
    pynvml.nvmlSystemGetDriverVersion()
    for index in range(pynvml.nvmlDeviceGetCount()):
        gpu = pynvml.nvmlDeviceGetHandleByIndex(index)
        pynvml.nvmlDeviceGetUUID(gpu)
        pynvml.nvmlDeviceGetName(gpu)
        pynvml.nvmlDeviceGetMemoryInfo(gpu, version=pynvml.nvmlMemory_v2)
        pynvml.nvmlDeviceGetMigMode(gpu)
        pynvml.nvmlDeviceGetComputeMode(gpu)
        for slot in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(gpu)):
            try:
                mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, slot)
            except pynvml.NVMLError_NotFound:
                break
            pynvml.nvmlDeviceGetUUID(mig)
            gi = pynvml.nvmlDeviceGetGpuInstanceId(mig)
            pynvml.nvmlDeviceGetComputeInstanceId(mig)
            pynvml.nvmlDeviceGetAttributes(mig)
            pynvml.nvmlDeviceGetMemoryInfo(mig, version=pynvml.nvmlMemory_v2)
            for p in pynvml.nvmlDeviceGetComputeRunningProcesses(mig):
                if p.pid not in names:
                    names[p.pid] = pynvml.nvmlSystemGetProcessName(p.pid)
            pynvml.nvmlDeviceGetMPSComputeRunningProcesses(mig)
            sample = pynvml.nvmlGpmSampleAlloc()
            pynvml.nvmlGpmMigSampleGet(gpu, gi, sample)
            previous = samples.get((index, gi))
            if previous is not None:
                request = pynvml.c_nvmlGpmMetricsGet_t()
                request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
                request.numMetrics = 3
                request.sample1, request.sample2 = previous, sample
                for i, metric in enumerate((2, 3, 10)):
                    request.metrics[i].metricId = metric
                pynvml.nvmlGpmMetricsGet(request)
                pynvml.nvmlGpmSampleFree(previous)
            samples[(index, gi)] = sample
            read += 1
    return read


def fake_nvml(reads: int) -> dict[str, Any]:
    import pynvml

    from exporter.simulate import ManualClock, attach, build_scenario
    from exporter.simulate import fake_nvml_core as core

    clock = ManualClock()
    fleet = build_scenario("bench-8xh100", clock=clock)
    inside = [0.0]
    original = core.Symbol.__call__

    def timed(self: Any, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(self, *args)
        finally:
            inside[0] += time.perf_counter() - start

    with attach(fleet) as attachment:
        pynvml.nvmlInit()
        samples: dict[tuple[int, int], Any] = {}
        names: dict[int, str] = {}
        _full_read(pynvml, samples, names)  # warm: handles, process names
        plain = []
        for _ in range(reads):
            clock.advance(15)
            start = time.perf_counter()
            devices = _full_read(pynvml, samples, names)
            plain.append(time.perf_counter() - start)
        core.Symbol.__call__ = timed  # type: ignore[method-assign]
        calls_before = attachment.library.calls
        try:
            timed_total = time.perf_counter()
            for _ in range(reads):
                clock.advance(15)
                _full_read(pynvml, samples, names)
            timed_total = time.perf_counter() - timed_total
        finally:
            core.Symbol.__call__ = original  # type: ignore[method-assign]
        calls = (attachment.library.calls - calls_before) / reads
        evaluation = []
        for _ in range(reads):
            clock.advance(15)
            start = time.perf_counter()
            attachment.node.runtime.state()
            evaluation.append(time.perf_counter() - start)
        pynvml.nvmlShutdown()
    plain.sort()
    return {
        "scenario": "bench-8xh100",
        "mig_devices": devices,
        "processes": 448,
        "reads": reads,
        "read_ms_median": round(1000 * plain[len(plain) // 2], 2),
        "read_ms_p90": round(1000 * plain[int(len(plain) * 0.9)], 2),
        "inside_fake_ms_per_read": round(1000 * inside[0] / reads, 2),
        "inside_fake_share": round(inside[0] / timed_total, 2),
        "node_reevaluation_ms_per_15s": round(1000 * sorted(evaluation)[len(evaluation) // 2], 2),
        "nvml_calls_per_read": round(calls),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=64)
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    args = parser.parse_args()
    result = {"history": history(args.gpus, args.days, args.seed), "fake_nvml": fake_nvml(args.reads)}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"history: mixed fleet, {args.gpus} GPUs, {args.days:g} days at 60 s")
    for h in result["history"]:
        print(
            f"  {h['format']:8} {h['rows']:>10,} rows  {h['workloads']} workloads  {h['seconds']:6.2f} s  "
            f"{h['rows_per_second']:>10,} rows/s  {h['bytes'] / 2**20:8.1f} MiB"
        )
    f = result["fake_nvml"]
    what = f"{f['mig_devices']} MIG devices, {f['processes']} processes"
    print(f"fake NVML: {f['scenario']} ({what}), {f['reads']} reads")
    print(
        f"  full read: median {f['read_ms_median']} ms, p90 {f['read_ms_p90']} ms, {f['nvml_calls_per_read']} NVML "
        f"calls; inside the fake library {f['inside_fake_ms_per_read']} ms ({f['inside_fake_share']:.0%}), of "
        f"which re-evaluating the node for 15 s is {f['node_reevaluation_ms_per_15s']} ms"
    )


if __name__ == "__main__":
    main()
