"""The exporter's own NVML reader, unchanged, reads the simulated bench node: the path the benchmarks take."""

from __future__ import annotations

import time

from exporter.nvml.reader import NvmlReader
from exporter.nvml.session import NvmlSession
from tests.exporter.simulate.conftest import clock_of


def test_reader_sees_448_processes_and_gpm_on_bench_8xh100(attach_scenario) -> None:
    a = attach_scenario("bench-8xh100", init=False)
    session = NvmlSession()
    assert session.start()
    reader = NvmlReader(session)
    first = reader.read()
    clock_of(a).advance(15)
    time.sleep(1.05)  # the reader takes GPM samples at most once a second of its own (monotonic) clock
    second = reader.read()
    assert not second.errors
    assert len(second.gpus) == 8 and all(g.mig_enabled and g.sm_count == 132 for g in second.gpus)
    migs = [m for g in second.gpus for m in g.mig_devices]
    assert len(migs) == 56 and {m.profile for m in migs} == {"1g.10gb"}
    assert sum(len(m.processes) for m in migs) == 448
    assert all(m.sm_active_ratio is None for g in first.gpus for m in g.mig_devices)  # GPM needs two samples
    assert all(m.sm_active_ratio is not None and 0 < m.sm_active_ratio <= 1 for m in migs)
    assert all(p.memory_used_bytes and p.memory_used_bytes > 0 for m in migs for p in m.processes)
    session.shutdown()


def test_reader_marks_a_lost_gpu_down(attach_scenario) -> None:
    a = attach_scenario("mixed", node="sim-h100-0", init=False)
    session = NvmlSession()
    session.start()
    reader = NvmlReader(session)
    reader.read()
    a.node.gpus[5].lost = True
    snapshot = reader.read()
    assert [g.up for g in snapshot.gpus] == [True] * 5 + [False] + [True] * 2
    assert any(e.error == "NVML_ERROR_GPU_IS_LOST" for e in snapshot.errors)
    session.shutdown()
