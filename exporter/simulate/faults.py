"""Faults on demand, with rates, deterministic for a seed: what a flaky node does to an NVML client.

Kinds and where each is drawn (rates are probabilities per opportunity, 0..1):

- ``gpu_lost``: per NVML call on a GPU (or one of its MIG devices): the GPU falls off the bus. It stays lost
  (every call on it answers NVML_ERROR_GPU_IS_LOST) until ``Gpu.lost`` is cleared, as on a real node until reboot.
- ``unknown`` / ``timeout``: per device call: that one call answers NVML_ERROR_UNKNOWN / NVML_ERROR_TIMEOUT.
- ``process_exit``: per process listed by a process-list call: it exits right after being listed, so queries about
  its pid (``nvmlSystemGetProcessName``, the simulated /proc) answer NVML_ERROR_NOT_FOUND / ``ProcessLookupError``,
  and it comes back under a new pid (restarted) from the next second.
- ``mig_reconfigure``: per call on a MIG-enabled GPU: its GPU instances are destroyed and re-created before the call
  is answered (same geometry and GI ids, new MIG UUIDs, processes restarted); handles taken before answer
  NVML_ERROR_INVALID_ARGUMENT.
- driver not loaded: ``driver_loads_after_s`` seconds (simulated time, from attaching) during which ``nvmlInit``
  answers NVML_ERROR_DRIVER_NOT_LOADED; ``library_missing`` makes it NVML_ERROR_LIBRARY_NOT_FOUND for good (a
  machine without the driver).

Draws come from one ``random.Random`` seeded from the fleet's seed and are made only for kinds with a rate above
zero, so a fleet without faults is unaffected and the same calls give the same faults.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from enum import StrEnum


class FaultKind(StrEnum):
    GPU_LOST = "gpu_lost"
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"
    PROCESS_EXIT = "process_exit"
    MIG_RECONFIGURE = "mig_reconfigure"


@dataclass
class Faults:
    seed: int = 0
    rates: dict[FaultKind, float] = field(default_factory=dict)
    driver_loads_after_s: float = 0.0
    library_missing: bool = False

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed ^ 0xFA117)
        self._lock = threading.Lock()
        for kind, rate in list(self.rates.items()):
            self.set(kind, rate)

    def set(self, kind: FaultKind | str, rate: float) -> None:
        """Set the rate of one kind (0 turns it off)."""
        kind = FaultKind(kind)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate for {kind} must be within 0..1, got {rate}")
        if rate == 0.0:
            self.rates.pop(kind, None)
        else:
            self.rates[kind] = rate

    def clear(self) -> None:
        self.rates.clear()
        self.driver_loads_after_s = 0.0
        self.library_missing = False

    def draw(self, kind: FaultKind) -> bool:
        """Whether this opportunity for ``kind`` becomes a fault."""
        rate = self.rates.get(kind)
        if not rate:
            return False
        with self._lock:
            return self._rng.random() < rate
