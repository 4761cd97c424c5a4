"""``slicewise-exporter``: serve per-GPU, per-MIG and per-process metrics for Prometheus, in its exporter style."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from slicewise import __version__
from slicewise.cli_support import Duration, run

_LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
_DEFAULT_ORDER = "kubernetes,container,slurm,systemd,user"


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
@click.option(
    "--simulate.driver",
    "simulate_driver",
    default=None,
    metavar="PROFILE",
    help="With --simulate: the simulated node's driver release (470, 525, 535.54, 535.98, 550, 580; default 550).",
)
@click.option(
    "--simulate.unprivileged",
    "simulate_unprivileged",
    is_flag=True,
    help="With --simulate: answer as NVML answers an unprivileged container (NO_PERMISSION on MIG-parent memory).",
)
@click.option("--node-name", envvar="NODE_NAME", default="", help="Node name for slicewise_gpu_info [env NODE_NAME].")
@click.option(
    "--path.procfs",
    "procfs",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("/proc"),
    show_default=True,
    help="procfs mount point (the host's /proc mounted at e.g. /host/proc when running in a container).",
)
@click.option(
    "--path.rootfs",
    "rootfs",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("/"),
    show_default=True,
    help="The host's root filesystem, for user names from its /etc/passwd (e.g. /host/root in a container).",
)
@click.option(
    "--attribution.order",
    "attribution_order",
    default=_DEFAULT_ORDER,
    show_default=True,
    help="Which source names a process's workload first; 'user' (<user>/<command>) is always last.",
)
@click.option(
    "--kubernetes",
    "kubernetes",
    type=click.Choice(["auto", "off"]),
    default="auto",
    show_default=True,
    help="auto: read pods from the API server when in a cluster (or given --kubernetes.kubeconfig).",
)
@click.option(
    "--kubernetes.kubeconfig",
    "kubeconfig",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Use this kubeconfig instead of the in-cluster service account.",
)
@click.option(
    "--kubernetes.refresh-interval",
    "kubernetes_refresh",
    type=Duration(),
    default="30s",
    show_default=True,
    help="How often this node's pods are listed again (new pods are also looked up when first seen).",
)
@click.option(
    "--container.socket",
    "container_socket",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Docker Engine API socket for names of containers outside Kubernetes (Docker or Podman).",
)
@click.option(
    "--nvml.retry-interval",
    "nvml_retry",
    type=Duration(),
    default="10s",
    show_default=True,
    help="While the driver is not ready, how often a scrape tries to initialise NVML again.",
)
@click.option(
    "--nvml.exit-after-failures",
    "nvml_exit_after",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="Exit 1 after this many failed NVML initialisations in a row (0: never), and at once on a driver/library "
    "version mismatch, so that a restarted exporter loads the new driver.",
)
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
    simulate_driver: str | None,
    simulate_unprivileged: bool,
    node_name: str,
    procfs: Path,
    rootfs: Path,
    attribution_order: str,
    kubernetes: str,
    kubeconfig: Path | None,
    kubernetes_refresh: object,
    container_socket: Path | None,
    nvml_retry: object,
    nvml_exit_after: int,
    log_level: str,
) -> None:
    """Prometheus exporter for NVIDIA GPUs: memory and SM use per GPU, MIG instance and process, by workload."""
    from datetime import timedelta

    from exporter.app import ExporterOptions, build_exporter
    from exporter.attribution.precedence import parse_order
    from exporter.web.config import WebConfig, load_web_config
    from slicewise.errors import BadInput, JobFailed

    logging.basicConfig(
        level=_LOG_LEVELS[log_level],
        format="ts=%(asctime)s level=%(levelname)s source=%(name)s msg=%(message)s",
        stream=sys.stderr,
    )
    assert isinstance(kubernetes_refresh, timedelta) and isinstance(nvml_retry, timedelta)
    if not telemetry_path.startswith("/"):
        raise click.BadParameter("must start with /", param_hint="--web.telemetry-path")
    if scenario is None and (simulate_driver is not None or simulate_unprivileged):
        raise BadInput("--simulate.driver and --simulate.unprivileged need --simulate")
    options = ExporterOptions(
        listen_address=listen_address,
        telemetry_path=telemetry_path,
        web_config=load_web_config(web_config_file) if web_config_file else WebConfig(),
        aggregate_processes=aggregate_processes,
        scenario=scenario,
        node_name=node_name,
        procfs=procfs,
        rootfs=rootfs,
        order=parse_order(attribution_order),
        kubernetes=kubernetes,
        kubeconfig=kubeconfig,
        kubernetes_refresh_s=kubernetes_refresh.total_seconds(),
        container_socket=container_socket,
        nvml_retry_s=nvml_retry.total_seconds(),
        nvml_exit_after_failures=nvml_exit_after,
        simulate_driver=simulate_driver,
        simulate_unprivileged=simulate_unprivileged,
    )
    exporter = build_exporter(options)
    log = logging.getLogger("slicewise-exporter")

    def stop(signum: int, frame: FrameType | None) -> None:
        # SIGTERM: stop serving and exit 0, as a daemon asked to stop should. The server is told to stop from another
        # thread (shutdown() waits for the serving loop, which runs in this one); nothing is interrupted midway.
        log.info("SIGTERM: shutting down")
        threading.Thread(target=exporter.stop_serving, name="sigterm", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)

    def give_up(message: str) -> None:
        # NVML can never come up in this process (see exporter.nvml.session): stop serving, then exit 1 below.
        threading.Thread(target=exporter.stop_serving, name="nvml-fatal", daemon=True).start()

    exporter.session.on_fatal = give_up
    log.info(
        "listening on %s%s (node %r%s)",
        exporter.url,
        telemetry_path,
        exporter.node_name,
        f", simulated scenario {scenario!r}, driver {simulate_driver or 'default'}"
        f"{', unprivileged' if simulate_unprivileged else ''}"
        if scenario
        else "",
    )
    try:
        exporter.serve_forever()
    finally:
        exporter.close()
    if exporter.session.fatal is not None:
        raise JobFailed(exporter.session.fatal)


def main(args: list[str] | None = None) -> None:
    run(cli, "slicewise-exporter", args)
