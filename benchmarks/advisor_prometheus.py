"""Benchmark: ``slicewise advise --prometheus`` on the simulated mixed fleet backfilled into a real Prometheus.

Issue 17's targets, on a 2-core VM: 300 GPUs x 14 days in under 60 s without recording rules and under 10 s with
them, Prometheus's peak RSS under 2 GB, samples read no more than 3x the history's samples, and a projection under
15 minutes for 10,000 GPUs.

    .venv/bin/python benchmarks/advisor_prometheus.py --gpus 32            # one size (prepared once, cached)
    .venv/bin/python benchmarks/advisor_prometheus.py --gpus 32 128 300    # the README's table

Per size, prepared once under ``--workdir`` (not timed): the history (``write_history``, 60 s steps), its
OpenMetrics (``exporter.simulate.openmetrics``), TSDB blocks made by ``promtool tsdb create-blocks-from
openmetrics --max-block-duration=336h``, and the recording rules' series made by ``promtool tsdb
create-blocks-from rules`` (two passes: the per-workload rules read the per-device ones).

Measured, each in a fresh process (its ``ru_maxrss`` is its own) against a freshly started Prometheus (its
``VmHWM`` is the peak RSS of that run, start-up included), served with ``--query.lookback-delta=59s`` (backfilled
data has no staleness markers): ``advise --history`` (the file path), ``advise --prometheus`` with raw series,
with ``--prometheus.recording-rules`` (its default 5-minute bins) and with the rules every minute (``RUNS``).
Queries, samples read (``totalQueryableSamples``) and the most samples one query held (``peakSamples``) come from
Prometheus's own ``stats=all``. Agreement: the decisions (mode and MIG
profile per workload) and GPUs needed of each Prometheus run against the file's; the per-minute runs' features
against the file's too (the binned run's differ by design: docs/prometheus.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

END = "2026-11-22T23:59:00Z"  # the simulated histories' last sample (one step before exporter.simulate.clock.ANCHOR)


def _run(cmd: list[str], **kw: Any) -> None:
    subprocess.run(cmd, check=True, capture_output=True, **kw)


def prepare(gpus: int, days: float, workdir: Path) -> dict[str, Any]:
    """History, OpenMetrics and TSDB (with the rules' series) for one fleet size; cached in ``workdir``."""
    import pandas as pd

    from exporter.simulate.history import write_history
    from exporter.simulate.openmetrics import write_openmetrics

    here = workdir / f"{gpus}gpus-{days:g}d"
    done = here / "prepared.json"
    if done.exists():
        return dict(json.loads(done.read_text()))
    shutil.rmtree(here, ignore_errors=True)
    here.mkdir(parents=True)
    timings: dict[str, float] = {}
    started = time.monotonic()
    summary = write_history(here / "history.parquet", scenario="mixed", days=days, gpus=gpus, seed=0)
    timings["history_s"] = time.monotonic() - started
    started = time.monotonic()
    frame = pd.read_parquet(here / "history.parquet")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    written = write_openmetrics(frame, here / "fleet.om", recorded=True)
    del frame
    timings["openmetrics_s"] = time.monotonic() - started
    started = time.monotonic()
    tsdb = here / "tsdb"
    backfill = ["promtool", "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=336h"]
    _run([*backfill, str(here / "fleet.om"), str(tsdb)])
    timings["promtool_openmetrics_s"] = time.monotonic() - started
    timings["openmetrics_mb"] = (here / "fleet.om").stat().st_size / 1e6
    (here / "fleet.om").unlink()  # large; the blocks hold it now
    info: dict[str, Any] = {
        "rows": summary.rows,
        "gpus": summary.gpus,
        "workloads": summary.workloads,
        "samples": written.samples,
    }
    info |= {"series": written.series, "prepare": timings}
    done.write_text(json.dumps(info))
    return info


class serving:  # noqa: N801 - a context manager, used like a function
    """Prometheus on a free loopback port over ``tsdb``; yields (url, pid)."""

    def __init__(self, tsdb: Path, workdir: Path) -> None:
        self.tsdb, self.workdir = tsdb, workdir

    def __enter__(self) -> tuple[str, int]:
        import httpx

        from tests.support import free_port

        config = self.workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1m\n")
        port = free_port()
        self.log = (self.workdir / "prometheus.log").open("a")
        self.server = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={self.tsdb}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{port}",
                "--query.lookback-delta=59s",
                "--query.timeout=30m",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    return url, self.server.pid
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError("Prometheus did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.terminate()
        self.server.wait(timeout=60)
        self.log.close()


def _hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(args: list[str]) -> None:
    """Run ``slicewise`` with ``args`` here; print wall time, peak RSS and Prometheus's query stats as JSON."""
    from advisor.history import prometheus
    from slicewise.cli import main

    totals = prometheus.QueryStats()
    original = prometheus.PrometheusClient.__init__

    def with_stats(self: Any, *a: Any, **kw: Any) -> None:
        original(self, *a, **{**kw, "stats": True})
        self.stats = totals

    prometheus.PrometheusClient.__init__ = with_stats  # type: ignore[method-assign]
    read = {"s": 0.0}
    features = prometheus.PrometheusSource.features

    def timed(self: Any, *a: Any, **kw: Any) -> Any:
        begun = time.monotonic()
        try:
            return features(self, *a, **kw)
        finally:
            read["s"] += time.monotonic() - begun

    prometheus.PrometheusSource.features = timed  # type: ignore[method-assign]
    started = time.monotonic()
    code = 0
    with tempfile.TemporaryFile("w+") as out:
        saved = os.dup(1)
        os.dup2(out.fileno(), 1)
        try:
            main(args)
        except SystemExit as exc:
            code = int(exc.code or 0)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
        wall = time.monotonic() - started
        out.seek(0)
        report = out.read()
    rss = _hwm_mb(os.getpid())  # not ru_maxrss: Linux carries the parent's over fork and exec
    result: dict[str, Any] = {"code": code, "wall_s": wall, "read_s": read["s"], "rss_mb": rss}
    result["queries"] = totals.queries
    result |= {"samples_read": totals.samples_read, "peak_samples": totals.peak_samples}
    try:
        rec = json.loads(report)
        result["decisions"] = {
            w["workload"] + "@" + w.get("gpu_model", ""): [w["decision"]["mode"], w["decision"]["profile"]]
            for w in rec["workloads"]
        }
        result["gpus_needed"] = rec["plan"]["gpus_needed"]
    except (ValueError, KeyError):
        result["output"] = report[-2000:]
    print("BENCH " + json.dumps(result), file=sys.stderr)


def measure(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=3600,
    )
    for line in proc.stderr.splitlines():
        if line.startswith("BENCH "):
            return dict(json.loads(line[6:]))
    raise RuntimeError(f"the measured run failed: {proc.stderr[-3000:]}")


# what each size is advised with: the raw series (every minute, the default), the recording rules at their default
# 5-minute bins (the recommended path), and the rules every minute (the same figures as the raw path)
RUNS: tuple[tuple[str, list[str]], ...] = (
    ("raw", []),
    ("rules", ["--prometheus.recording-rules"]),
    ("rules_1m", ["--prometheus.recording-rules", "--prometheus.step", "1m"]),
)
LABELS = {
    "raw": "`--prometheus`",
    "rules": "`--prometheus.recording-rules` (5 min bins)",
    "rules_1m": "`--prometheus.recording-rules --prometheus.step 1m`",
}


def run_size(gpus: int, days: float, workdir: Path) -> dict[str, Any]:
    info = prepare(gpus, days, workdir)
    here = workdir / f"{gpus}gpus-{days:g}d"
    window = f"{days * 24:g}h"
    out: dict[str, Any] = {"gpus": gpus, "days": days, **info}
    # advise alone (the backtest, which both paths run by default now, has its own benchmark: backtest.py)
    out["file"] = measure(["advise", "--history", str(here / "history.parquet"), "--format", "json", "--no-backtest"])
    for name, extra in RUNS:
        with serving(here / "tsdb", here) as (url, pid):
            idle = _hwm_mb(pid)
            args = [
                "advise",
                "--prometheus",
                url,
                "--end",
                END,
                "--window",
                window,
                "--format",
                "json",
                "--no-backtest",
            ]
            run = measure([*args, "--prometheus.timeout", "30m", *extra])
            run["prometheus_peak_rss_mb"] = _hwm_mb(pid)
            run["prometheus_rss_at_start_mb"] = idle
            if name in ("raw", "rules_1m"):  # the per-minute readings: their features are the file's
                run |= features_agree(here, url, recorded=name != "raw")
        decisions, want = run.pop("decisions", {}), out["file"]["decisions"]
        run["agree"] = sum(decisions.get(k) == v for k, v in want.items())
        run["of"] = len(want)
        run["file_gpus_needed"] = out["file"].get("gpus_needed")
        out[name] = run
    out["file"].pop("decisions", None)
    return out


def features_agree(here: Path, url: str, recorded: bool) -> dict[str, Any]:
    """Workloads whose features from Prometheus equal the file's: counts, labels and replicas exactly; the worst
    difference in memory (bytes) and compute (GPU fraction) figures over all workloads."""
    from advisor.features import compute_features, trailing_window
    from advisor.history import read_history
    from advisor.history.prometheus import PrometheusSource
    from advisor.model import QUANTILE_LEVELS

    history = read_history(here / "history.parquet")
    window = trailing_window(history, timedelta(days=float(here.name.split("-")[1].rstrip("d"))))
    want = {f.key: f for f in compute_features(history, window)}
    del history
    with PrometheusSource(url, recorded=recorded, timeout=1800) as source:
        got = {f.key: f for f in source.features(window)}
    same, memory, compute = 0, 0.0, 0.0
    exact = ("samples", "coverage", "devices", "sharing", "process_count", "mig_profile", "namespace")
    for key, a in want.items():
        b = got.get(key)
        if b is None or any(getattr(a, n) != getattr(b, n) for n in exact) or a.compute_known != b.compute_known:
            continue
        same += 1
        pairs = [(a.memory_quantiles[q], b.memory_quantiles[q]) for q in QUANTILE_LEVELS]
        pairs += [
            (getattr(a, n), getattr(b, n)) for n in ("memory_peak_bytes", "memory_p99_bytes", "memory_mean_bytes")
        ]
        memory = max([memory, *(abs(x - y) for x, y in pairs)])
        if a.compute_known:
            names = ("compute_peak_gpu_fraction", "compute_p95_gpu_fraction", "compute_mean_gpu_fraction", "burstiness")
            compute = max([compute, *(abs(getattr(a, n) - getattr(b, n)) for n in names)])
    return {"features_same": same, "features_of": len(want), "worst_memory_bytes": memory, "worst_compute": compute}


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| GPUs (history samples) | path | advise wall (reading) | advise RSS | Prometheus peak RSS | queries"
        " | most samples in one query | samples read (x history) | features = file's | decisions = file's"
        " | GPUs needed (file's) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        size = f"{r['gpus']} ({r['rows'] / 1e6:.1f} M)"
        f = r["file"]
        lines.append(
            f"| {size} | `--history` | {f['wall_s']:.1f} s | {f['rss_mb']:.0f} MB | | | | | | | {f['gpus_needed']} |"
        )
        for name, label in LABELS.items():
            m = r[name]
            same = f"{m['features_same']}/{m['features_of']}" if "features_same" in m else "(binned)"
            lines.append(
                f"| {size} | {label} | {m['wall_s']:.1f} s ({m['read_s']:.1f} s) | {m['rss_mb']:.0f} MB"
                f" | {m['prometheus_peak_rss_mb']:.0f} MB | {m['queries']} | {m['peak_samples'] / 1e6:.2f} M"
                f" | {m['samples_read'] / 1e6:.1f} M ({m['samples_read'] / r['rows']:.2f}x)"
                f" | {same} | {m['agree']}/{m['of']} | {m.get('gpus_needed')} ({m['file_gpus_needed']}) |"
            )
    return "\n".join(lines)


def projection(results: list[dict[str, Any]]) -> str:
    """Reading time (``PrometheusSource.features``) fitted as fixed + per-sample cost over the sizes measured, then
    applied to 2,000 and 10,000 GPUs (every query is bounded, so the work grows with the samples; the rest of
    ``advise`` — classes, plan, report — is the same as the file path's and is projected from it likewise)."""
    import numpy as np

    rows = np.array([r["rows"] for r in results], float)
    per_gpu = float(rows[-1] / results[-1]["gpus"])
    lines = []
    for name in (*LABELS, "file"):
        key = "wall_s" if name == "file" else "read_s"
        times = np.array([r[name][key] for r in results])
        slope, fixed = np.polyfit(rows, times, 1) if len(rows) > 1 else (times[0] / rows[0], 0.0)
        guesses = ", ".join(
            f"{n:,} GPUs ({n * per_gpu / 1e6:.0f} M samples): {(fixed + slope * n * per_gpu) / 60:.1f} min"
            for n in (2000, 10000)
        )
        what = "advise --history, all of it" if name == "file" else f"reading Prometheus ({name})"
        lines.append(f"- {what}: {slope * 1e6:.2f} µs per history sample + {fixed:.1f} s -> {guesses}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, nargs="+", default=[32])
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "slicewise-bench-prometheus")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    results = []
    for gpus in args.gpus:
        result = run_size(gpus, args.days, args.workdir)
        results.append(result)
        print(json.dumps(result), flush=True)
    print(table(results))
    print(projection(results))
    load = os.getloadavg()
    print(f"load average at the end (1, 5, 15 min): {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}; {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main()
