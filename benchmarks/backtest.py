"""Benchmark the backtest: read a large history, fit the advice before each origin, replay the samples after it.

The issue's target: 2,000 workloads x 14 days at 60 s (40.3 M samples) in under 60 s and 4 GiB.

    .venv/bin/python benchmarks/backtest.py                          # 2,000 x 14 days (generated once, cached)
    .venv/bin/python benchmarks/backtest.py --workloads 200 --days 14   # a quicker run
    .venv/bin/python benchmarks/backtest.py --simulator 64 --days 7     # the simulator's mixed fleet

The input is the same generated history as benchmarks/advisor_features.py (six archetypes, one GPU each today;
cached in the same directory), or the simulator's mixed fleet. Generation is not timed. The measured part runs in a
fresh process (so its peak RSS is its own): the read, then per origin (50 % and 70 %) the fit (features, classes,
decisions, plan: ``pipeline.from_history`` + ``recommend_data`` on the rows before it) and the replay of the rows
after it, each in wall and CPU seconds (CPU time says what the code costs when other jobs share the machine),
and the process's peak resident memory (``ru_maxrss``).
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def measure(path: Path, fractions: tuple[float, ...]) -> dict[str, Any]:
    from advisor.backtest.origins import cuts
    from advisor.backtest.replay import replay, step_seconds
    from advisor.backtest.run import _origin, _split
    from advisor.history import read_history
    from advisor.pipeline import from_history, recommend_data

    started, cpu = time.perf_counter(), time.process_time()
    history = read_history(path)
    read_s = time.perf_counter() - started
    start, end = history["timestamp"].min().to_pydatetime(), history["timestamp"].max().to_pydatetime()
    step = step_seconds(history)
    origins = []
    replay_total = 0.0
    for cut in cuts(start, end, fractions):
        t0, c0 = time.perf_counter(), time.process_time()
        before, after = _split(history, cut)
        rec = recommend_data(from_history(before, str(path), None, for_replay=True), with_configs=False)
        del before
        t1, c1 = time.perf_counter(), time.process_time()
        replayed = replay(after, rec, start, step)
        t2, c2 = time.perf_counter(), time.process_time()
        replay_total += t2 - t1
        o = _origin(cut, rec, replayed, step, after["timestamp"].max().to_pydatetime())
        origins.append(
            {
                "origin": f"{cut.origin:%Y-%m-%d %H:%M}",
                "rows_replayed": len(after),
                "fit_s": round(t1 - t0, 2),
                "fit_cpu_s": round(c1 - c0, 2),
                "replay_s": round(t2 - t1, 2),
                "replay_cpu_s": round(c2 - c1, 2),
                "oom_samples": o.totals.oom_samples,
                "slowed_share": round(o.totals.slowed_share, 5),
                "gpus_needed": o.totals.gpus_needed,
                "gpus_busy_at_once_max": o.totals.gpus_busy_at_once_max,
            }
        )
        del after
    total = time.perf_counter() - started
    return {
        "rows": len(history),
        "workloads": int(history["workload"].nunique()),
        "read_s": round(read_s, 2),
        "origins": origins,
        "replay_s": round(replay_total, 2),
        "total_s": round(total, 2),
        "total_cpu_s": round(time.process_time() - cpu, 2),  # a shared machine's wall time is not the code's
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", type=int, default=2000)
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "slicewise-bench")
    parser.add_argument("--simulator", type=int, metavar="GPUS", help="use the simulator's mixed fleet instead")
    parser.add_argument("--origin", type=float, action="append", help="fraction of the span (default 0.5 and 0.7)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the measured child process
    args = parser.parse_args()
    fractions = tuple(args.origin or (0.5, 0.7))
    if args.measure:
        print(json.dumps(measure(args.measure, fractions)))
        return
    from advisor_features import cached_history

    path = cached_history(args.dir, args.workloads, args.days, args.simulator)
    command = [sys.executable, __file__, "--measure", str(path)]
    for f in fractions:
        command += ["--origin", str(f)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps(figures, indent=2))
    ok = figures["total_s"] < 60 and figures["peak_rss_gib"] < 4
    print(f"target (< 60 s, < 4 GiB): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
