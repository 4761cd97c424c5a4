"""The exporter's full scrape on every simulated driver generation, privileged and not: which series are present,
which absent, what is counted, and ``promtool check metrics`` silent on each (exporter.simulate.drivers)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from prometheus_client import generate_latest

from exporter.app import ExporterOptions, build_exporter
from exporter.simulate import ManualClock, build_scenario
from exporter.simulate.drivers import PROFILES, driver_profile
from tests.exporter.promtext import Sample, parse, promtool_check
from tests.exporter.simulate.conftest import AFTERNOON


def _cases() -> Iterator[tuple[str, bool, str]]:
    for name in PROFILES:
        # R470 does not drive Hopper: an A100 with MIG (one GPU instance split into 3 compute instances) and one
        # time-sliced between 4 processes; the others also an H100 with MIG (GPM) and one under MPS.
        scenarios = ("a100-mig", "timeslice") if name == "470" else ("a100-mig", "h100-mig", "mps")
        for privileged in (True, False):
            for scenario in scenarios:
                yield name, privileged, scenario


@contextmanager
def _scrapes(scenario: str, driver: str, privileged: bool) -> Iterator[tuple[object, list[str]]]:
    """Two scrapes 15 s apart after the exporter's own first read; the node and the scrape texts."""
    fleet = build_scenario(scenario, clock=ManualClock(AFTERNOON))
    options = ExporterOptions(simulate_driver=driver, simulate_unprivileged=not privileged, kubernetes="off")
    exporter = build_exporter(options, serve=False, fleet=fleet)
    try:
        texts = []
        for _ in range(2):
            fleet.clock.advance(15)  # type: ignore[attr-defined]
            texts.append(generate_latest(exporter.registry).decode())
        yield fleet.nodes[0], texts
    finally:
        exporter.close()


def _values(samples: dict[str, list[Sample]], name: str) -> list[Sample]:
    return samples.get(name, [])


@pytest.mark.parametrize(("driver", "privileged", "scenario"), list(_cases()))
def test_full_scrape_on_every_driver_and_privilege(driver: str, privileged: bool, scenario: str) -> None:
    profile = driver_profile(driver)
    with _scrapes(scenario, driver, privileged) as (node, texts):
        text = texts[-1]
        s = parse(text)
        assert promtool_check(text) == ""
        # counted: nothing. No NVML error, no process skipped, whatever the driver and privileges
        assert "slicewise_exporter_nvml_errors_total" not in s, s.get("slicewise_exporter_nvml_errors_total")
        assert sum(x.value for x in _values(s, "slicewise_exporter_processes_skipped_total")) == 0
        assert [x.value for x in _values(s, "slicewise_exporter_nvml_up")] == [1.0]
        (info,) = _values(s, "slicewise_gpu_info")
        assert info.labels["driver_version"] == profile.version

        # processes: every pid and its memory exactly as the simulator holds them (the 5-field struct of 535.54
        # misread would give garbage from the second entry on; a missing _v3 would give none at all)
        truth = {p.pid: p.memory_bytes for p in node.processes() if p.workload is not None}  # type: ignore[attr-defined]
        published = {int(x.labels["pid"]): int(x.value) for x in _values(s, "slicewise_process_memory_used_bytes")}
        assert published == truth and len(truth) >= 3

        gpu = node.gpus[0]  # type: ignore[attr-defined]
        memory = _values(s, "slicewise_gpu_memory_total_bytes")
        if not gpu.mig_enabled:
            assert [x.labels["source"] for x in memory] == ["device"]
            assert {x.labels["pid"] for x in _values(s, "slicewise_process_sm_active_ratio")} == {str(p) for p in truth}
            return
        # MIG: one series per MIG device, memory per GPU instance; the GPU's own memory only when privileged,
        # else the sum of its GPU instances, labelled so
        migs = _values(s, "slicewise_mig_info")
        assert len(migs) == len(gpu.devices())
        assert len(_values(s, "slicewise_mig_memory_total_bytes")) == len(gpu.instances)
        (total,) = memory
        if privileged:
            assert total.labels["source"] == "device" and total.value == gpu.model.memory_total_bytes
            assert all(m.labels["placement_start"] != "" for m in migs)
        else:
            assert total.labels["source"] == "gpu_instances"
            assert total.value == sum(gi.profile.memory_bytes for gi in gpu.instances)
            assert all(m.labels["placement_start"] == "" for m in migs)  # GPU instance handles are root's
        # GPM: Hopper with a driver that has it; a GPU instance split into compute instances only where the
        # driver takes MIG device handles
        active = {(x.labels["gi"], x.labels["ci"]) for x in _values(s, "slicewise_mig_sm_active_ratio")}
        expected = set()
        if gpu.model.has_gpm and profile.exports("nvmlGpmMigSampleGet"):
            for gi in gpu.instances:
                if len(gi.compute_instances) == 1 or profile.gpm_on_mig_handles:
                    expected |= {(str(gi.id), str(ci.id)) for ci in gi.compute_instances}
        assert active == expected


def test_split_gpu_instance_on_hopper_gets_gpm_per_compute_instance() -> None:
    """R550+: nvmlGpmSampleGet on each MIG device handle of a GPU instance split in two; 535.98: absent, uncounted."""
    for driver, measured in (("550", True), ("535.98", False)):
        clock = ManualClock(AFTERNOON)
        fleet = build_scenario("h100-mig", clock=clock)
        fleet.nodes[0].gpus[0].configure_mig(["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"], splits={0: (2, 1)})
        exporter = build_exporter(ExporterOptions(simulate_driver=driver), serve=False, fleet=fleet)
        try:
            clock.advance(15)
            s = parse(generate_latest(exporter.registry).decode())
        finally:
            exporter.close()
        assert "slicewise_exporter_nvml_errors_total" not in s
        split = {x.labels["ci"] for x in s["slicewise_mig_sm_active_ratio"] if x.labels["profile"] == "3g.40gb"}
        assert split == ({"0", "1"} if measured else set())
        assert len(s["slicewise_mig_sm_active_ratio"]) == 3 + (2 if measured else 0)


def test_a_driver_that_does_not_drive_the_gpus_is_refused() -> None:
    from slicewise.errors import BadInput

    fleet = build_scenario("h100-mig", clock=ManualClock(AFTERNOON))
    with pytest.raises(BadInput, match=r"driver 470\.256\.02 does not support NVIDIA H100"):
        build_exporter(ExporterOptions(simulate_driver="470"), serve=False, fleet=fleet)
