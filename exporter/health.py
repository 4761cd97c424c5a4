"""The exporter's own health, kept across scrapes: NVML errors by function and error, skipped processes, timings.

Counters here only grow. They are published by the collector as ``slicewise_exporter_*`` families, so a Prometheus
alert can tell a failing NVML call or a lost GPU from a dead exporter (``up == 0``).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from exporter.snapshot import NvmlError


@dataclass(frozen=True, slots=True)
class DirectoryHealth:
    """The Kubernetes pod cache's state, for ``slicewise_exporter_kubernetes_*``."""

    pods: int
    refreshes: int
    errors: int
    last_success_unix: float | None


@dataclass
class Health:
    nvml_errors: Counter[NvmlError] = field(default_factory=Counter)
    processes_skipped: int = 0
    collect_failures: int = 0
    last_collect_seconds: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_errors(self, errors: tuple[NvmlError, ...] | list[NvmlError]) -> None:
        with self._lock:
            self.nvml_errors.update(errors)

    def errors_snapshot(self) -> dict[NvmlError, int]:
        with self._lock:
            return dict(self.nvml_errors)
