"""NVML initialisation: no driver is a clear error; a driver that is not ready is retried from later scrapes."""

from __future__ import annotations

import pynvml
import pytest

from exporter.nvml.session import DriverMismatch, NoDriver, NvmlSession
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


def test_version_mismatch_at_start_is_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    failing_init(monkeypatch, [pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH])
    with pytest.raises(DriverMismatch, match=r"LIB_RM_VERSION_MISMATCH.*restarted exporter loads the new driver"):
        NvmlSession().start()


def test_repeated_init_failures_give_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A driver that never comes up: after ``exit_after_failures`` tries in a row the exporter is told to exit."""
    failing_init(monkeypatch, [pynvml.NVML_ERROR_DRIVER_NOT_LOADED])
    clock, fatal = Clock(), []
    session = NvmlSession(retry_interval_s=10, clock=clock, exit_after_failures=3, on_fatal=fatal.append)
    assert not session.start()
    for _ in range(5):
        clock.now += 10
        assert not session.ensure()
    assert len(fatal) == 1 and "3 times in a row (last: NVML_ERROR_DRIVER_NOT_LOADED)" in fatal[0]
    assert session.init_failures == 3  # no more tries once fatal


def test_mismatch_after_losing_nvml_is_fatal_at_once_and_zero_never_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = failing_init(monkeypatch, [0, pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH])
    fatal: list[str] = []
    session = NvmlSession(clock=Clock(), exit_after_failures=0, on_fatal=fatal.append)
    assert session.start()
    session.lost("nvmlDeviceGetCount")
    session._next_try = 0
    assert not session.ensure()
    assert len(calls) == 2 and len(fatal) == 1 and session.fatal == fatal[0]

    failing_init(monkeypatch, [pynvml.NVML_ERROR_DRIVER_NOT_LOADED])
    clock = Clock()
    patient = NvmlSession(clock=clock, exit_after_failures=0)
    for _ in range(100):
        clock.now += 10
        patient.ensure()
    assert patient.fatal is None and patient.init_failures == 100
