"""``slicewise simulate``: write a history file (and its truth file) for a simulated fleet."""

from __future__ import annotations

from pathlib import Path

import click

from slicewise.errors import NotImplementedYet


@click.command()
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="History file to write: .parquet or .csv (by extension); FILE.truth.csv is written beside it.",
)
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=14, show_default=True)
@click.option("--gpus", type=click.IntRange(min=1), default=None, help="Number of GPUs (default: the scenario's).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--scenario", default="mixed", show_default=True, help="Named scenario (see the README).")
def simulate(out: Path, days: float, gpus: int | None, seed: int, scenario: str) -> None:
    """Simulate a GPU fleet and write its usage history, deterministic for a seed."""
    raise NotImplementedYet("slicewise simulate")
