"""``slicewise advise --history`` and ``slicewise demo`` with the backtest beside the advice, from one read.

The history is read once: the advice uses its trailing window, the backtest its earlier origins. A history the
backtest cannot cut (a single instant, nothing before an origin) still gets its advice; the backtest then says
why it did not run, and the report shows that sentence.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from advisor.backtest.model import BacktestResult, unavailable
from advisor.backtest.run import run_backtest
from advisor.model import Recommendation
from slicewise.errors import BadInput


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
