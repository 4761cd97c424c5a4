"""``slicewise-exporter``: serve per-GPU, per-MIG and per-process metrics for Prometheus, in its exporter style."""

from __future__ import annotations

from pathlib import Path

import click

from slicewise import __version__
from slicewise.cli_support import run
from slicewise.errors import NotImplementedYet


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="slicewise-exporter")
@click.option(
    "--web.listen-address",
    "listen_address",
    default=":10052",
    show_default=True,
    help="Address to listen on ([host]:port).",
)
@click.option("--web.telemetry-path", "telemetry_path", default="/metrics", show_default=True)
@click.option(
    "--web.config.file",
    "web_config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TLS and basic auth config, in the Prometheus exporter-toolkit format.",
)
@click.option(
    "--collector.process.aggregate",
    "aggregate_processes",
    is_flag=True,
    help="Publish process series per workload and device instead of per pid (for nodes with churning pids).",
)
@click.option(
    "--simulate",
    "scenario",
    is_flag=False,
    flag_value="mixed",
    default=None,
    metavar="[SCENARIO]",
    help="Run on a simulated fleet instead of the NVIDIA driver (default scenario: mixed).",
)
@click.option("--node-name", envvar="NODE_NAME", default="", help="Node name for slicewise_gpu_info [env NODE_NAME].")
@click.option(
    "--log.level",
    "log_level",
    type=click.Choice(["debug", "info", "warn", "error"]),
    default="info",
    show_default=True,
)
def cli(
    listen_address: str,
    telemetry_path: str,
    web_config_file: Path | None,
    aggregate_processes: bool,
    scenario: str | None,
    node_name: str,
    log_level: str,
) -> None:
    """Prometheus exporter for NVIDIA GPUs: memory and SM use per GPU, MIG instance and process, by workload."""
    raise NotImplementedYet("slicewise-exporter")


def main(args: list[str] | None = None) -> None:
    run(cli, "slicewise-exporter", args)
