"""A history file turned back into the series the exporter (and dcgm-exporter) would have given Prometheus.

Tests load the output with ``promtool tsdb create-blocks-from openmetrics`` into a real Prometheus and check that
the advisor's Prometheus source finds the features the history file gives. The conversion is the simulator's own
(``exporter.simulate.openmetrics``, vectorised; ``slicewise simulate --out FILE.om``), so tests, benchmark and
users backfill the same series.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from exporter.simulate.openmetrics import JOB
from exporter.simulate.openmetrics import write_openmetrics as _write

__all__ = ["JOB", "write_openmetrics"]


def write_openmetrics(history: pd.DataFrame, out: Path, *, dcgm: bool = False) -> Path:
    """Write the series of ``history`` (read_history's frame) to ``out`` in OpenMetrics text."""
    return _write(history, out, dcgm=dcgm).path
