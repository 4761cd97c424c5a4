"""Run the advisor on the configured source: a history file, or Prometheus with the configured authentication
(basic or bearer, a private CA), both through ``advisor.pipeline.recommend``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from advisor.model import Recommendation
from advisor.schedule.config import PrometheusSourceConfig, ScheduleConfig
from slicewise.secrets import read_secret

if TYPE_CHECKING:
    from advisor.backtest import BacktestResult
    from advisor.history.connection import PrometheusConnection


def advise_from_config(config: ScheduleConfig, now: datetime | None = None) -> tuple[Recommendation, BacktestResult]:
    """The recommendation and its backtest from one read of the configured source: a history file, or the rows
    behind Prometheus's answers (where the window is under the reader's cap), as ``slicewise advise`` does."""
    from advisor.backtest.advise import advise_prometheus_with_backtest, advise_with_backtest

    source = config.source
    if source.history is not None:
        return advise_with_backtest(source.history, config.window, config.seed)
    assert source.prometheus is not None
    moment = now or datetime.now(UTC)
    return advise_prometheus_with_backtest(connection(source.prometheus), config.window, config.seed, moment)


def backtest_from_config(config: ScheduleConfig) -> BacktestResult:
    """The backtest for the report: the same advisor fitted before earlier origins of the configured history file
    and replayed on what came after; for a Prometheus source the result says how to run it (backtest.NEEDS_ROWS)."""
    from advisor.backtest import run_backtest, unavailable
    from advisor.history import read_history
    from slicewise.errors import BadInput

    source = config.source
    if source.history is None:
        assert source.prometheus is not None
        return unavailable(source.prometheus.url)
    try:
        return run_backtest(read_history(source.history), None, window=config.window, seed=config.seed,
                            source=str(source.history))  # fmt: skip
    except BadInput as exc:
        return unavailable(str(source.history), f"not run: {exc}")


def connection(p: PrometheusSourceConfig) -> PrometheusConnection:
    """The configured Prometheus, its secrets read now (from their variable or file) so a rotated one is used."""
    from advisor.history.connection import PrometheusConnection

    password = bearer = None
    if p.username is not None:
        password = read_secret("Prometheus password", p.password_env, p.password_file).reveal()
    elif p.bearer_token_env is not None or p.bearer_token_file is not None:
        bearer = read_secret("Prometheus bearer token", p.bearer_token_env, p.bearer_token_file).reveal()
    return PrometheusConnection(
        p.url,
        username=p.username,
        password=password,
        bearer_token=bearer,
        ca_file=p.ca_file,
        timeout_s=p.timeout.total_seconds(),
        tenant=p.tenant,
        recording_rules=p.recording_rules,
        step=p.step,
    )
