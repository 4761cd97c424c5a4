"""``slicewise backtest``: would last period's advice have held? Fit before an origin, replay the samples after it.

Exit codes as everywhere: 0 success; 1 the job failed (the file could not be written, Prometheus has no rows to
replay); 2 bad usage or bad input (a missing or corrupt history file, an origin outside the history).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from advisor.cli_options import end_option, recording_rules_option, step_option
from slicewise.cli_support import Duration, parse_end

BACKTEST_FILE = "backtest.json"


@click.command()
@click.option(
    "--history",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="History file (.parquet or .csv) in DESIGN.md's format.",
)
@click.option("--prometheus", "prometheus_url", metavar="URL", help="Prometheus base URL (needs history rows).")
@click.option(
    "--origin",
    "origins",
    multiple=True,
    metavar="WHEN",
    help="Where to cut: 50%, 0.7 or an ISO 8601 time; repeat for several. "
    "[default: 50% and 70%, or every week of a history of 3 weeks or more]",
)
@click.option(
    "--window", type=Duration(), default="14d", show_default=True, help="History before each origin the advice uses."
)
@click.option("--horizon", type=Duration(), help="How long after each origin to replay [default: to the end].")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    metavar="DIR",
    help=f"Write {BACKTEST_FILE} here (atomically).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="What to print on standard output.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the clustering.")
@end_option
@recording_rules_option
@step_option
def backtest(
    history: Path | None,
    prometheus_url: str | None,
    origins: tuple[str, ...],
    window: timedelta,
    horizon: timedelta | None,
    out: Path | None,
    output_format: str,
    seed: int,
    end: str | None,
    prom_recorded: bool,
    prom_step: timedelta | None,
) -> None:
    """Advise on the history before an origin and replay the samples after it: OOMs, slowdowns, GPUs."""
    from advisor.backtest import parse_origin, run_backtest
    from advisor.backtest.model import NEEDS_ROWS
    from advisor.backtest.text import render_text
    from slicewise.errors import JobFailed

    if (prometheus_url is None) == (history is None):
        raise click.UsageError("give exactly one of --history FILE or --prometheus URL")
    if history is not None and (end is not None or prom_recorded or prom_step is not None):
        raise click.UsageError("--end and the --prometheus.* options go with --prometheus URL, not --history")
    cuts = [parse_origin(o) for o in origins]  # a bad origin fails before the history is read
    if prometheus_url is not None:
        from advisor.history.connection import PrometheusConnection
        from advisor.pipeline import load

        # the connection checks the URL (http(s) only) and takes any user:password@ out of it, so no message
        # below can show it
        connection = PrometheusConnection(prometheus_url, recording_rules=prom_recorded, step=prom_step)
        # the samples behind Prometheus's answers over the window ending at --end (advisor/history/timeline.py)
        rows = load(connection, window, parse_end(end) if end is not None else None).rows
        if rows is None:
            raise JobFailed(f"{connection.url}: backtest {NEEDS_ROWS}")
        source = connection.url
    else:
        assert history is not None
        from advisor.history import read_history

        rows, source = read_history(history), str(history)
    result = run_backtest(rows, cuts or None, window=window, seed=seed, horizon=horizon, source=source)
    if out is not None:
        write_backtest(out, result.to_json())
    click.echo(result.to_json() if output_format == "json" else render_text(result), nl=output_format == "json")
    if out is not None:
        click.echo(f"slicewise: wrote {out / BACKTEST_FILE}", err=True)


def write_backtest(out: Path, text: str) -> None:
    """``backtest.json`` in ``out``, atomically (the report beside it is left as it is)."""
    from slicewise.atomic import write_bytes
    from slicewise.errors import JobFailed

    if out.exists() and not out.is_dir():
        raise JobFailed(f"{out}: exists and is not a directory")
    try:
        write_bytes(out / BACKTEST_FILE, text.encode() + b"\n")
    except OSError as exc:
        raise JobFailed(f"cannot write {out / BACKTEST_FILE}: {exc}") from exc
