"""NVML initialisation: no driver is a clear error; a driver that is not ready is retried from later scrapes."""

from __future__ import annotations

import pynvml
import pytest

from exporter.nvml.session import NoDriver, NvmlSession
from exporter.snapshot import NvmlError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def failing_init(monkeypatch: pytest.MonkeyPatch, codes: list[int]) -> list[int]:
    """pynvml.nvmlInit answering each code in turn (0 = success); returns the list of calls made."""
    calls: list[int] = []

    def init() -> None:
        code = codes[min(len(calls), len(codes) - 1)]
        calls.append(code)
        if code:
            raise pynvml.NVMLError(code)

    monkeypatch.setattr(pynvml, "nvmlInit", init)
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: None)
    return calls


def test_no_library_means_no_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    failing_init(monkeypatch, [pynvml.NVML_ERROR_LIBRARY_NOT_FOUND])
    with pytest.raises(NoDriver, match=r"no NVIDIA driver found.*--simulate"):
        NvmlSession().start()


def test_driver_not_ready_is_retried_at_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = failing_init(monkeypatch, [pynvml.NVML_ERROR_DRIVER_NOT_LOADED, pynvml.NVML_ERROR_DRIVER_NOT_LOADED, 0])
    clock = Clock()
    session = NvmlSession(retry_interval_s=10, clock=clock)
    assert not session.start()
    assert not session.ensure()  # within the interval: no new attempt
    assert len(calls) == 1
    clock.now += 10
    assert not session.ensure()  # second attempt fails
    clock.now += 10
    assert session.ensure() and session.up  # third succeeds
    assert len(calls) == 3
    assert session.drain_errors() == [NvmlError("nvmlInit", "NVML_ERROR_DRIVER_NOT_LOADED")] * 2
    assert session.drain_errors() == []


def test_lost_nvml_is_initialised_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = failing_init(monkeypatch, [0])
    clock = Clock()
    session = NvmlSession(retry_interval_s=5, clock=clock)
    assert session.start()
    session.lost("nvmlDeviceGetCount")
    assert not session.ensure()
    clock.now += 5
    assert session.ensure()
    assert len(calls) == 2
