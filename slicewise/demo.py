"""``slicewise demo``: the whole job on a simulated fleet, on any machine, no GPU needed."""

from __future__ import annotations

from pathlib import Path

import click

from slicewise.errors import NotImplementedYet


@click.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("slicewise-demo"),
    show_default=True,
    metavar="DIR",
)
@click.option("--live", is_flag=True, help="Run the exporter and a real Prometheus on the simulated fleet.")
def demo(out: Path, live: bool) -> None:
    """Simulate a mixed fleet, run the advisor on it and write the report."""
    raise NotImplementedYet("slicewise demo")
