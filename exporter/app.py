"""Wire one exporter process together: NVML (or a simulated fleet), attribution, the collector and the server.

The CLI only parses flags into ``ExporterOptions`` and calls ``build_exporter``; tests and benchmarks build the same
thing in-process, so what they measure is what users run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, ProcessCollector

from exporter.attribution.attributor import Attributor
from exporter.attribution.precedence import DEFAULT_ORDER, ContainerNames, Step
from exporter.attribution.procfs import ProcFs
from exporter.attribution.sources import PodDirectory, ProcSource
from exporter.collector import CollectorOptions, SlicewiseCollector
from exporter.nvml.profiles import ProfileTables
from exporter.nvml.reader import NvmlReader
from exporter.nvml.session import NvmlSession
from exporter.web.auth import BasicAuth
from exporter.web.config import WebConfig
from exporter.web.listener import ExporterServer
from exporter.web.server import build_server, make_app
from exporter.web.stats import HttpStats
from slicewise.errors import BadInput

if TYPE_CHECKING:  # imported where used: the kubernetes client alone costs ~35 MiB of RSS off Kubernetes
    from exporter.attribution.kubernetes import KubernetesPodDirectory


class Background(Protocol):
    """A cache with a refresh thread (pods from the API server, container names from Docker)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExporterOptions:
    listen_address: str = ":10052"
    telemetry_path: str = "/metrics"
    web_config: WebConfig = field(default_factory=WebConfig)
    aggregate_processes: bool = False
    scenario: str | None = None
    node_name: str = ""
    procfs: Path = Path("/proc")
    rootfs: Path = Path("/")
    order: tuple[Step, ...] = DEFAULT_ORDER
    kubernetes: str = "auto"  # auto | off
    kubeconfig: Path | None = None
    kubernetes_refresh_s: float = 30.0
    container_socket: Path | None = None
    nvml_retry_s: float = 10.0
    nvml_exit_after_failures: int = 30  # 0: never exit (see exporter.nvml.session)
    simulate_driver: str | None = None  # a driver profile of exporter.simulate.drivers (default: the fleet's)
    simulate_unprivileged: bool = False


@dataclass
class Exporter:
    collector: SlicewiseCollector
    registry: CollectorRegistry
    session: NvmlSession
    reader: NvmlReader
    node_name: str
    background: list[Background] = field(default_factory=list)  # caches refreshed by their own threads
    server: ExporterServer | None = None
    simulation: Any = None  # the simulator's Attachment (its fleet answers NVML), detached on close
    _serving: bool = False

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        scheme = "https" if self.server.tls else "http"
        host = str(host)
        if host in ("::", "0.0.0.0"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{port}"

    def serve_forever(self) -> None:
        assert self.server is not None
        self._serving = True
        try:
            self.server.serve_forever()
        finally:
            self._serving = False

    def stop_serving(self) -> None:
        """Make ``serve_forever`` return (call from another thread than the one serving)."""
        if self.server is not None and self._serving:
            self.server.shutdown()

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="exporter-http", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Stop everything started; safe to call more than once."""
        if self.server is not None:
            if self._serving:
                self.server.shutdown()  # waits for serve_forever to return; never called unless it ran
            self.server.server_close()
            self.server = None
        while self.background:
            self.background.pop().stop()
        self.reader.close()
        self.session.shutdown()
        if self.simulation is not None:
            self.simulation.detach()
            self.simulation = None


def _kubernetes_directory(options: ExporterOptions, node_name: str) -> KubernetesPodDirectory | None:
    if options.kubernetes == "off" or Step.KUBERNETES not in options.order:
        return None
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    if options.kubeconfig is None and not in_cluster:
        return None
    if not node_name:
        raise BadInput(
            "Kubernetes attribution needs this node's name: set --node-name or NODE_NAME (downward API "
            "spec.nodeName), or turn it off with --kubernetes=off"
        )
    from kubernetes import client, config

    from exporter.attribution.kubernetes import KubernetesPodDirectory

    try:
        if options.kubeconfig is not None:
            api = config.new_client_from_config(config_file=str(options.kubeconfig))
        else:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            api = client.ApiClient(configuration)
    except (config.ConfigException, OSError, ValueError) as exc:
        where = options.kubeconfig or "in-cluster service account"
        raise BadInput(f"Kubernetes API configuration ({where}) is unusable: {exc}") from exc
    return KubernetesPodDirectory(api, node_name, refresh_interval_s=options.kubernetes_refresh_s)


@dataclass
class _Sources:
    """Where attribution reads from, and what of it runs in the background."""

    procs: ProcSource
    pods: PodDirectory | None
    containers: ContainerNames | None
    node_name: str
    directory: KubernetesPodDirectory | None = None
    background: list[Background] = field(default_factory=list)
    attachment: Any = None  # the simulator's, under --simulate


def _sources(options: ExporterOptions, fleet: Any) -> _Sources:
    if options.scenario is not None or fleet is not None:
        from exporter.simulation import attach_scenario

        attachment, node = attach_scenario(
            options.scenario or "",
            options.node_name or None,
            fleet,
            driver=options.simulate_driver,
            unprivileged=options.simulate_unprivileged,
        )
        containers = node.container_names if Step.CONTAINER in options.order else None
        return _Sources(node.proc_source, node.pod_directory, containers, node.name, attachment=attachment)
    passwd = options.rootfs / "etc/passwd" if options.rootfs != Path("/") else None
    found = _Sources(ProcFs(options.procfs, passwd), None, None, options.node_name)
    found.directory = found.pods = _kubernetes_directory(options, options.node_name)
    if found.directory is not None:
        found.background.append(found.directory)
    if options.container_socket is not None and Step.CONTAINER in options.order:
        from exporter.attribution.containers import DockerContainerNames

        docker = DockerContainerNames(options.container_socket)
        found.containers = docker
        found.background.append(docker)
    return found


def build_exporter(options: ExporterOptions, serve: bool = True, fleet: Any = None) -> Exporter:
    """Everything but the serving loop; ``serve=False`` skips binding the port (benchmarks, tests of collect).

    ``fleet``: an already built simulated fleet to attach instead of building ``options.scenario`` (tests that
    compare the scrape with the fleet's own state, benchmarks that give two exporters the same fleet). On any
    failure, what was started is stopped again (the simulator detached), so a caller can try again.
    """
    sources = _sources(options, fleet)
    simulation = sources.attachment
    # A simulated fleet's driver lives on the fleet's clock (a test's manual clock, or wall time): follow it.
    clock = simulation.fleet.clock.now if simulation is not None else time.monotonic
    session = NvmlSession(
        retry_interval_s=options.nvml_retry_s, clock=clock, exit_after_failures=options.nvml_exit_after_failures
    )
    reader = NvmlReader(session, clock=clock)
    collector = SlicewiseCollector(
        reader,
        Attributor(sources.procs, sources.pods, sources.containers, order=options.order),
        CollectorOptions(node_name=sources.node_name, aggregate_processes=options.aggregate_processes),
        kubernetes=sources.directory,
        profiles=ProfileTables(),
    )
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    exporter = Exporter(collector, registry, session, reader, sources.node_name, simulation=simulation)
    try:
        session.start()  # raises NoDriver (exit 1) when there is no driver at all
        for cache in sources.background:
            cache.start()
            exporter.background.append(cache)
        # One read now, so the first scrape already covers an interval: GPM and per-process SM activity are
        # differences since the previous read, and without it the first scrape would have none.
        collector.collect()
        if serve:
            auth = BasicAuth(options.web_config.basic_auth_users) if options.web_config.basic_auth_users else None
            headers = list(options.web_config.http_server_config.headers.items())
            stats = HttpStats()  # published with the rest: slicewise_exporter_http_errors_total{reason}
            registry.register(stats)
            app = make_app(registry, options.telemetry_path, auth, headers, stats)
            exporter.server = build_server(options.listen_address, app, options.web_config, stats)
    except BaseException:
        exporter.close()
        raise
    return exporter
