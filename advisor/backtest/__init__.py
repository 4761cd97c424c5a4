"""The built-in backtest: advice fitted on the history before an origin, replayed on the samples after it.

``run_backtest(history, origins)`` -> ``BacktestResult`` (per origin: ``Totals`` and one ``WorkloadReplay`` per
advised workload, plus the workloads that appeared only after the origin). What is counted, and how, is in
docs/backtest.md and replay.py.
"""

from advisor.backtest.model import (
    BACKTEST_VERSION,
    BacktestResult,
    NewWorkload,
    OriginResult,
    Totals,
    WorkloadReplay,
    unavailable,
)
from advisor.backtest.origins import parse_origin
from advisor.backtest.run import run_backtest

__all__ = [
    "BACKTEST_VERSION",
    "BacktestResult",
    "NewWorkload",
    "OriginResult",
    "Totals",
    "WorkloadReplay",
    "parse_origin",
    "run_backtest",
    "unavailable",
]
