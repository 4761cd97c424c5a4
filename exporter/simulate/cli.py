"""``slicewise simulate``: write a history file (and its truth file) for a simulated fleet."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click


@click.command()
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="History file to write: .parquet or .csv (by extension), or .om: the series the exporter would have"
    " published, in OpenMetrics for `promtool tsdb create-blocks-from openmetrics`; FILE.truth.csv is written beside"
    " it.",
)
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=14, show_default=True)
@click.option("--gpus", type=click.IntRange(min=1), default=None, help="Number of GPUs (default: the scenario's).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--scenario", default="mixed", show_default=True, help="Named scenario (see the README).")
def simulate(out: Path, days: float, gpus: int | None, seed: int, scenario: str) -> None:
    """Simulate a GPU fleet and write its usage history, deterministic for a seed.

    Scenarios: mixed (the demo fleet), bench-8xh100, h100-mig, a100-mig, timeslice, mps, exclusive. The history
    has one row per minute per workload and device, ending at a fixed date, so the same arguments always write
    the same bytes.
    """
    from exporter.simulate.history import write_history

    if out.suffix.lower() == ".om":  # issue 17: the same history as Prometheus would have scraped it
        from exporter.simulate.openmetrics import simulate_openmetrics

        summary, written = simulate_openmetrics(out, scenario=scenario, days=days, gpus=gpus, seed=seed)
        click.echo(f"wrote {out}: {written.samples} samples in {written.series} series (OpenMetrics)")
    else:
        summary = write_history(out, scenario=scenario, days=days, gpus=gpus, seed=seed)

    def when(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")

    click.echo(
        f"wrote {summary.path}: {summary.rows} rows, {summary.workloads} workloads on {summary.gpus} GPUs, "
        f"{when(summary.start)} to {when(summary.end)} every {summary.step_s} s"
    )
    click.echo(f"truth (each workload's archetype): {summary.truth}")
