"""``slicewise advise``, ``slicewise demo`` and the weekly schedule with the backtest beside the advice, from one read.

The history is read once: the advice uses its trailing window, the backtest its earlier origins. From Prometheus
the rows behind the reader's answers are the history (advisor/history/timeline.py); past their cap there are none,
and the backtest says so. A history the
backtest cannot cut (a single instant, nothing before an origin) still gets its advice; the backtest then says
why it did not run, and the report shows that sentence.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from advisor.backtest.model import BacktestResult, unavailable
from advisor.backtest.run import run_backtest
from advisor.model import Recommendation
from slicewise.errors import BadInput

if TYPE_CHECKING:
    from advisor.history.connection import PrometheusConnection


def advise_with_backtest(path: Path, window: timedelta | None, seed: int = 0) -> tuple[Recommendation, BacktestResult]:
    """The recommendation ``pipeline.recommend(path, window, seed)`` gives, and the backtest of the same advisor
    on the same file (default origins, the same window before each)."""
    from dataclasses import replace

    from advisor.history import read_history
    from advisor.history.profiles import read_beside
    from advisor.pipeline import from_history, recommend_data

    history = read_history(Path(path))
    data = replace(from_history(history, str(path), window), profile_tables=tuple(read_beside(Path(path))))
    rec = recommend_data(data, seed)
    try:
        backtest = run_backtest(history, None, window=window, seed=seed, source=str(path))
    except BadInput as exc:
        backtest = unavailable(str(path), f"not run: {exc}")
    return rec, backtest


def advise_prometheus_with_backtest(
    connection: PrometheusConnection,
    window: timedelta,
    seed: int = 0,
    now: datetime | None = None,
    *,
    replay: bool = True,
) -> tuple[Recommendation, BacktestResult]:
    """The recommendation from Prometheus over the window ending ``now``, and (``replay``) the backtest of the same
    advisor on the rows behind it; a result saying why not where there are none (``backtest.NEEDS_ROWS``)."""
    from advisor.pipeline import load, recommend_data

    data = load(connection, window, now)
    rec = recommend_data(data, seed)
    if data.rows is None or not replay:
        return rec, unavailable(rec.source)
    try:
        return rec, run_backtest(data.rows, None, window=window, seed=seed, source=rec.source)
    except BadInput as exc:
        return rec, unavailable(rec.source, f"not run: {exc}")
