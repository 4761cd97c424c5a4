"""``slicewise demo --live``: exporters on the simulated fleet and a real Prometheus scraping them, on loopback.

One exporter process per simulated node (one process is one node, as on a real fleet), each on its own port, and
Prometheus (Debian's ``prometheus`` binary, when on PATH) with the scrape config a user would write: a ``node``
target label per exporter and slicewise's rules loaded. Everything runs in a temporary directory that is removed
on exit; Ctrl-C (or SIGTERM) stops every child and waits for it, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
import yaml

from slicewise.errors import JobFailed

SCRAPE_INTERVAL_S = 5


@dataclass(frozen=True)
class ExporterTarget:
    node: str
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class LiveStack:
    """The running processes and where to reach them."""

    workdir: Path
    exporters: list[ExporterTarget]
    prometheus_url: str | None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate every child, then kill what did not exit in time, and reap them all."""
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in self.processes:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rules_dir() -> Path | None:
    """slicewise's Prometheus rules: deploy/prometheus in a source tree, or the copy packaged in the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "deploy" / "prometheus", here / "deploy" / "prometheus"):
        if candidate.is_dir():
            return candidate
    return None


def prometheus_config(exporters: Sequence[ExporterTarget], rule_files: Sequence[Path]) -> dict[str, object]:
    """The scrape config a user would write: one target per node, the node as a target label."""
    return {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": f"{SCRAPE_INTERVAL_S}s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": "slicewise-exporter",  # the job the alerts expect, as in deploy/prometheus
                "static_configs": [{"targets": [e.address], "labels": {"node": e.node}} for e in exporters],
            }
        ],
    }


def _wait_http(url: str, what: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise JobFailed(f"{what} exited with code {proc.returncode} before it served {url}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    raise JobFailed(f"{what} did not answer {url} within {timeout:.0f} s")


def start(scenario: str, nodes: Sequence[str], workdir: Path, prometheus: str | None) -> LiveStack:
    """Start one exporter per node and, when the binary exists, Prometheus; return once all of them answer."""
    stack = LiveStack(workdir=workdir, exporters=[], prometheus_url=None)
    try:
        for node in nodes:
            target = ExporterTarget(node=node, port=free_port())
            log = (workdir / f"exporter-{node}.log").open("wb")
            cmd = [
                sys.executable,
                "-c",
                "from exporter.cli import main; main()",
                f"--simulate={scenario}",
                "--node-name",
                node,
                "--web.listen-address",
                target.address,
            ]
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            stack.processes.append(proc)
            stack.exporters.append(target)
            _wait_http(f"http://{target.address}/metrics", f"the exporter for {node}", proc)
        if prometheus is not None:
            found = rules_dir()
            rules = sorted(found.glob("slicewise.*.yml")) if found else []  # recording rules and alerts
            config = workdir / "prometheus.yml"
            config.write_text(yaml.safe_dump(prometheus_config(stack.exporters, rules), sort_keys=False))
            port = free_port()
            log = (workdir / "prometheus.log").open("wb")
            cmd = [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ]
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            stack.processes.append(proc)
            stack.prometheus_url = f"http://127.0.0.1:{port}"
            _wait_http(f"{stack.prometheus_url}/-/ready", "Prometheus", proc)
    except BaseException:
        stack.stop()
        raise
    return stack


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so both end the wait the same way."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(scenario: str, nodes: Sequence[str], say: Callable[[str], None] = print) -> None:
    """Run the live stack until Ctrl-C or SIGTERM, printing where everything is."""
    prometheus = shutil.which("prometheus")
    with tempfile.TemporaryDirectory(prefix="slicewise-live-") as tmp, _stop_on_signals():
        stack = start(scenario, nodes, Path(tmp), prometheus)
        try:
            say(f"slicewise live demo: scenario {scenario!r}, {len(nodes)} simulated nodes")
            for e in stack.exporters:
                say(f"  exporter {e.node:<16} http://{e.address}/metrics")
            if stack.prometheus_url:
                say(f"  prometheus       {stack.prometheus_url}  (rules loaded, scrape every {SCRAPE_INTERVAL_S} s)")
                say(f"  try: {stack.prometheus_url}/graph?g0.expr=slicewise_gpu_memory_used_bytes")
            else:
                say("  prometheus: not started: the `prometheus` binary is not on PATH")
                say("              (Debian/Ubuntu: sudo apt-get install prometheus), then run this again")
            say("Press Ctrl-C to stop.")
            while True:
                for proc in stack.processes:
                    if proc.poll() is not None:
                        raise JobFailed(f"a child process exited with code {proc.returncode}: see its log above")
                time.sleep(0.5)
        except KeyboardInterrupt:
            say("stopping ...")
        finally:
            stack.stop()
    say("stopped: every process has exited")
