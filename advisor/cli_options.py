"""The options ``slicewise advise`` and ``slicewise backtest`` share for reading Prometheus: one definition each, so
both commands read the same window the same way."""

from __future__ import annotations

import click

from slicewise.cli_support import Duration

end_option = click.option(
    "--end",
    "end",
    metavar="TIME",
    help="With --prometheus: the window ends here, RFC 3339 (2026-01-15T00:00:00Z) [default: now].",
)
recording_rules_option = click.option(
    "--prometheus.recording-rules",
    "prom_recorded",
    is_flag=True,
    help="Read the per-workload series of deploy/prometheus/slicewise.rules.yml instead of the per-process ones;"
    " fails with a clear message when Prometheus does not have them.",
)
step_option = click.option(
    "--prometheus.step",
    "prom_step",
    type=Duration(),
    help="The resolution: one value per workload and device per step. Longer than a minute, each step reads its"
    " bin: memory's maximum, compute's mean and maximum (docs/prometheus.md; a backtest counts slowdowns on the"
    " mean).  [default: 1m; 5m with --prometheus.recording-rules]",
)
