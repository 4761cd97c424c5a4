"""Per-MIG SM activity, SM occupancy and DRAM activity from GPM (GPU Performance Monitoring, Hopper and newer).

GPM metrics are differences between two samples. The exporter keeps each GPU instance's sample from the previous
scrape and takes a new one now, so every figure is the average over exactly the interval between two scrapes,
which is what a Prometheus gauge sampled at that interval should hold. The first scrape after start (or after a
GPU instance appears) has no earlier sample, so these series are absent there rather than guessed. Two scrapes
closer than ``MIN_INTERVAL_S`` (two Prometheus servers, a person with curl) do not take a new sample: the second
gets the figures of the last full interval again, a measurement, rather than a ratio over a few milliseconds.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pynvml

from exporter.nvml.calls import CAPABILITY, Calls

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 1.0

_METRICS = (
    pynvml.NVML_GPM_METRIC_SM_UTIL,
    pynvml.NVML_GPM_METRIC_SM_OCCUPANCY,
    pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL,
)


@dataclass(frozen=True, slots=True)
class GpmFigures:
    sm_active_ratio: float | None
    sm_occupancy_ratio: float | None
    dram_active_ratio: float | None


def _ratio(percent: float) -> float:
    """GPM reports 0-100; rounding in the driver can overshoot by a hair, which is noise, not activity."""
    return min(1.0, max(0.0, percent / 100.0))


class GpmSampler:
    """The previous GPM sample of every MIG GPU instance, and whether each GPU supports GPM at all."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._supported: dict[str, bool] = {}
        self._samples: dict[tuple[str, int], tuple[float, Any]] = {}  # (when taken, sample)
        self._figures: dict[tuple[str, int], GpmFigures] = {}
        self._seen: set[tuple[str, int]] = set()

    def supported(self, calls: Calls, handle: Any, gpu_uuid: str) -> bool:
        known = self._supported.get(gpu_uuid)
        if known is None:
            support = calls.get("nvmlGpmQueryDeviceSupport", lambda: pynvml.nvmlGpmQueryDeviceSupport(handle))
            known = bool(support is not None and support.isSupportedDevice)
            if support is not None:  # a failed query is retried next scrape; an answer is kept
                self._supported[gpu_uuid] = known
        return known

    def mig(self, calls: Calls, parent: Any, gpu_uuid: str, gi: int) -> GpmFigures | None:
        """Figures for GPU instance ``gi`` since the previous scrape, or None on the first one or on failure."""
        key = (gpu_uuid, gi)
        self._seen.add(key)
        now = self._clock()
        kept = self._samples.get(key)
        if kept is not None and now - kept[0] < MIN_INTERVAL_S:
            return self._figures.get(key)
        sample = calls.get("nvmlGpmSampleAlloc", pynvml.nvmlGpmSampleAlloc)
        if sample is None:
            return None
        try:
            pynvml.nvmlGpmMigSampleGet(parent, gi, sample)
        except pynvml.NVMLError as exc:
            self._free(sample)
            if int(exc.value) == pynvml.NVML_ERROR_NO_PERMISSION:  # GPM restricted to admins on this node
                log.warning("GPU %s: GPM answers NVML_ERROR_NO_PERMISSION; MIG activity series stay absent", gpu_uuid)
                self._supported[gpu_uuid] = False
                return None
            calls.failed("nvmlGpmMigSampleGet", exc)
            return None
        self._samples[key] = (now, sample)
        if kept is None:
            return None
        try:
            figures = self._compare(calls, kept[1], sample)
        finally:
            self._free(kept[1])
        if figures is None:
            self._figures.pop(key, None)
        else:
            self._figures[key] = figures
        return figures

    def end_scrape(self) -> None:
        """Free the samples of GPU instances this scrape did not see (destroyed, or their GPU was lost)."""
        for key in [k for k in self._samples if k not in self._seen]:
            self._free(self._samples.pop(key)[1])
            self._figures.pop(key, None)
        self._seen = set()

    def forget_gpu(self, gpu_uuid: str) -> None:
        """A different GPU now has this index (or came back): ask it about GPM afresh."""
        self._supported.pop(gpu_uuid, None)

    def reset(self) -> None:
        """Forget everything: NVML was re-initialised, so old samples and support answers are void."""
        for _, sample in self._samples.values():
            self._free(sample)
        self._samples.clear()
        self._figures.clear()
        self._supported.clear()
        self._seen = set()

    @staticmethod
    def _compare(calls: Calls, older: Any, newer: Any) -> GpmFigures | None:
        request = pynvml.c_nvmlGpmMetricsGet_t()
        request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = len(_METRICS)
        request.sample1 = older
        request.sample2 = newer
        for i, metric in enumerate(_METRICS):
            request.metrics[i].metricId = metric
        if calls.get("nvmlGpmMetricsGet", lambda: pynvml.nvmlGpmMetricsGet(request)) is None:
            return None
        values: list[float | None] = []
        for i in range(len(_METRICS)):
            result = request.metrics[i]
            code = int(result.nvmlReturn)
            if code == pynvml.NVML_SUCCESS:
                values.append(_ratio(float(result.value)))
            else:
                if code not in CAPABILITY:
                    calls.record("nvmlGpmMetricsGet", code)
                values.append(None)
        return GpmFigures(*values)

    @staticmethod
    def _free(sample: Any) -> None:
        """Freeing host memory that NVML allocated: a failure here changes no reading, so it is not counted."""
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlGpmSampleFree(sample)
