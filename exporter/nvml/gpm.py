"""Per-MIG SM activity, SM occupancy and DRAM activity from GPM (GPU Performance Monitoring, Hopper and newer).

GPM metrics are differences between two samples. The exporter keeps each GPU instance's sample from the previous
scrape and takes a new one now, so every figure is the average over exactly the interval between two scrapes,
which is what a Prometheus gauge sampled at that interval should hold. The first scrape after start (or after a
GPU instance appears) has no earlier sample, so these series are absent there rather than guessed. Two scrapes
closer than ``MIN_INTERVAL_S`` (two Prometheus servers, a person with curl) do not take a new sample: the second
gets the figures of the last full interval again, a measurement, rather than a ratio over a few milliseconds.

A sample is kept with the identity of what it measured (the MIG device UUID, which the driver changes whenever a
GPU instance is destroyed and created again, even under the same GI id), so a re-created instance is never diffed
against its predecessor's counters. A GPU instance split into several compute instances is measured per compute
instance, through ``nvmlGpmSampleGet`` on each MIG device's own handle, where the driver accepts that (it answers
NOT_SUPPORTED otherwise, and those series stay absent). A metric the driver returns as NaN is absent, as DCGM
leaves such a field blank.
"""

from __future__ import annotations

import contextlib
import logging
import math
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
        self._mig_handles: dict[str, bool] = {}  # per GPU: does nvmlGpmSampleGet take its MIG device handles
        self._samples: dict[tuple[str, ...], tuple[float, str, Any]] = {}  # (when taken, identity, sample)
        self._figures: dict[tuple[str, ...], GpmFigures] = {}
        self._seen: set[tuple[str, ...]] = set()

    def supported(self, calls: Calls, handle: Any, gpu_uuid: str) -> bool:
        known = self._supported.get(gpu_uuid)
        if known is None:
            support = calls.get("nvmlGpmQueryDeviceSupport", lambda: pynvml.nvmlGpmQueryDeviceSupport(handle))
            known = bool(support is not None and support.isSupportedDevice)
            if support is not None:  # a failed query is retried next scrape; an answer is kept
                self._supported[gpu_uuid] = known
        return known

    def mig(self, calls: Calls, parent: Any, gpu_uuid: str, gi: int, identity: str) -> GpmFigures | None:
        """Figures for GPU instance ``gi`` (now the one with MIG device ``identity``) since the previous scrape;
        None on its first scrape or on failure."""

        def take(sample: Any) -> None:
            pynvml.nvmlGpmMigSampleGet(parent, gi, sample)

        return self._measure(calls, (gpu_uuid, str(gi)), identity, take, "nvmlGpmMigSampleGet")

    def mig_device(self, calls: Calls, handle: Any, gpu_uuid: str, mig_uuid: str) -> GpmFigures | None:
        """Figures for one MIG device (one compute instance of a split GPU instance), through its own handle."""
        if self._mig_handles.get(gpu_uuid) is False:
            return None

        def take(sample: Any) -> None:
            pynvml.nvmlGpmSampleGet(handle, sample)

        return self._measure(calls, (gpu_uuid, mig_uuid), mig_uuid, take, "nvmlGpmSampleGet")

    def _measure(
        self, calls: Calls, key: tuple[str, ...], identity: str, take: Callable[[Any], None], function: str
    ) -> GpmFigures | None:
        gpu_uuid = key[0]
        self._seen.add(key)
        now = self._clock()
        kept = self._samples.get(key)
        if kept is not None and kept[1] != identity:  # re-created under the same id: the old sample is void
            self._free(self._samples.pop(key)[2])
            self._figures.pop(key, None)
            kept = None
        if kept is not None and now - kept[0] < MIN_INTERVAL_S:
            return self._figures.get(key)
        sample = calls.get("nvmlGpmSampleAlloc", pynvml.nvmlGpmSampleAlloc)
        if sample is None:
            return None
        try:
            take(sample)
        except pynvml.NVMLError as exc:
            self._free(sample)
            code = int(exc.value)
            if code == pynvml.NVML_ERROR_NO_PERMISSION:  # GPM restricted to admins on this node
                log.warning("GPU %s: GPM answers NVML_ERROR_NO_PERMISSION; MIG activity series stay absent", gpu_uuid)
                self._supported[gpu_uuid] = False
            elif function == "nvmlGpmSampleGet" and code in CAPABILITY:
                log.info(
                    "GPU %s: this driver takes no MIG device handle for GPM; split GPU instances unmeasured", gpu_uuid
                )
                self._mig_handles[gpu_uuid] = False
            else:
                calls.failed(function, exc)
            return None
        self._samples[key] = (now, identity, sample)
        if function == "nvmlGpmSampleGet":
            self._mig_handles[gpu_uuid] = True
        if kept is None:
            return None
        try:
            figures = self._compare(calls, kept[2], sample)
        finally:
            self._free(kept[2])
        if figures is None:
            self._figures.pop(key, None)
        else:
            self._figures[key] = figures
        return figures

    def diagnostics(self) -> dict[str, object]:
        return {
            "gpm_supported": dict(sorted(self._supported.items())),
            "gpm_on_mig_device_handles": dict(sorted(self._mig_handles.items())),
        }

    def end_scrape(self) -> None:
        """Free the samples of GPU instances this scrape did not see (destroyed, or their GPU was lost)."""
        for key in [k for k in self._samples if k not in self._seen]:
            self._free(self._samples.pop(key)[2])
            self._figures.pop(key, None)
        self._seen = set()

    def forget_gpu(self, gpu_uuid: str) -> None:
        """A different GPU now has this index (or came back): ask it about GPM afresh."""
        self._supported.pop(gpu_uuid, None)
        self._mig_handles.pop(gpu_uuid, None)

    def reset(self) -> None:
        """Forget everything: NVML was re-initialised, so old samples and support answers are void."""
        for _, _, sample in self._samples.values():
            self._free(sample)
        self._samples.clear()
        self._figures.clear()
        self._supported.clear()
        self._mig_handles.clear()
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
            if code == pynvml.NVML_SUCCESS and not math.isnan(float(result.value)):
                values.append(_ratio(float(result.value)))
            elif code == pynvml.NVML_SUCCESS:  # NaN: no figure for this interval (DCGM leaves it blank)
                values.append(None)
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
