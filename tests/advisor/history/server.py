"""A real Prometheus (Debian's package) on a free loopback port, its TSDB made by promtool from OpenMetrics text."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from tests.support import free_port, require_binary


def backfill(openmetrics: Path, data: Path) -> Path:
    """``promtool tsdb create-blocks-from openmetrics``: the samples as TSDB blocks in ``data``."""
    subprocess.run(
        [require_binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(data)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return data


def backfill_rules(url: str, rules: Path, start: datetime, end: datetime, data: Path, workdir: Path) -> None:
    """``promtool tsdb create-blocks-from rules`` against the server at ``url``, blocks moved into ``data``.

    promtool evaluates each rule on its own, so a rule that reads another rule's series needs a second pass after
    the server has loaded the first pass's blocks (restart it in between).
    """
    out = workdir / f"rules-{time.monotonic_ns()}"
    subprocess.run(
        [
            require_binary("promtool"),
            "tsdb",
            "create-blocks-from",
            "rules",
            f"--start={int(start.timestamp())}",
            f"--end={int(end.timestamp())}",
            f"--url={url}",
            "--eval-interval=60s",
            f"--output-dir={out}",
            str(rules),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    for block in out.iterdir():
        shutil.move(str(block), str(data / block.name))


@dataclass(frozen=True)
class WebConfig:
    """Prometheus's own ``--web.config.file`` (TLS, basic auth), and how the readiness probe gets past it."""

    path: Path
    auth: tuple[str, str] | None = None
    verify: ssl.SSLContext | None = None  # the CA that signed the server's certificate


@contextmanager
def prometheus_serving(
    data: Path, workdir: Path, lookback: str | None = None, web: WebConfig | None = None
) -> Iterator[str]:
    """Serve the TSDB in ``data``, yield the base URL; the server is stopped after.

    Backfilled series have no staleness markers, so a gap in them would be bridged by the 5-minute lookback; a
    ``lookback`` below the sampling step (e.g. "59s") makes the server treat gaps as a live Prometheus does.
    With ``web`` it serves behind that web config (https:// when it has a CA to verify against).
    """
    prometheus = require_binary("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\n")
    port = free_port()
    scheme = "https" if web is not None and web.verify is not None else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    log_path = workdir / "prometheus.log"
    with log_path.open("a") as log:
        server = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                "--storage.tsdb.retention.time=100y",  # the backfilled samples may be older than the default 15 days
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
                *([f"--query.lookback-delta={lookback}"] if lookback else []),
                *([f"--web.config.file={web.path}"] if web is not None else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    ready = httpx.get(
                        f"{url}/-/ready",
                        auth=web.auth if web is not None else None,
                        verify=web.verify if web is not None and web.verify is not None else True,
                        timeout=2,
                    )
                    if ready.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Prometheus did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.2)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@contextmanager
def prometheus_loaded_with(openmetrics: Path, workdir: Path, lookback: str | None = None) -> Iterator[str]:
    """Backfill ``openmetrics`` into a new TSDB and serve it (``prometheus_serving``)."""
    data = backfill(openmetrics, workdir / "tsdb")
    with prometheus_serving(data, workdir, lookback) as url:
        yield url
