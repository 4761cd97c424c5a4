"""``slicewise advise``: read history (a file or Prometheus), recommend, write the report.

Exit codes: 0 success; 1 the job failed (Prometheus unreachable, the report could not be written); 2 bad usage or
bad input (a missing or corrupt history file, a bad flag). Nothing in --out changes unless the whole run succeeds.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from advisor.cli_options import end_option, recording_rules_option, step_option
from slicewise.cli_support import Duration, parse_end
from slicewise.redact import redact_url

if TYPE_CHECKING:
    from advisor.backtest.model import BacktestResult
    from advisor.history.connection import PrometheusConnection
    from advisor.model import Recommendation

PASSWORD_ENV = "SLICEWISE_PROMETHEUS_PASSWORD"
BEARER_ENV = "SLICEWISE_PROMETHEUS_BEARER_TOKEN"


@click.command()
@click.option("--prometheus", "prometheus_url", metavar="URL", help="Prometheus (or Thanos, Mimir) base URL.")
@click.option(
    "--history",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="History file (.parquet or .csv) in DESIGN.md's format.",
)
@click.option("--window", type=Duration(), default="14d", show_default=True, help="How much history to use.")
@end_option
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    metavar="DIR",
    help="Write recommendation.json, reports, configs and advisor.prom here (atomically).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "markdown", "html"]),
    default="text",
    show_default=True,
    help="What to print on standard output.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the clustering.")
@click.option(
    "--backtest/--no-backtest",
    "with_backtest",
    default=True,
    show_default=True,
    help="With --history: also fit the advice at earlier origins and replay what came after (docs/backtest.md).",
)
@click.option("--prometheus.username", "prom_username", metavar="USER", help="Basic auth user for --prometheus.")
@click.option(
    "--prometheus.password-file",
    "prom_password_file",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help=f"Basic auth password, read from this file [or env {PASSWORD_ENV}].",
)
@click.option(
    "--prometheus.bearer-token-file",
    "prom_bearer_file",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help=f"Bearer token (Thanos, Mimir, a proxy), read from this file [or env {BEARER_ENV}].",
)
@click.option(
    "--prometheus.ca-file",
    "prom_ca_file",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="CA certificate(s) that signed the server's certificate, for a private CA.",
)
@click.option(
    "--prometheus.timeout",
    "prom_timeout",
    type=Duration(),
    default="60s",
    show_default=True,
    help="Per request. A query slower than this is reported, not retried; refused connections and 502/503/429"
    " answers are retried 3 times with backoff.",
)
@click.option(
    "--prometheus.tenant",
    "prom_tenant",
    metavar="TENANT",
    help="Send X-Scope-OrgID: TENANT (Mimir, Cortex, multi-tenant Thanos).",
)
@recording_rules_option
@click.option(
    "--prometheus.max-samples",
    "prom_max_samples",
    type=click.IntRange(min=10_000),
    default=10_000_000,
    show_default=True,
    help="Most samples one query may make the server hold; the window is cut into chunks to stay under it.",
)
@step_option
def advise(
    prometheus_url: str | None,
    history: Path | None,
    window: timedelta,
    out: Path | None,
    output_format: str,
    seed: int,
    with_backtest: bool,
    prom_username: str | None,
    prom_password_file: Path | None,
    prom_bearer_file: Path | None,
    prom_ca_file: Path | None,
    prom_timeout: timedelta,
    end: str | None,
    prom_tenant: str | None,
    prom_recorded: bool,
    prom_max_samples: int,
    prom_step: timedelta | None,
) -> None:
    """Recommend MIG, MPS, time-slicing or a whole GPU per workload class, with a fleet plan and configs."""
    if (prometheus_url is None) == (history is None):
        raise click.UsageError("give exactly one of --prometheus URL or --history FILE")
    if prometheus_url is not None and not prometheus_url.startswith(("http://", "https://")):
        shown = redact_url(prometheus_url)
        raise click.BadParameter(f"{shown!r} is not an http:// or https:// URL", param_hint="--prometheus")

    from advisor.output import read_previous, write_out
    from advisor.pipeline import recommend

    source: PrometheusConnection | Path
    if prometheus_url is not None:
        connection = _connection(
            prometheus_url, prom_username, prom_password_file, prom_bearer_file, prom_ca_file, prom_timeout
        )
        source = replace(
            connection,
            tenant=prom_tenant,
            recording_rules=prom_recorded,
            max_samples_per_query=prom_max_samples,
            step=prom_step,
        )
    else:
        prom_options = (prom_username, prom_password_file, prom_bearer_file, prom_ca_file, prom_tenant, prom_step)
        if prom_recorded or any(option is not None for option in prom_options):
            raise click.UsageError("the --prometheus.* options go with --prometheus URL, not --history")
        if end is not None:
            raise click.UsageError("--end goes with --prometheus (a history file's window ends at its last sample)")
        assert history is not None
        source = history
    from advisor.backtest.advise import advise_prometheus_with_backtest, advise_with_backtest

    backtest: BacktestResult | None
    if isinstance(source, Path) and with_backtest:  # it replays the file's rows (advisor/backtest)
        rec, backtest = advise_with_backtest(source, window, seed)
    elif not isinstance(source, Path):  # the rows behind Prometheus's answers, where kept (timeline.py)
        moment = parse_end(end) if end is not None else None
        rec, backtest = advise_prometheus_with_backtest(source, window, seed, moment, replay=with_backtest)
    else:
        rec = recommend(source, window, seed)
        backtest = None
    previous = read_previous(out) if out is not None else None
    if out is not None:
        write_out(rec, out, previous, backtest)
    click.echo(_render(rec, output_format, previous, backtest), nl=False)
    if out is not None:
        click.echo(f"slicewise: wrote the report, configs and advisor.prom to {out}", err=True)


def _connection(
    url: str,
    username: str | None,
    password_file: Path | None,
    bearer_file: Path | None,
    ca_file: Path | None,
    timeout: timedelta,
) -> PrometheusConnection:
    """Secrets from a file or the environment, never a flag's value (other users see it in ``ps``)."""
    import os

    from advisor.history.connection import PrometheusConnection
    from slicewise.secrets import read_secret

    password = bearer = None
    if username is not None:
        env = None if password_file is not None else PASSWORD_ENV
        if env is not None and env not in os.environ:
            raise click.UsageError(f"--prometheus.username needs --prometheus.password-file or {PASSWORD_ENV}")
        password = read_secret("Prometheus password", env, password_file).reveal()
    elif password_file is not None:
        raise click.UsageError("--prometheus.password-file needs --prometheus.username")
    if bearer_file is not None or os.environ.get(BEARER_ENV):
        env = None if bearer_file is not None else BEARER_ENV
        bearer = read_secret("Prometheus bearer token", env, bearer_file).reveal()
    return PrometheusConnection(
        url,
        username=username,
        password=password,
        bearer_token=bearer,
        ca_file=ca_file,
        timeout_s=timeout.total_seconds(),
    )


def _render(
    rec: Recommendation, output_format: str, previous: Recommendation | None, backtest: BacktestResult | None = None
) -> str:
    if output_format == "json":
        return rec.to_json() + "\n"
    from advisor import report

    if output_format == "html":
        return report.render_html(rec, previous, backtest=backtest).document
    if output_format == "markdown":
        return report.render_markdown(rec, previous, backtest=backtest)
    return report.render_text(rec, previous, backtest=backtest)
