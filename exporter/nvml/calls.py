"""One NVML call at a time: a failure loses that value only and is recorded, never raised into the scrape.

Two kinds of failure are not errors: "this GPU or driver cannot do that" (NOT_SUPPORTED, FUNCTION_NOT_FOUND, and
NOT_FOUND where NVML uses it for "no such entry") makes the value absent and is not counted, or every A100 would
raise an alert for lacking GPM forever. Everything else is counted by function and error. Two failures end more
than one value: GPU_IS_LOST ends the reading of that GPU (it is then reported down), and UNINITIALIZED /
DRIVER_NOT_LOADED end the scrape's NVML reading altogether (the session re-initialises on a later scrape).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

import pynvml

from exporter.snapshot import NvmlError

T = TypeVar("T")

# value -> "NVML_ERROR_GPU_IS_LOST", from pynvml's own constants so that new driver errors keep their names.
ERROR_NAMES: dict[int, str] = {
    value: name
    for name, value in vars(pynvml).items()
    if name.startswith("NVML_ERROR_") and isinstance(value, int) and name != "NVML_ERROR_STRING_MAX_LENGTH"
}

CAPABILITY = frozenset({pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND})
CAPABILITY_OR_ABSENT = CAPABILITY | {pynvml.NVML_ERROR_NOT_FOUND}
_NVML_GONE = frozenset({pynvml.NVML_ERROR_UNINITIALIZED, pynvml.NVML_ERROR_DRIVER_NOT_LOADED})


def error_name(code: int) -> str:
    return ERROR_NAMES.get(code, f"NVML_ERROR_{code}")


class GpuLost(Exception):
    """NVML_ERROR_GPU_IS_LOST: stop reading this GPU and report it down."""


class NvmlGone(Exception):
    """NVML is no longer initialised (driver unloaded or restarted): stop this scrape's NVML reading."""


class Calls:
    """Runs pynvml calls for one scrape and keeps the errors that scrape met."""

    __slots__ = ("errors",)

    def __init__(self) -> None:
        self.errors: list[NvmlError] = []

    def get(self, function: str, call: Callable[[], T], not_errors: Collection[int] = CAPABILITY) -> T | None:
        """``call()``, or None when it fails; ``function`` is the NVML C function's name for the error label."""
        try:
            return call()
        except pynvml.NVMLError as exc:
            self.failed(function, exc, not_errors)
            return None

    def failed(self, function: str, exc: pynvml.NVMLError, not_errors: Collection[int] = CAPABILITY) -> None:
        """Account for a failure caught elsewhere, exactly as ``get`` would have."""
        code = int(exc.value)
        if code in not_errors:
            return
        self.errors.append(NvmlError(function, error_name(code)))
        if code == pynvml.NVML_ERROR_GPU_IS_LOST:
            raise GpuLost(function) from exc
        if code in _NVML_GONE:
            raise NvmlGone(function) from exc

    def record(self, function: str, code: int) -> None:
        self.errors.append(NvmlError(function, error_name(code)))
