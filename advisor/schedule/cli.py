"""``slicewise schedule``: run the advisor on a schedule and deliver the report by email and Slack."""

from __future__ import annotations

from pathlib import Path

import click

from slicewise.errors import NotImplementedYet


@click.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Schedule config (YAML): source, window, schedule, recipients, channels.",
)
@click.option("--once", is_flag=True, help="Run one cycle now and exit, instead of waiting for the schedule.")
def schedule(config_path: Path, once: bool) -> None:
    """Run the advisor weekly (APScheduler) and deliver its report to email and Slack, exactly once each."""
    raise NotImplementedYet("slicewise schedule")
