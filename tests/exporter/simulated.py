"""Run the exporter in-process on a simulated fleet over real HTTP(S), and read the simulator's own truth.

The truth is the simulator's history writer evaluated at the scrape's instant: the same workload models, through
the simulator's public API, give each workload's memory and SM share on each device at that second, under the
workload name the simulator intends attribution to find.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from exporter.app import Exporter, ExporterOptions, build_exporter
from exporter.simulate import ANCHOR, ManualClock, build_scenario
from exporter.simulate.history import write_history
from exporter.web.config import WebConfig
from tests.support import free_port

AFTERNOON = ANCHOR + 14 * 3600 + 1800  # Monday 14:30 UTC: services near their diurnal peak


def fleet_at(scenario: str, start: float = AFTERNOON, **kwargs: Any) -> Any:
    return build_scenario(scenario, clock=ManualClock(start), **kwargs)


@contextmanager
def serving(
    fleet: Any, node: str | None = None, web_config: WebConfig | None = None, aggregate: bool = False
) -> Iterator[Exporter]:
    options = ExporterOptions(
        listen_address=f"127.0.0.1:{free_port()}",
        web_config=web_config or WebConfig(),
        node_name=node or "",
        aggregate_processes=aggregate,
    )
    exporter = build_exporter(options, fleet=fleet)
    exporter.serve_in_thread()
    try:
        yield exporter
    finally:
        exporter.close()


def scrape(exporter: Exporter, **kwargs: Any) -> str:
    response = httpx.get(f"{exporter.url}/metrics", timeout=30, **kwargs)
    response.raise_for_status()
    return response.text


@dataclass(frozen=True)
class HistoryRow:
    workload: str
    node: str
    gpu_uuid: str
    mig_profile: str
    sharing: str
    memory_used_bytes: int
    sm_active_gpu_fraction: float | None
    process_count: int


def history_at(fleet: Any, when: int, directory: Path) -> list[HistoryRow]:
    """The simulator's own record of second ``when`` (one sample, ending at ``when + 1``)."""
    path = directory / f"truth-{when}.csv"
    write_history(path, fleet=fleet, days=1 / 86400, step_s=1, end=when + 1)
    with path.open() as f:
        return [
            HistoryRow(
                r["workload"],
                r["node"],
                r["gpu_uuid"],
                r["mig_profile"],
                r["sharing"],
                int(r["memory_used_bytes"]),
                float(r["sm_active_gpu_fraction"]) if r["sm_active_gpu_fraction"] else None,
                int(r["process_count"]),
            )
            for r in csv.DictReader(f)
            if int(r["timestamp"]) == when
        ]
