"""History in: a file (Parquet/CSV) as a validated frame, or Prometheus as per-workload features computed server-side.

``read_history`` reads DESIGN.md's history file; ``prometheus.PrometheusSource`` asks Prometheus (or Thanos, Mimir)
for the same features over its HTTP API, from slicewise's exporter or dcgm-exporter series (``promql``, ``dcgm``).
"""

from advisor.history.file import read_history

__all__ = ["read_history"]
