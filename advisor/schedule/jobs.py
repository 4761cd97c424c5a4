"""The functions the persistent job store names (``advisor.schedule.jobs:weekly_report``): they take only the
config path, a string the store can keep, and read the config afresh each time, so an edited config (a new
recipient, a rotated password) takes effect at the next run without touching the store.

They log instead of raising: APScheduler would print a traceback for what is usually an outage, and the ledger
already says what is still owed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from advisor.schedule.config import load_config
from advisor.schedule.cycle import owed_period, run_cycle
from slicewise.errors import SlicewiseError

log = logging.getLogger(__name__)

REPORT_JOB = "slicewise-weekly-report"
RETRY_JOB = "slicewise-retry-deliveries"


def weekly_report(config_path: str) -> None:
    """The scheduled run: the period is the schedule's latest fire time, the one this run stands for."""
    try:
        result = run_cycle(load_config(Path(config_path)))
    except SlicewiseError as exc:
        log.error("weekly report failed: %s (the retry job tries again)", exc)
        return
    if not result.delivery.complete:
        log.warning("weekly report %s: some destinations are still owed; the retry job tries again", result.period)


def retry_deliveries(config_path: str) -> None:
    """Finish the current period's work if a destination is still owed (or the advisor failed); else nothing."""
    try:
        config = load_config(Path(config_path))
        period = owed_period(config)
        if period is None:
            return
        log.info("retrying report %s", period)
        run_cycle(config, period=period)
    except SlicewiseError as exc:
        log.error("retry failed: %s (tries again at the next retry)", exc)
