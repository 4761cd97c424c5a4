"""The backtest: at each origin, advise on the history before it, replay the samples after it (replay.py).

The advice is exactly what ``slicewise advise`` would have given that day: ``pipeline.from_history`` on the rows at
or before the origin (the trailing ``window`` of them), then ``pipeline.recommend_data``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from advisor.backtest.model import BACKTEST_VERSION, BacktestResult, OriginResult, Totals
from advisor.backtest.origins import Cut, cuts
from advisor.backtest.replay import Replayed, replay, step_seconds
from advisor.model import Recommendation
from slicewise.errors import BadInput


def run_backtest(
    history: pd.DataFrame,
    origins: Sequence[float | datetime] | None = None,
    *,
    window: timedelta | None = None,
    seed: int = 0,
    horizon: timedelta | None = None,
    source: str = "history",
) -> BacktestResult:
    """Backtest the advisor on a validated history (``advisor.history.read_history``'s frame).

    ``origins``: fractions of the history's span (0.5) or times; default 50 % and 70 %, or every week when the
    history spans three weeks or more. ``window``: how much history before each origin the advice uses (default:
    all of it). ``horizon``: how long after each origin to replay (default: to the end; a week for weekly origins).
    """
    from advisor.pipeline import from_history, recommend_data

    if history.empty:
        raise BadInput(f"{source}: the history has no samples")
    times = history["timestamp"]
    start, end = times.min().to_pydatetime(), times.max().to_pydatetime()
    step_s = step_seconds(history)
    results = []
    for cut in cuts(start, end, origins, horizon):
        before, after = _split(history, cut)
        if before.empty:
            raise BadInput(f"{source}: no samples at or before the origin {cut.origin:%Y-%m-%d %H:%M:%S} UTC")
        rec = recommend_data(from_history(before, source, window, for_replay=True), seed, with_configs=False)
        del before
        replayed = replay(after, rec, start, step_s)
        replay_end = after["timestamp"].max().to_pydatetime() if not after.empty else cut.origin
        del after
        results.append(_origin(cut, rec, replayed, step_s, replay_end))
    return BacktestResult(BACKTEST_VERSION, source, tuple(results))


def _split(history: pd.DataFrame, cut: Cut) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows at or before the origin, and rows after it up to the replay end (slices, not copies, when sorted)."""
    times = history["timestamp"]
    origin, end = pd.Timestamp(cut.origin), pd.Timestamp(cut.replay_end)
    if times.is_monotonic_increasing:
        split = int(times.searchsorted(origin, side="right"))
        stop = int(times.searchsorted(end, side="right"))
        return history.iloc[:split], history.iloc[split:stop]
    values = times.to_numpy("datetime64[ms]")
    o, e = np.datetime64(origin.tz_convert(None), "ms"), np.datetime64(end.tz_convert(None), "ms")
    return _taken(history, values <= o), _taken(history, (values > o) & (values <= e))


def _taken(history: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The rows where ``rows`` is true, a copy numbered from 0: the history's row labels would be an int64 array
    beside the copy (8 bytes a row, a quarter of a row's columns) that nothing downstream reads."""
    taken = history[rows]
    taken.index = pd.RangeIndex(len(taken))
    return taken


def _origin(cut: Cut, rec: Recommendation, r: Replayed, step_s: int, replay_end: datetime) -> OriginResult:
    w = r.workloads
    samples = sum(x.samples for x in w)
    measured = sum(x.measured_samples for x in w)
    slowed = sum(x.slowed_samples for x in w)
    busy = sum(x.timeslice_busy_samples for x in w)
    contended = sum(x.contended_samples for x in w)
    totals = Totals(
        samples=samples,
        oom_samples=sum(x.oom_samples for x in w),
        oom_workloads=sum(1 for x in w if x.oom_samples or x.timeslice_oom_samples),
        timeslice_oom_samples=sum(x.timeslice_oom_samples for x in w),
        timeslice_oom_gpu_steps=r.timeslice_oom_gpu_steps,
        measured_samples=measured,
        slowed_samples=slowed,
        slowed_share=slowed / measured if measured else 0.0,
        timeslice_busy_samples=busy,
        contended_samples=contended,
        contended_share=contended / busy if busy else 0.0,
        queued_samples=sum(x.queued_samples for x in w),
        new_workloads=len(r.new),
        new_workload_samples=sum(n.samples for n in r.new),
        gpus_needed=rec.plan.gpus_needed,
        gpus_before=rec.plan.gpus_now,
        gpus_in_use=r.gpus_in_use,
        gpus_busy_at_once_max=r.gpus_busy_at_once_max,
    )
    modes = Counter(x.decision.mode.value for x in rec.workloads)
    return OriginResult(
        origin=cut.origin,
        fit_start=rec.window.start,
        replay_end=replay_end,
        step_s=step_s,
        totals=totals,
        workloads=w,
        new=r.new,
        modes=dict(sorted(modes.items())),
    )
