"""Simulated time: the wall clock for a live exporter (values move while you watch), a manual one for tests.

Every value the simulator produces is a function of time, so the same clock reading gives the same numbers, and a
history written for a time range holds exactly what a live fleet would have shown at those times.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol

# A fixed Monday 00:00 UTC: where a manual clock starts and where a history ends by default, so that output is
# deterministic for a seed no matter when it is produced.
ANCHOR = datetime(2026, 11, 23, tzinfo=UTC).timestamp()


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch (UTC)."""
        ...


class WallClock:
    """Real time: what a live exporter on the simulated fleet uses."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """Time that moves only when told to: ``advance(seconds)``. Thread-safe."""

    def __init__(self, start: float = ANCHOR) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, when: float) -> None:
        with self._lock:
            if when < self._now:
                raise ValueError("a clock does not run backwards")
            self._now = float(when)
