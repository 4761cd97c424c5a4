"""``slicewise schedule``: run the advisor on a schedule and deliver the report by email and Slack."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from slicewise.errors import JobFailed


def _logging() -> None:
    """Timestamped lines on standard error, unless the embedding program configured logging already."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


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
    """Run the advisor weekly (APScheduler) and deliver its report to email and Slack, exactly once each.

    The config names the source (a history file or Prometheus), the window, the cron schedule and time zone, the
    output and state directories, the email recipients and the Slack webhook or bot; secrets come from
    environment variables or files named there. A run missed while the scheduler was down happens once when it
    starts again. With --once, the current period's cycle runs now: destinations that already have this period's
    report are skipped, so --once is also how to retry by hand. Exit codes: 0 done, 1 a delivery or the advisor
    failed (the next cycle retries), 2 a bad config or a missing secret.
    """
    from advisor.schedule.config import load_config
    from advisor.schedule.cycle import channels_of, run_cycle
    from advisor.schedule.scheduler import serve

    config = load_config(config_path)
    channels = channels_of(config)  # every secret is read now: a missing one is exit 2 before anything runs
    _logging()
    if not once:
        serve(config, config_path)
        return
    result = run_cycle(config, channels=channels)
    click.echo(result.summary())
    if not result.delivery.complete:
        owed = ", ".join(o.destination for o in result.delivery.failed)
        raise JobFailed(f"report {result.period} is still owed to {owed}; run again (or let the schedule retry)")
