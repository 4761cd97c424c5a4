"""The ``slicewise`` command: advise, backtest, schedule, simulate and demo.

Each subcommand is defined in the package that does the work and only registered here, so the CLI shows the data
flow: ``simulate`` comes from the simulator (beside the exporter), ``advise`` and ``schedule`` from the advisor.
"""

from __future__ import annotations

import click

from advisor.backtest.cli import backtest
from advisor.cli import advise
from advisor.schedule.cli import schedule
from exporter.simulate.cli import simulate
from slicewise import __version__
from slicewise.cli_support import run
from slicewise.demo import demo


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="slicewise")
def cli() -> None:
    """Recommend how to share NVIDIA GPUs (MIG, MPS, time-slicing or a whole GPU) from measured usage.

    Exit codes: 0 success, 1 the job failed, 2 bad usage or bad input.
    """


cli.add_command(advise)
cli.add_command(backtest)
cli.add_command(schedule)
cli.add_command(simulate)
cli.add_command(demo)


def main(args: list[str] | None = None) -> None:
    run(cli, "slicewise", args)
