"""Benchmark: one scrape of slicewise-exporter vs nvitop-exporter on the same simulated 8 x H100 node.

Scenario ``bench-8xh100``: 8 x H100 80GB HBM3 in MIG mode, 7 x ``1g.10gb`` each (56 MIG devices), 448 processes.
Both exporters run on the same simulated fleet attached beneath pynvml (``exporter.simulate.attach``), each in its
own fresh process so that its peak RSS is its own. Between passes the fleet's clock moves 15 s (a usual scrape
interval: the simulated driver has new GPM counters and process samples to give) and the process sleeps 1.1 s, so
no time-based cache of either exporter (nvitop caches some reads for about a second) answers for the driver.

- slicewise: one scrape = ``collect()`` of its custom collector (NVML read, attribution, metric families) plus
  rendering the text format, exactly what ``GET /metrics`` does.
- nvitop-exporter: it refreshes gauges in a loop (``PrometheusExporter.collect``); one pass of that loop over all
  devices (``update_device`` for each GPU and MIG device, as its CLI lists them) plus rendering the text is the
  same work. Its host metrics (``update_host``: load, disks, network) are timed separately and left out of the
  ratio, since slicewise publishes none.

Also measured for slicewise: CPU time per scrape, payload, peak RSS (with and without the simulator's own share),
and how the scrape time grows with GPUs (1..8) and with processes (0..1,000 on the 8-GPU node).

    .venv/bin/python benchmarks/exporter_collect.py                 # everything (a few minutes)
    .venv/bin/python benchmarks/exporter_collect.py --quick         # fewer passes, smaller sweeps
    .venv/bin/python benchmarks/exporter_collect.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

SCENARIO = "bench-8xh100"
MIB = 1024 * 1024
SLEEP_BETWEEN_PASSES_S = 1.1


def _rss_mib() -> float:
    """Current resident set size (from /proc/self/statm)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / MIB


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _fleet(gpus: int, processes: int | None) -> Any:
    from exporter.simulate import ANCHOR, ManualClock, build_scenario

    fleet = build_scenario(SCENARIO, gpus=gpus, clock=ManualClock(ANCHOR + 14 * 3600))
    if processes is not None:  # resize the node's member list: copies of the scenario's members, new replicas
        node = fleet.node()
        base = list(node.members)
        members = [replace(base[i % len(base)], replica=base[i % len(base)].replica + 1000 * (i // len(base)))
                   for i in range(processes)]  # fmt: skip
        node.members[:] = members
    return fleet


def _timed(passes: int, fleet: Any, one_pass: Any) -> dict[str, Any]:
    walls, cpus, payload = [], [], 0
    for _ in range(passes):
        fleet.clock.advance(15)
        time.sleep(SLEEP_BETWEEN_PASSES_S)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        payload = len(one_pass())
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
    return {
        "wall_ms_median": 1000 * statistics.median(walls),
        "wall_ms_min": 1000 * min(walls),
        "cpu_ms_median": 1000 * statistics.median(cpus),
        "payload_bytes": payload,
    }


def worker_slicewise(passes: int, gpus: int, processes: int | None) -> dict[str, Any]:
    from prometheus_client import generate_latest

    fleet = _fleet(gpus, processes)
    from exporter.simulate import attach

    with attach(fleet):
        import pynvml

        pynvml.nvmlInit()  # the simulated driver's own structures, so the baseline holds them
        fleet.node().runtime.state()
        pynvml.nvmlShutdown()
        baseline = _rss_mib()
    from exporter.app import ExporterOptions, build_exporter

    exporter = build_exporter(ExporterOptions(), serve=False, fleet=fleet)
    try:
        result = _timed(passes, fleet, lambda: generate_latest(exporter.registry))
        result["processes"] = len(fleet.node().runtime.state().by_pid)
        result["collect_ms_reported"] = 1000 * (exporter.collector.health.last_collect_seconds or 0.0)
    finally:
        exporter.close()
    result["peak_rss_mib"] = _peak_rss_mib()
    result["baseline_rss_mib"] = baseline
    return result


def worker_nvitop(passes: int, gpus: int, processes: int | None) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry, generate_latest

    fleet = _fleet(gpus, processes)
    from exporter.simulate import attach

    attach(fleet)
    from nvitop import Device
    from nvitop_exporter.exporter import PrometheusExporter

    physical = Device.from_indices(range(Device.count()))
    devices = [*physical, *(m for d in physical for m in d.mig_devices())]  # what nvitop-exporter's CLI serves
    registry = CollectorRegistry()
    exporter = PrometheusExporter(devices, hostname="bench", registry=registry)

    def one_pass() -> bytes:
        for device in devices:
            exporter.update_device(device)
        return generate_latest(registry)

    result = _timed(passes, fleet, one_pass)
    host0 = time.perf_counter()
    exporter.update_host()
    result["update_host_ms"] = 1000 * (time.perf_counter() - host0)
    result["devices"] = len(devices)
    result["peak_rss_mib"] = _peak_rss_mib()
    return result


def _run_worker(kind: str, passes: int, gpus: int = 8, processes: int | None = None) -> dict[str, Any]:
    args = [sys.executable, __file__, "--worker", kind, "--passes", str(passes), "--gpus", str(gpus)]
    if processes is not None:
        args += ["--processes", str(processes)]
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _sweep(results: dict[int, dict[str, Any]]) -> str:
    return ", ".join(f"{k}: {r['wall_ms_median']:.1f} / {r['cpu_ms_median']:.1f} ms" for k, r in results.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["slicewise", "nvitop"])
    parser.add_argument("--passes", type=int, default=15)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--processes", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="fewer passes and sweep points")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.worker == "slicewise":
        print(json.dumps(worker_slicewise(args.passes, args.gpus, args.processes)))
        return
    if args.worker == "nvitop":
        print(json.dumps(worker_nvitop(args.passes, args.gpus, args.processes)))
        return

    passes = 5 if args.quick else args.passes
    sweep_passes = 3 if args.quick else 7
    slicewise = _run_worker("slicewise", passes)
    nvitop = _run_worker("nvitop", max(3, passes // 3))
    ratio = slicewise["wall_ms_median"] / nvitop["wall_ms_median"]
    gpu_sweep = {g: _run_worker("slicewise", sweep_passes, gpus=g) for g in (1, 2, 4, 8)}
    counts = (0, 250, 500, 1000) if args.quick else (0, 100, 250, 448, 750, 1000)
    process_sweep = {p: _run_worker("slicewise", sweep_passes, processes=p) for p in counts}

    print(f"scenario {SCENARIO}: 8 x H100, 56 MIG devices, {slicewise['processes']} processes")
    print("| | slicewise | nvitop-exporter |")
    print("|---|---|---|")
    print(f"| scrape wall time (median) | {slicewise['wall_ms_median']:.1f} ms | {nvitop['wall_ms_median']:.1f} ms |")
    print(f"| CPU time per scrape | {slicewise['cpu_ms_median']:.1f} ms | {nvitop['cpu_ms_median']:.1f} ms |")
    print(f"| payload | {slicewise['payload_bytes'] / 1024:.0f} KiB | {nvitop['payload_bytes'] / 1024:.0f} KiB |")
    print(f"| peak RSS of the process | {slicewise['peak_rss_mib']:.0f} MiB | {nvitop['peak_rss_mib']:.0f} MiB |")
    print(f"ratio slicewise / nvitop-exporter: {ratio:.3f} (target <= 0.333); nvitop update_host: "
          f"{nvitop['update_host_ms']:.1f} ms, not counted")  # fmt: skip
    own = slicewise["peak_rss_mib"] - slicewise["baseline_rss_mib"]
    print(f"slicewise RSS before the exporter existed (Python + simulated driver): "
          f"{slicewise['baseline_rss_mib']:.0f} MiB; the exporter's own share: {own:.0f} MiB")  # fmt: skip
    print("slicewise scrape by GPUs (7 MIG devices x 8 processes each), wall / CPU: " + _sweep(gpu_sweep))
    print("slicewise scrape by processes (8 GPUs, 56 MIG devices), wall / CPU: " + _sweep(process_sweep))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "slicewise": slicewise,
                    "nvitop": nvitop,
                    "ratio": ratio,
                    "gpus": gpu_sweep,
                    "processes": process_sweep,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
