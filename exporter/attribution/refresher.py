"""A cache refreshed by a background thread: on a timer, and soon after a reader asks for something it lacks.

Scrapes only ever read the cache, so a slow or unreachable source (the Kubernetes API server, the Docker socket)
delays names but never a scrape.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class BackgroundRefresh:
    """Calls ``refresh`` every ``interval_s``, or soon after ``wake()``, but at most once per ``min_interval_s``."""

    def __init__(
        self,
        name: str,
        refresh: Callable[[], object],
        interval_s: float,
        min_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._refresh = refresh
        self.interval_s = interval_s
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = float("-inf")

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self._last + self.min_interval_s - self._clock()
            if wait > 0 and self._stop.wait(wait):
                return
            self._last = self._clock()
            self._wake.clear()
            self._refresh()
            self._wake.wait(self.interval_s)
