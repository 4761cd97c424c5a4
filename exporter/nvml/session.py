"""NVML initialisation: refuse to start without a driver, and wait (serving health) for one that is not ready yet.

No ``libnvidia-ml.so.1`` at all means there is no NVIDIA driver on this machine: the exporter says so and exits
(the CLI turns ``NoDriver`` into a message and exit 1). Any other init failure (kernel module not loaded yet,
driver container still starting, a permission problem) is retried from the scrape itself, at most once per
``retry_interval``, so the exporter keeps answering with its own health meanwhile and no thread races a scrape.

Some failures never heal in-process, because pynvml loads ``libnvidia-ml.so.1`` once and never again: after a
driver upgrade the old library answers NVML_ERROR_LIB_RM_VERSION_MISMATCH for good, and the exporter holding the
old driver's files open stalls the GPU Operator's upgrade (NVIDIA/gpu-operator#2570). So a version mismatch, or
``exit_after_failures`` failed initialisations in a row, is fatal: the exporter exits 1 (dcgm-exporter exits
too), and its restarted pod loads the new driver's library. At start-up a mismatch raises ``DriverMismatch``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

import pynvml

from exporter.nvml.calls import error_name
from exporter.snapshot import NvmlError
from slicewise.errors import JobFailed

log = logging.getLogger(__name__)


class NoDriver(JobFailed):
    """The NVIDIA driver's library is not installed."""


class DriverMismatch(JobFailed):
    """NVML_ERROR_LIB_RM_VERSION_MISMATCH: this process's libnvidia-ml is not the loaded kernel driver's."""


_MISMATCH_ADVICE = (
    "the NVIDIA driver's library and kernel module differ (the driver was upgraded under this process): exiting so "
    "that a restarted exporter loads the new driver's library"
)


class NvmlSession:
    """Whether NVML is initialised, and (re)initialising it when a scrape needs it."""

    def __init__(
        self,
        retry_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        exit_after_failures: int = 30,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self.retry_interval_s = retry_interval_s
        self.exit_after_failures = exit_after_failures  # 0: retry for ever
        self.on_fatal = on_fatal  # called once (from a scrape) when the session can never come up in-process
        self.fatal: str | None = None
        self._in_a_row = 0
        self._clock = clock
        self._up = False
        self._next_try = 0.0
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.init_failures = 0
        self._errors: list[NvmlError] = []

    @property
    def up(self) -> bool:
        return self._up

    def start(self) -> bool:
        """First initialisation at start-up. Raises ``NoDriver`` when the library is missing; else True if up."""
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            code = int(exc.value)
            if code == pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH:
                raise DriverMismatch(f"NVML: {error_name(code)}: {_MISMATCH_ADVICE}") from exc
            if code == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND:
                raise NoDriver(
                    "no NVIDIA driver found: libnvidia-ml.so.1 cannot be loaded. Install the NVIDIA driver (or mount "
                    "it into the container), or run `slicewise-exporter --simulate` to serve a simulated fleet."
                ) from exc
            self._failed(code)
            log.warning(
                "NVML is not ready (%s); serving exporter health and retrying every %.0f s",
                error_name(code),
                self.retry_interval_s,
            )
            return False
        self._up = True
        self._in_a_row = 0
        return True

    def ensure(self) -> bool:
        """Called by each scrape: True when NVML is up, trying to initialise it again when a retry is due."""
        with self._lock:
            if self._up:
                return True
            if self.fatal is not None or self._clock() < self._next_try:
                return False
            try:
                pynvml.nvmlInit()
            except pynvml.NVMLError as exc:
                self._failed(int(exc.value))
                return False
            log.info("NVML initialised after %d failed attempts", self.init_failures)
            self._up = True
            self._in_a_row = 0
            return True

    def lost(self, function: str) -> None:
        """A call found NVML uninitialised (driver unloaded or restarted): initialise again on a later scrape."""
        with self._lock:
            if not self._up:
                return
            log.warning("NVML went away during %s; re-initialising on a later scrape", function)
            self._up = False
            self._next_try = self._clock() + self.retry_interval_s
            with contextlib.suppress(pynvml.NVMLError):
                pynvml.nvmlShutdown()

    def shutdown(self) -> None:
        with self._lock:
            if self._up:
                self._up = False
                with contextlib.suppress(pynvml.NVMLError):
                    pynvml.nvmlShutdown()

    def drain_errors(self) -> list[NvmlError]:
        """Init failures since the last call, for the error counter."""
        with self._lock:
            errors, self._errors = self._errors, []
        return errors

    def _failed(self, code: int) -> None:
        self.init_failures += 1
        self._in_a_row += 1
        self.last_error = error_name(code)
        self._errors.append(NvmlError("nvmlInit", self.last_error))
        self._next_try = self._clock() + self.retry_interval_s
        if code == pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH:
            self._give_up(f"NVML: {self.last_error}: {_MISMATCH_ADVICE}")
        elif self.exit_after_failures and self._in_a_row >= self.exit_after_failures:
            self._give_up(
                f"NVML failed to initialise {self._in_a_row} times in a row (last: {self.last_error}): exiting so "
                "that a restarted exporter loads the driver afresh"
            )

    def _give_up(self, message: str) -> None:
        if self.fatal is not None:
            return
        self.fatal = message
        log.error("%s", message)
        if self.on_fatal is not None:
            self.on_fatal(message)
