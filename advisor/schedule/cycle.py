"""One cycle of the weekly job: run the advisor -> write the out directory -> render -> deliver, for one period.

A cycle can be repeated safely: the period's advisor run happens once (its ``recommendation.json`` in
``<output_dir>/<period>/`` is reused by a later cycle of the same period, so a destination retried on Thursday
gets Monday's report), and the delivery ledger skips every destination that already has it. "What changed" compares
with the newest earlier period's recommendation.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from advisor.deliver import (
    Channel,
    DeliveryLedger,
    DeliveryResult,
    EmailChannel,
    RetryPolicy,
    SlackBotChannel,
    SlackWebhookChannel,
    SmtpSettings,
    build_package,
    deliver,
    read_secret,
)
from advisor.model import Recommendation
from advisor.schedule.config import ScheduleConfig
from advisor.schedule.period import period_key, period_of, trigger
from slicewise.errors import BadInput, JobFailed

if TYPE_CHECKING:
    from advisor.backtest import BacktestResult

log = logging.getLogger(__name__)

RECOMMENDATION = "recommendation.json"
LATEST = "latest"
CYCLE_LOCK = "cycle.lock"
Advisor = Callable[[ScheduleConfig], Recommendation]


@dataclass(frozen=True)
class CycleResult:
    period: str
    out_dir: Path
    advisor_ran: bool  # False: this period's recommendation was already there (a retry)
    delivery: DeliveryResult

    def summary(self) -> str:
        ran = "advisor ran" if self.advisor_ran else "reused this period's recommendation"
        return f"{self.delivery.summary()} ({ran}; report in {self.out_dir})"


def ledger_of(config: ScheduleConfig) -> DeliveryLedger:
    return DeliveryLedger(config.state / "ledger.sqlite")


def channels_of(config: ScheduleConfig, sleep: Callable[[float], None] = time.sleep) -> list[Channel]:
    """The configured destinations, with their secrets read now (BadInput, exit 2, when one is missing)."""
    d = config.delivery
    policy = RetryPolicy(d.attempts, d.backoff.total_seconds(), d.max_backoff.total_seconds())
    channels: list[Channel] = []
    if config.email is not None:
        smtp = config.email.smtp
        password = (
            read_secret("SMTP password", smtp.password_env, smtp.password_file) if smtp.username is not None else None
        )
        settings = SmtpSettings(
            host=smtp.host,
            port=smtp.effective_port,
            security=smtp.security,
            sender=config.email.sender,
            username=smtp.username,
            password=password,
            timeout=smtp.timeout.total_seconds(),
            ca_file=smtp.ca_file,
        )
        channels.append(EmailChannel(settings, config.email.to, policy, sleep))
    if config.slack is not None:
        slack = config.slack
        timeout = slack.timeout.total_seconds()
        if slack.webhook is not None:
            url = read_secret("Slack webhook URL", slack.webhook.url_env, slack.webhook.url_file)
            channels.append(SlackWebhookChannel(slack.webhook.name, url, policy, timeout, sleep))
        if slack.bot is not None:
            token = read_secret("Slack bot token", slack.bot.token_env, slack.bot.token_file)
            channels.append(
                SlackBotChannel(
                    token, slack.bot.channels, policy, slack.api_url, timeout, slack.bot.upload_report, sleep
                )
            )
    return channels


def current_period(config: ScheduleConfig, now: datetime | None = None) -> str:
    schedule = trigger(config.schedule.cron, config.schedule.timezone)
    return period_key(period_of(schedule, now or datetime.now(UTC)))


def _previous(output_dir: Path, period: str) -> Recommendation | None:
    """The newest earlier period's recommendation; an unreadable one is skipped, not fatal."""
    if not output_dir.is_dir():
        return None
    earlier = sorted(
        (
            p
            for p in output_dir.iterdir()
            # a hidden sibling is a report being built, or left by a killed run (slicewise.atomic.write_tree)
            if p.is_dir() and not p.name.startswith(".") and p.name < period and (p / RECOMMENDATION).is_file()
        ),
        reverse=True,
    )
    for directory in earlier:
        try:
            return Recommendation.from_json((directory / RECOMMENDATION).read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("%s: cannot read the previous recommendation (%s); trying an older one", directory, exc)
    return None


def _point_latest(output_dir: Path, period: str) -> None:
    """``<output_dir>/latest`` -> this period, replaced atomically (for a web server that publishes the reports)."""
    link = output_dir / LATEST
    tmp = output_dir / f".{LATEST}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(period, target_is_directory=True)
    os.replace(tmp, link)


def run_cycle(
    config: ScheduleConfig,
    *,
    period: str | None = None,
    now: datetime | None = None,
    advisor: Advisor | None = None,
    channels: Sequence[Channel] | None = None,
) -> CycleResult:
    """Do (or finish) the period's work; the period defaults to the schedule's latest fire time before now."""
    period = period or current_period(config, now)
    channels = list(channels) if channels is not None else channels_of(config)
    with _one_cycle_at_a_time(config.state):
        return _cycle(config, period, channels, advisor)


@contextlib.contextmanager
def _one_cycle_at_a_time(state: Path) -> Iterator[None]:
    """Cycles on one state directory run one after another, across processes (``--once`` beside the service):
    two senders could otherwise both see a destination as owed and both send."""
    try:
        state.mkdir(parents=True, exist_ok=True)
        handle = (state / CYCLE_LOCK).open("a")
    except OSError as exc:
        raise BadInput(f"{state}: cannot use the state directory: {exc.strerror or exc}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another cycle is running on %s; waiting for it to finish", state)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _cycle(config: ScheduleConfig, period: str, channels: list[Channel], advisor: Advisor | None) -> CycleResult:
    from advisor.output import write_out
    from advisor.schedule.source import advise_from_config, backtest_from_config

    ledger = ledger_of(config)
    ledger.begin_period(period)
    out = config.output_dir / period
    previous = _previous(config.output_dir, period)
    advisor_ran = False
    try:
        rec = Recommendation.from_json((out / RECOMMENDATION).read_bytes())
        log.info("report %s: reusing %s", period, out / RECOMMENDATION)
    except FileNotFoundError:
        log.info("report %s: running the advisor on %s", period, _describe(config))
        if advisor is None:  # the advice and its backtest from one read of the source
            rec, backtest = advise_from_config(config)
        else:
            rec, backtest = advisor(config), backtest_from_config(config)
        write_out(rec, out, previous, backtest=backtest)
        advisor_ran = True
    except (OSError, ValueError) as exc:
        raise JobFailed(f"{out / RECOMMENDATION}: cannot read this period's recommendation: {exc}") from exc
    _point_latest(config.output_dir, period)
    report_url = f"{config.report_url.rstrip('/')}/{period}/report.html" if config.report_url else None
    package = build_package(rec, previous, period, report_url, _backtest_of(out))
    result = deliver(package, channels, ledger)
    log.info(result.summary())
    return CycleResult(period, out, advisor_ran, result)


def _backtest_of(out: Path) -> BacktestResult | None:
    """This period's backtest as written beside its recommendation (a retry reuses it); None where there is none."""
    from advisor.backtest import BacktestResult

    try:
        return BacktestResult.from_json((out / "backtest.json").read_bytes())
    except (OSError, ValueError):
        return None


def owed_period(config: ScheduleConfig) -> str | None:
    """The newest started period if some destination still lacks its report, else None (nothing to retry)."""
    ledger = ledger_of(config)
    periods = ledger.periods()
    if not periods:
        return None
    newest = periods[-1]
    if newest != current_period(config):
        return None  # a new period began and its own run is due: older reports are not sent late
    keys = [k for c in channels_of(config) for k in c.destinations()]
    missing_report = not (config.output_dir / newest / RECOMMENDATION).is_file()
    return newest if missing_report or ledger.pending(newest, keys) else None


def _describe(config: ScheduleConfig) -> str:
    s = config.source
    return str(s.history) if s.history is not None else s.prometheus.url if s.prometheus else "?"
