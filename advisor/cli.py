"""``slicewise advise``: read history (a file or Prometheus), recommend, write the report.

Exit codes: 0 success; 1 the job failed (Prometheus unreachable, the report could not be written); 2 bad usage or
bad input (a missing or corrupt history file, a bad flag). Nothing in --out changes unless the whole run succeeds.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from slicewise.cli_support import Duration

if TYPE_CHECKING:
    from advisor.model import Recommendation


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
    if prometheus_url is not None and not prometheus_url.startswith(("http://", "https://")):
        raise click.BadParameter(f"{prometheus_url!r} is not an http:// or https:// URL", param_hint="--prometheus")

    from advisor.output import read_previous, write_out
    from advisor.pipeline import recommend

    source: str | Path
    if prometheus_url is not None:
        source = prometheus_url
    else:
        assert history is not None
        source = history
    rec = recommend(source, window, seed)
    previous = read_previous(out) if out is not None else None
    if out is not None:
        write_out(rec, out, previous)
    click.echo(_render(rec, output_format, previous), nl=False)
    if out is not None:
        click.echo(f"slicewise: wrote the report, configs and advisor.prom to {out}", err=True)


def _render(rec: Recommendation, output_format: str, previous: Recommendation | None) -> str:
    if output_format == "json":
        return rec.to_json() + "\n"
    from advisor import report

    if output_format == "html":
        return report.render_html(rec, previous).document
    if output_format == "markdown":
        return report.render_markdown(rec, previous)
    return report.render_text(rec, previous)
