"""``slicewise advise``: read history (a file or Prometheus), recommend, write the report."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from slicewise.cli_support import Duration
from slicewise.errors import NotImplementedYet


@click.command()
@click.option("--prometheus", "prometheus_url", metavar="URL", help="Prometheus (or Thanos, Mimir) base URL.")
@click.option(
    "--history",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="History file (.parquet or .csv) in DESIGN.md's format.",
)
@click.option("--window", type=Duration(), default="14d", show_default=True, help="How much history to use.")
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
def advise(
    prometheus_url: str | None,
    history: Path | None,
    window: timedelta,
    out: Path | None,
    output_format: str,
    seed: int,
) -> None:
    """Recommend MIG, MPS, time-slicing or a whole GPU per workload class, with a fleet plan and configs."""
    if (prometheus_url is None) == (history is None):
        raise click.UsageError("give exactly one of --prometheus URL or --history FILE")
    raise NotImplementedYet("slicewise advise")
