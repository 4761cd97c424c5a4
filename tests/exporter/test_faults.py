"""Faults from the simulator: a lost GPU is reported down, a driver that is not ready is waited for, a missing
driver stops the exporter, and flaky calls lose only their own values, counted by function and error."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from exporter.app import ExporterOptions, build_exporter
from exporter.nvml.session import NoDriver
from exporter.simulate import FaultKind
from tests.exporter.promtext import Sample, one, parse
from tests.exporter.simulated import fleet_at, scrape, serving


def errors(s: dict[str, list[Sample]], error: str) -> float:
    return sum(x.value for x in s.get("slicewise_exporter_nvml_errors_total", []) if x.labels["error"] == error)


def test_a_lost_gpu_is_reported_down_and_comes_back() -> None:
    fleet = fleet_at("mixed")
    with serving(fleet, "sim-h100-0") as exporter:
        node = fleet.node("sim-h100-0")
        lost = node.gpus[3]
        lost.lost = True
        fleet.clock.advance(15)
        s = parse(scrape(exporter))
        assert one(s, "slicewise_exporter_gpu_up", gpu="3", gpu_uuid=lost.uuid) == 0
        assert not [x for x in s["slicewise_gpu_info"] if x.labels["gpu"] == "3"]
        assert not [x for x in s["slicewise_process_memory_used_bytes"] if x.labels["gpu"] == "3"]
        assert len(s["slicewise_gpu_info"]) == 7  # the other GPUs are read as usual
        assert errors(s, "NVML_ERROR_GPU_IS_LOST") >= 1
        lost.lost = False  # back after a reset
        fleet.clock.advance(15)
        s = parse(scrape(exporter))
        assert one(s, "slicewise_exporter_gpu_up", gpu="3", gpu_uuid=lost.uuid) == 1
        assert len(s["slicewise_gpu_info"]) == 8


def test_a_driver_that_is_not_ready_is_waited_for() -> None:
    fleet = fleet_at("h100-mig")
    fleet.faults.driver_loads_after_s = 30
    with serving(fleet) as exporter:  # retries every 10 s of the fleet's clock
        s = parse(scrape(exporter))
        assert one(s, "slicewise_exporter_nvml_up") == 0
        assert "slicewise_gpu_info" not in s
        assert (
            one(s, "slicewise_exporter_nvml_errors_total", function="nvmlInit", error="NVML_ERROR_DRIVER_NOT_LOADED")
            >= 1
        )
        fleet.clock.advance(31)
        s = parse(scrape(exporter))
        assert one(s, "slicewise_exporter_nvml_up") == 1
        assert len(s["slicewise_gpu_info"]) == 1


def test_no_driver_at_all_is_a_clear_error_and_leaves_pynvml_clean() -> None:
    fleet = fleet_at("exclusive")
    fleet.faults.library_missing = True
    with pytest.raises(NoDriver, match="no NVIDIA driver found"):
        build_exporter(ExporterOptions(), serve=False, fleet=fleet)
    exporter = build_exporter(ExporterOptions(), serve=False, fleet=fleet_at("exclusive"))  # detached: attach again
    exporter.close()


def test_flaky_calls_lose_only_their_values() -> None:
    fleet = fleet_at("mixed")
    with serving(fleet, "sim-h100-0") as exporter:
        node = fleet.node("sim-h100-0")
        fleet.faults.set(FaultKind.UNKNOWN, 0.02)
        fleet.faults.set(FaultKind.TIMEOUT, 0.02)
        for _ in range(5):
            fleet.clock.advance(15)
            s = parse(scrape(exporter))
        tick = node.runtime.state()
        listed = {p.pid: p.memory for procs in tick.processes for p in procs}
        published = {int(x.labels["pid"]): x.value for x in s["slicewise_process_memory_used_bytes"]}
        assert published  # most of it got through
        assert all(listed[pid] == value for pid, value in published.items())  # and what got through is right
        assert errors(s, "NVML_ERROR_UNKNOWN") > 0 and errors(s, "NVML_ERROR_TIMEOUT") > 0
        functions = {x.labels["function"] for x in s["slicewise_exporter_nvml_errors_total"]}
        assert functions <= {name for name in functions if name.startswith("nvml")}
        assert one(s, "slicewise_exporter_collect_failures_total") == 0


def test_processes_that_exit_mid_scrape_are_skipped() -> None:
    fleet = fleet_at("mixed")
    with serving(fleet, "sim-h100-0") as exporter:
        fleet.faults.set(FaultKind.PROCESS_EXIT, 0.3)
        fleet.clock.advance(15)
        s = parse(scrape(exporter))
        assert one(s, "slicewise_exporter_processes_skipped_total") > 0
        gone = fleet.node("sim-h100-0").runtime.state().gone
        published = {int(x.labels["pid"]) for x in s["slicewise_process_memory_used_bytes"]}
        assert not published & gone
        assert all(x.labels["workload"] for x in s["slicewise_process_memory_used_bytes"])


def test_mig_instances_recreated_under_the_exporter() -> None:
    fleet = fleet_at("h100-mig")
    with serving(fleet) as exporter:
        before = {x.labels["mig_uuid"] for x in parse(scrape(exporter))["slicewise_mig_info"]}
        fleet.node().gpus[0].recreate_instances()
        for _ in range(2):  # the first scrape after re-creation finds new UUIDs; the second has GPM again
            fleet.clock.advance(15)
            s = parse(scrape(exporter))
        after = {x.labels["mig_uuid"] for x in s["slicewise_mig_info"]}
        assert len(after) == 4 and not after & before
        assert len(s["slicewise_mig_sm_active_ratio"]) == 4
        assert len(s["slicewise_process_memory_used_bytes"]) == 4


def test_aggregated_series_match_per_process_sums() -> None:
    fleet = fleet_at("mixed")
    with serving(fleet, "sim-h100-0") as exporter:
        fleet.clock.advance(1)
        per_pid = parse(generate_latest(exporter.registry).decode())
    with serving(fleet, "sim-h100-0", aggregate=True) as exporter:
        aggregated = parse(scrape(exporter))
    sums: dict[tuple[str, str, str, str], float] = {}
    for x in per_pid["slicewise_process_memory_used_bytes"]:
        key = (x.labels["gpu_uuid"], x.labels["gi"], x.labels["ci"], x.labels["workload"])
        sums[key] = sums.get(key, 0) + x.value
    got = {
        (x.labels["gpu_uuid"], x.labels["gi"], x.labels["ci"], x.labels["workload"]): x.value
        for x in aggregated["slicewise_process_memory_used_bytes"]
    }
    assert got == sums
    assert all(x.labels["pid"] == "" for x in aggregated["slicewise_process_memory_used_bytes"])
