"""The report's backtest section, from a ``BacktestResult``: one line for the first screen, a table per origin.

Every report has the section. Without a result it says why: a Prometheus window past the reader's row cap gives
the advisor features, not the per-sample rows a replay needs; a report rendered without one (an email of an old
recommendation) says how to run it.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import datetime

from advisor.backtest.model import NEEDS_ROWS, BacktestResult, NewWorkload, OriginResult, Totals, WorkloadReplay
from advisor.backtest.text import MAX_ROWS, troubled

NOT_RUN = "not run for this report (slicewise backtest --history FILE replays the history)"


@dataclass(frozen=True)
class BacktestOrigin:
    origin: datetime
    replay_end: datetime
    sentence: str
    totals: Totals
    modes: str  # "mig 14, exclusive 49, timeslice 3"
    troubled: tuple[WorkloadReplay, ...]  # worst first, at most MAX_ROWS
    more: int  # troubled workloads not listed
    new: tuple[NewWorkload, ...]
    workloads: int

    @property
    def ooms(self) -> int:
        return self.totals.oom_samples + self.totals.timeslice_oom_samples


@dataclass(frozen=True)
class BacktestSection:
    headline: str  # the first screen's line: "Backtest: advice fitted before ..."
    available: bool
    origins: tuple[BacktestOrigin, ...]

    @property
    def wrapped(self) -> str:
        """The headline for plain text, wrapped at 100 columns without splitting "0.4 %" from its unit."""
        text = self.headline.replace(" %", "\u00a0%")  # textwrap breaks at ASCII spaces only
        return textwrap.fill(text, 100, subsequent_indent="  ", break_on_hyphens=False).replace("\u00a0", " ")


NO_BACKTEST = BacktestSection(f"Backtest: {NOT_RUN}.", False, ())


def backtest_section(backtest: BacktestResult | None, source: str) -> BacktestSection:
    if backtest is None:
        reason = NEEDS_ROWS if source.startswith(("http://", "https://")) else NOT_RUN
        return BacktestSection(f"Backtest: {reason}.", False, ())
    if not backtest.origins:
        return BacktestSection(backtest.headline, False, ())
    return BacktestSection(backtest.headline, True, tuple(_origin(o) for o in backtest.origins))


def _origin(o: OriginResult) -> BacktestOrigin:
    rows = troubled(o, None)
    return BacktestOrigin(
        origin=o.origin,
        replay_end=o.replay_end,
        sentence=o.sentence,
        totals=o.totals,
        modes=", ".join(f"{mode} {n}" for mode, n in o.modes.items()),
        troubled=tuple(rows[:MAX_ROWS]),
        more=max(0, len(rows) - MAX_ROWS),
        new=o.new[:MAX_ROWS],
        workloads=len(o.workloads),
    )
