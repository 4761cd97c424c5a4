"""Real servers for the end-to-end test: exporters, Prometheus and a Pushgateway on free loopback ports.

Each runs as a child process with its output in a log file. ``running`` starts them all at once (so their start-up
times overlap), waits until each answers its readiness URL, and on leaving stops them (SIGTERM, then SIGKILL) and
waits for them, so a failing test leaves nothing running. A server that dies or never answers fails the test with
the tail of its log.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support import free_port


@dataclass(frozen=True)
class ServerSpec:
    name: str
    argv: tuple[str, ...]
    address: str  # host:port it listens on
    ready_path: str  # answers 200 once it is ready
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.address}"


def loopback() -> str:
    return f"127.0.0.1:{free_port()}"


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def _wait_ready(spec: ServerSpec, process: subprocess.Popen[bytes], deadline: float) -> None:
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{spec.name} exited with {process.returncode}:\n{_tail(spec.log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{spec.url}{spec.ready_path}", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{spec.name} did not answer {spec.ready_path} in time:\n{_tail(spec.log)}")
        time.sleep(0.2)


@contextlib.contextmanager
def running(specs: Sequence[ServerSpec], timeout: float = 90) -> Iterator[None]:
    """Start every server, wait until all are ready, and stop them all on the way out."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for spec in specs:
            with spec.log.open("wb") as out:
                processes.append(subprocess.Popen(spec.argv, stdout=out, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + timeout
        for spec, process in zip(specs, processes, strict=True):
            _wait_ready(spec, process, deadline)
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def prometheus_config(
    exporters: Mapping[str, str], pushgateway: str, rule_files: Sequence[Path], interval_s: int
) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml's scrape config, on loopback and with a short interval."""
    return {
        "global": {"scrape_interval": f"{interval_s}s", "evaluation_interval": f"{interval_s}s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {
                "job_name": "slicewise-exporter",
                "static_configs": [
                    {"targets": [address], "labels": {"node": node}} for node, address in sorted(exporters.items())
                ],
            },
            {"job_name": "pushgateway", "honor_labels": True, "static_configs": [{"targets": [pushgateway]}]},
        ],
    }


def write_yaml(path: Path, content: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(content), sort_keys=False))
    return path


class PrometheusClient:
    """The HTTP API calls Grafana makes for these dashboards (instant and range queries, label values), and rules."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)

    def _call(self, path: str, params: Mapping[str, Any]) -> Any:
        response = (
            self.http.post(path, data=dict(params))
            if path.endswith(("query", "query_range"))
            else (self.http.get(path, params=dict(params)))
        )
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"{path} {dict(params)} -> {response.status_code}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._call("/api/v1/query", params)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return list(
            self._call("/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step})["result"]
        )

    def label_values(self, label: str, match: str | None, start: float, end: float) -> list[str]:
        params: dict[str, Any] = {"start": start, "end": end}
        if match:
            params["match[]"] = match
        return sorted(self._call(f"/api/v1/label/{label}/values", params))

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self._call("/api/v1/rules", {})["groups"] for rule in group["rules"]]

    def close(self) -> None:
        self.http.close()
